/*
 * simdev.h - a simulated flash device for tests, with failure models.
 *
 * How it works: the device holds two images, `durable` (what survives a
 * power cut) and `cache` (what reads see). A write goes to the cache and
 * is remembered as pending; flush copies pending blocks to durable. A
 * power cut (after the Nth write, counted from 1) makes every later
 * operation fail with EKV_EIO and fixes what the durable image holds:
 * - SIM_LOSE_NONE:   every write issued before the cut persisted (an
 *                    ordered, write-through device);
 * - SIM_LOSE_SUBSET: each write since the last flush persisted or not,
 *                    chosen by the seed (reordered persistence, as
 *                    SQLite's crash layer does).
 * The write that is cut (the Nth) can be torn: SIM_TEAR_NONE drops it,
 * SIM_TEAR_PREFIX keeps its first tear_bytes bytes over the old content,
 * SIM_TEAR_RANDOM fills it with seeded random bytes, SIM_TEAR_PARTIAL_ERASE
 * applies an erase pattern to only part of the block.
 * sim_powercycle() then turns the durable image into the visible one, as a
 * reboot would. Independently, read/write/flush can be made to fail at
 * chosen operation numbers, and reads can flip a bit.
 */
#ifndef SIMDEV_H
#define SIMDEV_H

#include <stdint.h>

#include "embedkv.h"

enum sim_tear { SIM_TEAR_NONE, SIM_TEAR_PREFIX, SIM_TEAR_RANDOM,
                SIM_TEAR_PARTIAL_ERASE };
enum sim_lose { SIM_LOSE_NONE, SIM_LOSE_SUBSET };

typedef struct simdev {
    ekv_device dev;
    uint8_t *cache;
    uint8_t *durable;
    uint8_t *pending;       /* per block: written since last flush */
    uint32_t bs, bc;
    /* counters (from 1 for the first operation) */
    uint64_t reads, writes, flushes;
    /* power cut: 0 = never, else cut at this write number */
    uint64_t cut_at;
    int cut;                /* the power is off */
    enum sim_tear tear;
    uint32_t tear_bytes;
    enum sim_lose lose;
    uint64_t seed;
    /* single injected failures (0 = none): operation number that fails */
    uint64_t fail_read_at, fail_write_at, fail_flush_at;
    /* persistent failures: every read of this block fails (EKV_BLOCK_NONE:
     * none) */
    uint32_t bad_block;
    /* flip bit (flip_bit % (8 * bs)) of every read of block flip_block */
    uint32_t flip_block;
    uint32_t flip_bit;
    int readonly;           /* no write callback */
} simdev;

/* Create a zero-filled device (fill byte given). Returns NULL on OOM. */
simdev *sim_new(uint32_t bs, uint32_t bc, uint8_t fill);
/* Create from an image buffer. */
simdev *sim_from(const void *img, uint32_t bs, uint32_t bc);
void sim_free(simdev *s);
/* Reset counters and failure settings (not the content). */
void sim_reset_faults(simdev *s);
/* After a cut: the durable image becomes the visible one, power is on. */
void sim_powercycle(simdev *s);
/* The visible image (bs * bc bytes). */
static inline uint8_t *sim_image(simdev *s) { return s->cache; }

#endif
