/*
 * simdev.h - a simulated flash device for tests, with failure models.
 *
 * How it works
 * ------------
 * The device holds two images. `cache` is what reads see: the content as
 * the running program believes it to be. `durable` is what survives a
 * power cut. A write lands in the cache and marks its block pending; a
 * flush copies every pending block to durable. A power cut freezes the
 * durable image and makes every later operation fail with EKV_EIO until
 * sim_powercycle() turns durable into the visible image, as a reboot does.
 *
 * When the power goes (after write number cut_at, counted from 1, or at a
 * sim_powercycle() with the power still on), the writes since the last
 * flush are settled by the loss model:
 * - SIM_LOSE_NONE:   every one persisted (an ordered, write-through
 *                    device; the gentlest model);
 * - SIM_LOSE_SUBSET: each one persisted or not, chosen by the seed, so a
 *                    later write may survive where an earlier one did not
 *                    (reordered persistence, like SQLite's crash layer);
 * - SIM_LOSE_ALL:    none persisted (a volatile cache that never made it).
 * The write that is cut (number cut_at) never completes from the caller's
 * side (it returns EKV_EIO), and its block is left as `tear` says:
 * - SIM_TEAR_NONE:          untouched (the write never started);
 * - SIM_TEAR_PREFIX:        new first tear_bytes bytes, old rest;
 * - SIM_TEAR_SUFFIX:        old first tear_bytes bytes, new rest;
 * - SIM_TEAR_RANDOM:        random bytes from the seed;
 * - SIM_TEAR_PARTIAL_ERASE: an erase (a uniform block) applied to the last
 *                           tear_bytes bytes only; other writes as PREFIX;
 * - SIM_TEAR_ERASE_HEAD:    an erase applied to the first tear_bytes bytes
 *                           only (the type byte reads "free" over old
 *                           content); other writes as SUFFIX.
 * tear_bytes == block size under PREFIX means "written in full, but the
 * power went before the caller heard of it".
 *
 * Power can be shared: devices joined to one simgroup count their writes
 * together, and the cut takes every member down at once, as one power
 * supply would. The group's cut_at then replaces each device's own.
 *
 * Faults without a power cut, each at a chosen operation number of its
 * kind (reads, writes and flushes are counted separately, from 1):
 * - fail_read_at / fail_write_at / fail_flush_at make that operation (and
 *   the fail_count - 1 after it; 0 counts as 1) return EKV_EIO;
 * - a failed write leaves its block untouched, or random if
 *   fail_write_tears is set (a program failure half-way);
 * - a failed flush leaves the pending writes pending, or, when
 *   flush_fail_drops is set, settles them by the loss model and forgets
 *   them (Linux's fsync error semantics: the cache still shows the data,
 *   the disk may never get it);
 * - bad_block: every read of that block fails;
 * - flip_block/flip_bit: every read of that block returns one bit flipped;
 *   flip_read_at: the read with that number returns one seeded bit flipped
 *   (a transient flip).
 *
 * Multi-block reads: after sim_set_batch(s, 1) the device also offers
 * read_blocks (counted in `batches`, from 1). bad_block fails every batch
 * that covers it and flip_block flips its bit there too; besides:
 * - fail_batch_at: that batch (and fail_count - 1 after it) returns EKV_EIO
 *   with the buffer full of valid blocks from the wrong places (the range
 *   in reverse order), which a core must not believe;
 * - short_batch_at: that batch stops in the middle of its first block and
 *   returns the bytes it read (positive, as pread would);
 *   the rest of the buffer is as after a failure;
 * - flip_batch_at: that batch succeeds with one seeded bit flipped in one
 *   seeded block of the range (a transient flip).
 */
#ifndef SIMDEV_H
#define SIMDEV_H

#include <stdint.h>

#include "embedkv.h"

enum sim_tear { SIM_TEAR_NONE, SIM_TEAR_PREFIX, SIM_TEAR_RANDOM,
                SIM_TEAR_PARTIAL_ERASE, SIM_TEAR_SUFFIX,
                SIM_TEAR_ERASE_HEAD };
enum sim_lose { SIM_LOSE_NONE, SIM_LOSE_SUBSET, SIM_LOSE_ALL };

#define SIM_GROUP_MAX 32

typedef struct simdev simdev;

/* One power supply for several devices. */
typedef struct simgroup {
    uint64_t writes;     /* writes of all members, from 1 */
    uint64_t cut_at;     /* 0 = never */
    int cut;
    unsigned n;
    simdev *member[SIM_GROUP_MAX];
} simgroup;

struct simdev {
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
    /* injected failures (0 = none): operation number that fails first */
    uint64_t fail_read_at, fail_write_at, fail_flush_at;
    uint32_t fail_count;    /* consecutive failing operations (0 = 1) */
    int fail_write_tears;
    int flush_fail_drops;
    /* persistent failures: every read of this block fails (EKV_BLOCK_NONE:
     * none) */
    uint32_t bad_block;
    /* flip bit (flip_bit % (8 * bs)) of every read of block flip_block */
    uint32_t flip_block;
    uint32_t flip_bit;
    uint64_t flip_read_at;  /* one transient flip at this read number */
    int readonly;           /* no write callback */
    int batch;              /* read_blocks offered (sim_set_batch) */
    uint64_t batches;       /* read_blocks calls, from 1 */
    uint64_t fail_batch_at, short_batch_at, flip_batch_at;
    simgroup *group;        /* shared power, or NULL */
    /* write_buffer: every other request is lent `lend`; until the write
     * of lent_block with it, any other call on the device is a broken
     * promise of the core's, and aborts the test. */
    uint8_t *lend;
    uint32_t lent_block;
    int lent;
    uint64_t lend_asks;
};

/* Create a device filled with the byte `fill`. Returns NULL on OOM. */
simdev *sim_new(uint32_t bs, uint32_t bc, uint8_t fill);
/* Create from an image buffer (bs * bc bytes), all of it durable. */
simdev *sim_from(const void *img, uint32_t bs, uint32_t bc);
void sim_free(simdev *s);
/* Reset counters and failure settings (not the content, not the seed,
 * not the group). */
void sim_reset_faults(simdev *s);
/* The power goes now (if still on), then comes back: the durable image
 * becomes the visible one. */
void sim_powercycle(simdev *s);
/* Offer read_blocks (on != 0) or not; survives sim_reset_faults. */
void sim_set_batch(simdev *s, int on);
/* The visible image (bs * bc bytes). */
static inline uint8_t *sim_image(simdev *s) { return s->cache; }
/* Whether the power of this device (or its group) is off. */
int sim_is_cut(const simdev *s);
/* Overwrite a block in both images, outside any counting: damage done
 * behind the store's back (a bad header, a stray write by someone else). */
void sim_poke(simdev *s, uint32_t block, const void *buf);

/* Join s to group g (counters and cut of g apply from now on). */
void sim_group_add(simgroup *g, simdev *s);
/* Reset the group's counter and cut (not its members' faults). */
void sim_group_reset(simgroup *g);
/* Power-cycle every member. */
void sim_group_powercycle(simgroup *g);

#endif
