/* simdev.c - see simdev.h for how the simulated device works. */
#include <stdlib.h>
#include <string.h>

#include "simdev.h"

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64: small, seedable, good enough for choosing faults */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void do_cut(simdev *s)
{
    /* Decide which unflushed writes persisted. */
    for (uint32_t b = 0; b < s->bc; b++) {
        if (!s->pending[b])
            continue;
        int keep = s->lose == SIM_LOSE_NONE || (rnd(&s->seed) & 1u);
        if (keep)
            memcpy(s->durable + (size_t)b * s->bs,
                   s->cache + (size_t)b * s->bs, s->bs);
        s->pending[b] = 0;
    }
    s->cut = 1;
}

static int sim_read(ekv_device *d, uint32_t block, void *buf)
{
    simdev *s = d->ctx;
    s->reads++;
    if (s->cut || block >= s->bc)
        return EKV_EIO;
    if (s->fail_read_at && s->reads == s->fail_read_at)
        return EKV_EIO;
    if (block == s->bad_block)
        return EKV_EIO;
    memcpy(buf, s->cache + (size_t)block * s->bs, s->bs);
    if (block == s->flip_block) {
        uint32_t bit = s->flip_bit % (8 * s->bs);
        ((uint8_t *)buf)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    return 0;
}

static int sim_write(ekv_device *d, uint32_t block, const void *buf)
{
    simdev *s = d->ctx;
    s->writes++;
    if (s->cut || block >= s->bc)
        return EKV_EIO;
    if (s->fail_write_at && s->writes == s->fail_write_at)
        return EKV_EIO;
    uint8_t *dst = s->cache + (size_t)block * s->bs;
    if (s->cut_at && s->writes == s->cut_at) {
        /* The torn write lands in durable storage directly. */
        uint8_t *dur = s->durable + (size_t)block * s->bs;
        do_cut(s);
        switch (s->tear) {
        case SIM_TEAR_NONE:
            break;
        case SIM_TEAR_PREFIX: {
            uint32_t n = s->tear_bytes < s->bs ? s->tear_bytes : s->bs;
            memcpy(dur, buf, n);
            break;
        }
        case SIM_TEAR_RANDOM:
            for (uint32_t i = 0; i < s->bs; i++)
                dur[i] = (uint8_t)rnd(&s->seed);
            break;
        case SIM_TEAR_PARTIAL_ERASE: {
            /* An erase (uniform fill) applied to part of the block. */
            const uint8_t *src = buf;
            int uniform = 1;
            for (uint32_t i = 1; i < s->bs && uniform; i++)
                uniform = src[i] == src[0];
            uint32_t n = s->tear_bytes < s->bs ? s->tear_bytes : s->bs;
            if (uniform)
                memset(dur + (s->bs - n), src[0], n);
            else
                memcpy(dur, buf, n);
            break;
        }
        }
        return EKV_EIO;
    }
    memcpy(dst, buf, s->bs);
    s->pending[block] = 1;
    return 0;
}

static int sim_flush(ekv_device *d)
{
    simdev *s = d->ctx;
    s->flushes++;
    if (s->cut)
        return EKV_EIO;
    if (s->fail_flush_at && s->flushes == s->fail_flush_at)
        return EKV_EIO;
    for (uint32_t b = 0; b < s->bc; b++)
        if (s->pending[b]) {
            memcpy(s->durable + (size_t)b * s->bs,
                   s->cache + (size_t)b * s->bs, s->bs);
            s->pending[b] = 0;
        }
    return 0;
}

void sim_reset_faults(simdev *s)
{
    s->reads = s->writes = s->flushes = 0;
    s->cut_at = 0;
    s->cut = 0;
    s->tear = SIM_TEAR_NONE;
    s->tear_bytes = 0;
    s->lose = SIM_LOSE_NONE;
    s->fail_read_at = s->fail_write_at = s->fail_flush_at = 0;
    s->bad_block = EKV_BLOCK_NONE;
    s->flip_block = EKV_BLOCK_NONE;
    s->dev.write = s->readonly ? NULL : sim_write;
}

simdev *sim_new(uint32_t bs, uint32_t bc, uint8_t fill)
{
    simdev *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    size_t n = (size_t)bs * bc;
    s->cache = malloc(n);
    s->durable = malloc(n);
    s->pending = calloc(bc, 1);
    if (!s->cache || !s->durable || !s->pending) {
        sim_free(s);
        return NULL;
    }
    memset(s->cache, fill, n);
    memset(s->durable, fill, n);
    s->bs = bs;
    s->bc = bc;
    s->dev.block_size = bs;
    s->dev.block_count = bc;
    s->dev.read = sim_read;
    s->dev.flush = sim_flush;
    s->dev.ctx = s;
    sim_reset_faults(s);
    return s;
}

simdev *sim_from(const void *img, uint32_t bs, uint32_t bc)
{
    simdev *s = sim_new(bs, bc, 0);
    if (s) {
        memcpy(s->cache, img, (size_t)bs * bc);
        memcpy(s->durable, img, (size_t)bs * bc);
    }
    return s;
}

void sim_powercycle(simdev *s)
{
    if (!s->cut)
        do_cut(s);
    memcpy(s->cache, s->durable, (size_t)s->bs * s->bc);
    memset(s->pending, 0, s->bc);
    s->cut = 0;
    s->cut_at = 0;
}

void sim_free(simdev *s)
{
    if (!s)
        return;
    free(s->cache);
    free(s->durable);
    free(s->pending);
    free(s);
}
