/* simdev.c - see simdev.h for how the simulated device works. */
#include <stdio.h>
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

static uint8_t *blk(uint8_t *img, const simdev *s, uint32_t b)
{
    return img + (size_t)b * s->bs;
}

/* A call other than the write the lent buffer was for (see simdev.h). */
static void lend_check(simdev *s, const char *call)
{
    if (!s->lent)
        return;
    fprintf(stderr, "simdev: %s after lending a buffer for block %u\n", call,
            (unsigned)s->lent_block);
    abort();
}

static void *sim_write_buffer(ekv_device *d, uint32_t block)
{
    simdev *s = d->ctx;
    lend_check(s, "write_buffer");
    if (s->lend_asks++ % 2)
        return NULL; /* the core's own buffer, every other time */
    s->lent = 1;
    s->lent_block = block;
    memset(s->lend, 0xa5, s->bs); /* nothing in it may be relied on */
    return s->lend;
}

/* Settle the unflushed writes by the loss model and forget them. */
static void settle_pending(simdev *s)
{
    for (uint32_t b = 0; b < s->bc; b++) {
        if (!s->pending[b])
            continue;
        int keep = s->lose == SIM_LOSE_NONE ||
                   (s->lose == SIM_LOSE_SUBSET && (rnd(&s->seed) & 1u));
        if (keep)
            memcpy(blk(s->durable, s, b), blk(s->cache, s, b), s->bs);
        s->pending[b] = 0;
    }
}

static void do_cut(simdev *s)
{
    if (s->cut)
        return;
    settle_pending(s);
    s->cut = 1;
}

int sim_is_cut(const simdev *s)
{
    return s->cut;
}

static int is_uniform(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++)
        if (p[i] != p[0])
            return 0;
    return 1;
}

/* Leave block `block` of the durable image as an interrupted write of buf
 * leaves it. */
static void tear_block(simdev *s, uint32_t block, const uint8_t *buf)
{
    uint8_t *dur = blk(s->durable, s, block);
    uint32_t n = s->tear_bytes < s->bs ? s->tear_bytes : s->bs;
    switch (s->tear) {
    case SIM_TEAR_NONE:
        break;
    case SIM_TEAR_PREFIX:
        memcpy(dur, buf, n);
        break;
    case SIM_TEAR_SUFFIX:
        memcpy(dur + n, buf + n, s->bs - n);
        break;
    case SIM_TEAR_RANDOM:
        for (uint32_t i = 0; i < s->bs; i++)
            dur[i] = (uint8_t)rnd(&s->seed);
        break;
    case SIM_TEAR_PARTIAL_ERASE:
        if (is_uniform(buf, s->bs))
            memset(dur + (s->bs - n), buf[0], n);
        else
            memcpy(dur, buf, n);
        break;
    case SIM_TEAR_ERASE_HEAD:
        if (is_uniform(buf, s->bs))
            memset(dur, buf[0], n);
        else
            memcpy(dur + n, buf + n, s->bs - n);
        break;
    }
}

/* Whether operation number `op` falls in the failing window that starts
 * at `at`. */
static int failing(uint64_t op, uint64_t at, uint32_t count)
{
    return at && op >= at && op - at < (count ? count : 1);
}

static int sim_read(ekv_device *d, uint32_t block, void *buf)
{
    simdev *s = d->ctx;
    lend_check(s, "read");
    s->reads++;
    if (s->cut || block >= s->bc)
        return EKV_EIO;
    if (failing(s->reads, s->fail_read_at, s->fail_count))
        return EKV_EIO;
    if (block == s->bad_block)
        return EKV_EIO;
    memcpy(buf, blk(s->cache, s, block), s->bs);
    if (block == s->flip_block) {
        uint32_t bit = s->flip_bit % (8 * s->bs);
        ((uint8_t *)buf)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    if (s->flip_read_at && s->reads == s->flip_read_at) {
        uint32_t bit = (uint32_t)(rnd(&s->seed) % (8u * s->bs));
        ((uint8_t *)buf)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    return 0;
}

/* What a failed transfer leaves in a batch buffer: valid blocks, but the
 * range's blocks in reverse order, so each sits in another block's place. */
static void scramble(simdev *s, uint8_t *out, uint32_t first, uint32_t from,
                     uint32_t count)
{
    for (uint32_t i = from; i < count; i++)
        memcpy(out + (size_t)i * s->bs,
               blk(s->cache, s, first + (count - 1 - i)), s->bs);
}

static void flip_in(simdev *s, uint8_t *b, uint32_t bit)
{
    bit %= 8u * s->bs;
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

static int sim_read_blocks(ekv_device *d, uint32_t first, uint32_t count,
                           void *buf)
{
    simdev *s = d->ctx;
    lend_check(s, "read_blocks");
    uint8_t *out = buf;
    s->batches++;
    if (s->cut || first >= s->bc || count == 0 || count > s->bc - first)
        return EKV_EIO;
    if (failing(s->batches, s->fail_batch_at, s->fail_count) ||
        (s->bad_block >= first && s->bad_block - first < count)) {
        scramble(s, out, first, 0, count);
        return EKV_EIO;
    }
    memcpy(out, blk(s->cache, s, first), (size_t)count * s->bs);
    if (s->flip_block >= first && s->flip_block - first < count)
        flip_in(s, out + (size_t)(s->flip_block - first) * s->bs,
                s->flip_bit);
    if (s->short_batch_at && s->batches == s->short_batch_at) {
        /* Cut short in the middle of the first block, and say how many
         * bytes came, as pread would. */
        size_t got = s->bs / 2;
        uint32_t whole = (uint32_t)(got / s->bs);
        scramble(s, out, first, whole + 1, count);
        memset(out + got, 0xa5, s->bs - got % s->bs);
        return (int)got;
    }
    if (s->flip_batch_at && s->batches == s->flip_batch_at) {
        uint32_t b = (uint32_t)(rnd(&s->seed) % count);
        flip_in(s, out + (size_t)b * s->bs, (uint32_t)rnd(&s->seed));
    }
    return 0;
}

void sim_set_batch(simdev *s, int on)
{
    s->batch = on;
    s->dev.read_blocks = on ? sim_read_blocks : NULL;
}

static int sim_write(ekv_device *d, uint32_t block, const void *buf)
{
    simdev *s = d->ctx;
    if (s->lent && (block != s->lent_block || buf != s->lend)) {
        fprintf(stderr, "simdev: write of block %u after lending a buffer "
                "for block %u\n", (unsigned)block, (unsigned)s->lent_block);
        abort();
    }
    s->lent = 0;
    s->writes++;
    if (s->cut || block >= s->bc)
        return EKV_EIO;
    int cut_now;
    if (s->group) {
        simgroup *g = s->group;
        g->writes++;
        cut_now = g->cut_at && g->writes == g->cut_at;
    } else {
        cut_now = s->cut_at && s->writes == s->cut_at;
    }
    if (cut_now) {
        /* The power goes during this write: settle everyone's pending
         * writes first, then tear this block over what persisted. */
        if (s->group) {
            s->group->cut = 1;
            for (unsigned i = 0; i < s->group->n; i++)
                do_cut(s->group->member[i]);
        } else {
            do_cut(s);
        }
        tear_block(s, block, buf);
        return EKV_EIO;
    }
    if (failing(s->writes, s->fail_write_at, s->fail_count)) {
        if (s->fail_write_tears) {
            /* A failed program leaves the cell content undefined, in
             * cache and flash alike. */
            uint8_t *c = blk(s->cache, s, block);
            for (uint32_t i = 0; i < s->bs; i++)
                c[i] = (uint8_t)rnd(&s->seed);
            memcpy(blk(s->durable, s, block), c, s->bs);
            s->pending[block] = 0;
        }
        return EKV_EIO;
    }
    memcpy(blk(s->cache, s, block), buf, s->bs);
    s->pending[block] = 1;
    return 0;
}

static int sim_flush(ekv_device *d)
{
    simdev *s = d->ctx;
    lend_check(s, "flush");
    s->flushes++;
    if (s->cut)
        return EKV_EIO;
    if (failing(s->flushes, s->fail_flush_at, s->fail_count)) {
        if (s->flush_fail_drops)
            settle_pending(s);
        return EKV_EIO;
    }
    for (uint32_t b = 0; b < s->bc; b++)
        if (s->pending[b]) {
            memcpy(blk(s->durable, s, b), blk(s->cache, s, b), s->bs);
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
    s->fail_count = 0;
    s->fail_write_tears = 0;
    s->flush_fail_drops = 0;
    s->bad_block = EKV_BLOCK_NONE;
    s->flip_block = EKV_BLOCK_NONE;
    s->flip_bit = 0;
    s->flip_read_at = 0;
    s->batches = 0;
    s->fail_batch_at = s->short_batch_at = s->flip_batch_at = 0;
    s->dev.write = s->readonly ? NULL : sim_write;
    s->dev.write_buffer = s->readonly ? NULL : sim_write_buffer;
    s->dev.read_blocks = s->batch ? sim_read_blocks : NULL;
    s->lent = 0;
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
    s->lend = malloc(bs);
    if (!s->cache || !s->durable || !s->pending || !s->lend) {
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
    do_cut(s);
    memcpy(s->cache, s->durable, (size_t)s->bs * s->bc);
    memset(s->pending, 0, s->bc);
    s->cut = 0;
    s->cut_at = 0;
}

void sim_poke(simdev *s, uint32_t block, const void *buf)
{
    if (block >= s->bc)
        return;
    memcpy(blk(s->cache, s, block), buf, s->bs);
    memcpy(blk(s->durable, s, block), buf, s->bs);
    s->pending[block] = 0;
}

void sim_free(simdev *s)
{
    if (!s)
        return;
    free(s->cache);
    free(s->durable);
    free(s->pending);
    free(s->lend);
    free(s);
}

void sim_group_add(simgroup *g, simdev *s)
{
    if (g->n < SIM_GROUP_MAX) {
        g->member[g->n++] = s;
        s->group = g;
    }
}

void sim_group_reset(simgroup *g)
{
    g->writes = 0;
    g->cut_at = 0;
    g->cut = 0;
}

void sim_group_powercycle(simgroup *g)
{
    /* Everyone loses power at the same instant, then comes back. */
    for (unsigned i = 0; i < g->n; i++)
        do_cut(g->member[i]);
    for (unsigned i = 0; i < g->n; i++)
        sim_powercycle(g->member[i]);
    g->cut = 0;
    g->cut_at = 0;
}
