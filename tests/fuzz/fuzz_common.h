/*
 * fuzz_common.h - what the libFuzzer targets share.
 *
 * How the targets work
 * --------------------
 * Each target turns the fuzzer's bytes into something the library takes
 * (a block, a storage image of 1..3 replicas, a sequence of operations),
 * runs it, and checks properties that must hold whatever the input: no
 * crash or sanitizer report (the build has ASan and UBSan), no leak, and
 * target-specific invariants (a decoded block is consistent with its
 * bytes; read-only and writable recovery agree; a second recovery writes
 * nothing; operations agree with a model). A broken invariant calls
 * FUZZ_CHECK, which aborts, so libFuzzer saves the input as a crash.
 *
 * Random bytes almost never carry a right CRC, so the targets seal the
 * blocks they build (the harness "fixes up" the CRC) and the fuzzer
 * reaches the record logic behind the CRC check.
 *
 * The same sources build without libFuzzer into a replay program
 * (fuzz_replay.c) that runs saved inputs as ordinary tests.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekv_internal.h"
#include "simdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,    \
                    __LINE__, #cond);                                     \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* A reader over the input: past its end it yields zeros. */
typedef struct fz {
    const uint8_t *p;
    size_t n, i;
} fz;

static inline uint8_t fz_u8(fz *f)
{
    return f->i < f->n ? f->p[f->i++] : 0;
}

static inline uint32_t fz_u32(fz *f)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++)
        v |= (uint32_t)fz_u8(f) << (8 * k);
    return v;
}

/* Copy up to n input bytes into out; zero-fill the rest. */
static inline void fz_bytes(fz *f, uint8_t *out, size_t n)
{
    size_t have = f->n - f->i < n ? f->n - f->i : n;
    if (have)
        memcpy(out, f->p + f->i, have);
    memset(out + have, 0, n - have);
    f->i += have;
}

/* Seal a block whose type byte is a record or header type: the harness
 * fix-up that lets the fuzzer past the CRC. */
static inline void fuzz_seal_if_typed(uint8_t *blk, uint32_t bs)
{
    if (blk[0] >= EKV_TYPE_HEADER && blk[0] <= EKV_TYPE_CHUNK)
        block_seal(blk, bs);
}

/* ---- images from input ---------------------------------------------------
 * Layout: one flags byte, then the replicas' blocks in order.
 *   bits 0-1  block size 64 << v (64..512)
 *   bit  2    write a valid header into block 0 of every replica
 *   bit  3    seal every block whose type byte is 1..3
 *   bits 4-5  replicas - 1 (3 means 1)
 *   bit  6    erase byte 0xFF
 *   bit  7    open with EKV_OPEN_DEGRADED
 * The block count is what the input fills (at least 2, at most 64). */
#define FUZZ_MAX_REP 3

typedef struct fuzz_image {
    unsigned n;
    uint32_t bs, bc;
    uint8_t erase;
    uint32_t flags;
    simdev *sim[FUZZ_MAX_REP];
    ekv_device *devs[FUZZ_MAX_REP];
} fuzz_image;

static inline void fuzz_image_build(fuzz_image *im, fz *f, size_t max_bytes)
{
    uint8_t fl = fz_u8(f);
    im->bs = 64u << (fl & 3u);
    im->n = ((fl >> 4) & 3u) + 1;
    if (im->n > FUZZ_MAX_REP)
        im->n = 1;
    im->erase = (fl & 0x40) ? 0xff : 0x00;
    im->flags = (fl & 0x80) ? EKV_OPEN_DEGRADED : 0;
    size_t avail = f->n - f->i;
    if (avail > max_bytes)
        avail = max_bytes;
    size_t bc = avail / ((size_t)im->bs * im->n);
    if (bc < 2)
        bc = 2;
    if (bc > 64)
        bc = 64;
    im->bc = (uint32_t)bc;
    uint8_t *blk = malloc(im->bs);
    FUZZ_CHECK(blk != NULL);
    for (unsigned r = 0; r < im->n; r++) {
        im->sim[r] = sim_new(im->bs, im->bc, im->erase);
        FUZZ_CHECK(im->sim[r] != NULL);
        im->devs[r] = &im->sim[r]->dev;
        for (uint32_t b = 0; b < im->bc; b++) {
            fz_bytes(f, blk, im->bs);
            if (b == 0 && (fl & 4))
                header_encode(blk, im->bs, im->bc, r, 0, 0);
            else if (fl & 8)
                fuzz_seal_if_typed(blk, im->bs);
            sim_poke(im->sim[r], b, blk);
        }
    }
    free(blk);
}

static inline void fuzz_image_free(fuzz_image *im)
{
    for (unsigned r = 0; r < im->n; r++)
        sim_free(im->sim[r]);
}

static inline uint64_t fuzz_image_writes(const fuzz_image *im)
{
    uint64_t w = 0;
    for (unsigned r = 0; r < im->n; r++)
        w += im->sim[r]->writes;
    return w;
}

/* ---- a snapshot of what a store holds --------------------------------- */
typedef struct kv {
    uint8_t *key;
    size_t klen;
    uint8_t *val; /* NULL: get failed (err) */
    size_t vlen;
    int err;
} kv;

typedef struct snapshot {
    kv *items;
    size_t n, cap;
    ekv_store *s;
} snapshot;

static inline int snap_one(void *ctx, const ekv_key_info *ki)
{
    snapshot *sn = ctx;
    if (sn->n == sn->cap) {
        sn->cap = sn->cap ? sn->cap * 2 : 16;
        sn->items = realloc(sn->items, sn->cap * sizeof(kv));
        FUZZ_CHECK(sn->items != NULL);
    }
    kv *it = &sn->items[sn->n++];
    it->klen = ki->key_len;
    it->key = malloc(ki->key_len ? ki->key_len : 1);
    FUZZ_CHECK(it->key != NULL);
    if (ki->key_len)
        memcpy(it->key, ki->key, ki->key_len);
    it->val = NULL;
    it->vlen = 0;
    it->err = 0;
    return 0;
}

static inline int kv_cmp(const void *a_, const void *b_)
{
    const kv *a = a_, *b = b_;
    size_t m = a->klen < b->klen ? a->klen : b->klen;
    int c = m ? memcmp(a->key, b->key, m) : 0;
    if (c)
        return c;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

/* Iterate and get every key, sorted by key. Checks that iterate lists a
 * key once and that get agrees with stat about the value's size. */
static inline void snapshot_take(snapshot *sn, ekv_store *s)
{
    memset(sn, 0, sizeof(*sn));
    FUZZ_CHECK(ekv_iterate(s, snap_one, sn) == 0);
    for (size_t i = 0; i < sn->n; i++) {
        kv *it = &sn->items[i];
        ekv_key_info ki;
        FUZZ_CHECK(ekv_stat_key(s, it->key, it->klen, &ki) == 0);
        size_t len = 0;
        it->val = malloc(ki.value_size ? ki.value_size : 1);
        FUZZ_CHECK(it->val != NULL);
        it->err = ekv_get(s, it->key, it->klen, it->val, ki.value_size, &len);
        FUZZ_CHECK(it->err == 0 || it->err == EKV_ECORRUPT ||
                   it->err == EKV_EIO);
        if (it->err == 0)
            FUZZ_CHECK(len == ki.value_size);
        it->vlen = it->err ? 0 : len;
    }
    if (sn->n > 1)
        qsort(sn->items, sn->n, sizeof(kv), kv_cmp);
    for (size_t i = 1; i < sn->n; i++)
        FUZZ_CHECK(kv_cmp(&sn->items[i - 1], &sn->items[i]) != 0);
}

/* The readable keys and values of a and b are the same. */
static inline int snapshot_equal(const snapshot *a, const snapshot *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const kv *x = &a->items[i], *y = &b->items[i];
        if (kv_cmp(x, y) || x->err != y->err || x->vlen != y->vlen ||
            (x->vlen && memcmp(x->val, y->val, x->vlen)))
            return 0;
    }
    return 1;
}

static inline void snapshot_free(snapshot *sn)
{
    for (size_t i = 0; i < sn->n; i++) {
        free(sn->items[i].key);
        free(sn->items[i].val);
    }
    free(sn->items);
    memset(sn, 0, sizeof(*sn));
}

/* Open the image; 0 or the error. */
static inline int fuzz_open(fuzz_image *im, ekv_store **s, uint32_t flags)
{
    ekv_options o = {.flags = im->flags | flags, .erase_byte = im->erase};
    return ekv_open(s, im->devs, im->n, &o);
}

#endif
