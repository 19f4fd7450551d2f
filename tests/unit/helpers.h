/* helpers.h - small conveniences shared by the unit tests. */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ekv_internal.h"
#include "simdev.h"

/* Format n simulated replicas of bs x bc and open them. */
static inline ekv_store *open_sims(simdev **sims, unsigned n, uint32_t bs,
                                   uint32_t bc, uint32_t flags)
{
    ekv_device *devs[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++) {
        if (!sims[i])
            sims[i] = sim_new(bs, bc, 0);
        devs[i] = &sims[i]->dev;
    }
    ck_assert_int_eq(ekv_format(devs, n, NULL), 0);
    ekv_options o = {.flags = flags};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, devs, n, &o), 0);
    return s;
}

/* Set the participant mask (header flags) of a replica's header, as an
 * upstream implementation writes it (0) or an epoch bump would. Tests that
 * make replicas diverge by opening one alone (the way a crash between the
 * replicas of one put leaves them) use upstream-style sets (mask 0): there
 * a replica opened alone names no other, so nothing bumps the epoch. */
static inline void sim_set_mask(simdev *sd, uint32_t mask)
{
    uint8_t *h = malloc(sd->bs);
    ck_assert_ptr_nonnull(h);
    memcpy(h, sd->cache, sd->bs);
    put_le32(h + HDR_FLAGS, mask);
    block_seal(h, sd->bs);
    sim_poke(sd, 0, h);
    free(h);
}

static inline int reopen(ekv_store **s, simdev **sims, unsigned n,
                         uint32_t flags)
{
    ekv_device *devs[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++)
        devs[i] = &sims[i]->dev;
    ekv_close(*s);
    *s = NULL;
    ekv_options o = {.flags = flags};
    return ekv_open(s, devs, n, &o);
}

static inline int put_s(ekv_store *s, const char *k, const char *v)
{
    return ekv_put(s, k, strlen(k), v, strlen(v));
}

/* Get into a static buffer as a NUL-terminated string; NULL if absent. */
static inline const char *get_s(ekv_store *s, const char *k)
{
    static char buf[1 << 16];
    size_t len = 0;
    if (ekv_get(s, k, strlen(k), buf, sizeof(buf) - 1, &len) != 0)
        return NULL;
    buf[len] = 0;
    return buf;
}

/* ---- the image of a simulated device ---------------------------------- */

/* Block b of the visible image. */
static inline uint8_t *sim_block(simdev *sd, uint32_t b)
{
    return sd->cache + (size_t)b * sd->bs;
}

/* Whether block b is filled with byte v. */
static inline int block_is_filled(simdev *sd, uint32_t b, uint8_t v)
{
    const uint8_t *p = sim_block(sd, b);
    for (uint32_t i = 0; i < sd->bs; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* A copy of the visible image, to compare with later (free() it). */
static inline uint8_t *sim_snapshot(simdev *sd)
{
    uint8_t *p = malloc((size_t)sd->bs * sd->bc);
    ck_assert_ptr_nonnull(p);
    memcpy(p, sd->cache, (size_t)sd->bs * sd->bc);
    return p;
}

/* ---- blocks crafted by hand, CRC sealed ----------------------------------
 * For images no correct writer produces: recovery tests break one field at
 * a time. payload may be NULL (zero bytes). */
static inline void craft_desc(uint8_t *blk, uint32_t bs, const void *key,
                              uint16_t klen, uint32_t gen, uint32_t total,
                              uint32_t first, uint32_t count, uint32_t next,
                              const void *payload)
{
    memset(blk, 0, bs);
    blk[0] = EKV_TYPE_DESCRIPTOR;
    blk[DESC_HEADER_SIZE] = EKV_DESCRIPTOR_HEADER_SIZE;
    put_le16(blk + DESC_KEY_SIZE, klen);
    put_le32(blk + DESC_GENERATION, gen);
    put_le32(blk + DESC_TOTAL_SIZE, total);
    put_le32(blk + DESC_FIRST_SIZE, first);
    put_le32(blk + DESC_CHUNK_COUNT, count);
    put_le32(blk + DESC_NEXT, next);
    if (klen && 32u + klen <= bs - 4u)
        memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, klen);
    if (payload && first && 32u + klen + first <= bs - 4u)
        memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE + klen, payload, first);
    block_seal(blk, bs);
}

static inline void craft_chunk(uint8_t *blk, uint32_t bs, uint32_t owner,
                               uint32_t index, uint32_t size, uint32_t next,
                               const void *payload)
{
    memset(blk, 0, bs);
    blk[0] = EKV_TYPE_CHUNK;
    blk[CHUNK_HEADER_SIZE] = EKV_CHUNK_HEADER_SIZE;
    put_le32(blk + CHUNK_OWNER, owner);
    put_le32(blk + CHUNK_INDEX, index);
    put_le32(blk + CHUNK_PAYLOAD_SIZE, size);
    put_le32(blk + CHUNK_NEXT, next);
    if (payload && size && 20u + size <= bs - 4u)
        memcpy(blk + EKV_CHUNK_HEADER_SIZE, payload, size);
    block_seal(blk, bs);
}

/* ck_assert() reports every passing check to the runner through a pipe in
 * fork mode; in loops of millions of checks use this, which only calls
 * into check when the condition fails. */
#define require(expr)                                                     \
    do {                                                                  \
        if (!(expr))                                                      \
            ck_assert_msg(0, "requirement failed: %s", #expr);           \
    } while (0)

/* ---- deterministic pseudo-random numbers (splitmix64) -------------------- */
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fill buf with a pattern that depends on seed and position. */
static inline void fill_pattern(void *buf, size_t len, uint32_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

/* Assert that key holds exactly len bytes equal to want. */
static inline void assert_value(ekv_store *s, const void *key, size_t klen,
                                const void *want, size_t len)
{
    static uint8_t buf[1 << 17];
    size_t got = (size_t)-1;
    int rc = ekv_get(s, key, klen, buf, sizeof(buf), &got);
    ck_assert_msg(rc == 0, "get failed: %d (%s)", rc, ekv_strerror(rc));
    ck_assert_uint_eq(got, len);
    if (len)
        ck_assert_mem_eq(buf, want, len);
}

/* An allocator (ekv_allocator: lc_alloc, lc_free, a live_counter as its
 * context) that counts the bytes it has out and can be told to fail. */
typedef struct live_counter {
    size_t live;
    long fail_after; /* -1: never; else allocations that still succeed */
} live_counter;

static inline void *lc_alloc(void *ctx, size_t size)
{
    live_counter *c = ctx;
    if (c->fail_after == 0)
        return NULL;
    if (c->fail_after > 0)
        c->fail_after--;
    void *p = malloc(size ? size : 1);
    if (p)
        c->live += size;
    return p;
}

static inline void lc_free(void *ctx, void *p, size_t size)
{
    live_counter *c = ctx;
    c->live -= size;
    free(p);
}

#define RUN_SUITE(make)                                                   \
    int main(void)                                                        \
    {                                                                     \
        SRunner *sr = srunner_create(make());                             \
        srunner_run_all(sr, CK_NORMAL);                                   \
        int failed = srunner_ntests_failed(sr);                           \
        srunner_free(sr);                                                 \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                      \
    }

#endif
