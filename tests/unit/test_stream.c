/*
 * Streamed puts (include/embedkv.h: ekv_stream_open and after).
 *
 * A value handed over in pieces leaves the images ekv_put of the whole
 * value leaves; nothing of it can be seen before the commit, and
 * abandoning it gives every block back; other calls and other streams
 * may come between its calls; a power cut keeps the old value or the new
 * one, the new one only once the commit's descriptor is durable; device
 * errors make the stream fail for good and keep the old value; the limits
 * (EFBIG, ENOSPC, EROFS, ENAMETOOLONG, EINVAL, ENOMEM, ERANGE); recovery
 * and repair wait for open streams; closing a store frees its streams.
 *
 * A scanning build (EKV_NO_INDEX) has no streamed puts: built against
 * it, this file checks only that ekv_stream_open says EKV_ENOSYS.
 */
#include <stdint.h>
#include <stdio.h>

#include "helpers.h"

#define BS 256u
#define BC 64u
/* Value bytes of one chunk. */
#define CCAP (BS - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE)
#define MAXREP 3u

#ifndef EKV_NO_INDEX

/* Value bytes of a descriptor whose key is klen bytes long. */
static uint32_t fcap(size_t klen)
{
    return BS - EKV_DESCRIPTOR_HEADER_SIZE - (uint32_t)klen - EKV_CRC_SIZE;
}

static uint8_t v_old[500], v_new[2600], v_h[400], v_z[60], v_mid[300];

static void values_init(void)
{
    fill_pattern(v_old, sizeof(v_old), 11);
    fill_pattern(v_new, sizeof(v_new), 12);
    fill_pattern(v_h, sizeof(v_h), 13);
    fill_pattern(v_z, sizeof(v_z), 14);
    fill_pattern(v_mid, sizeof(v_mid), 15);
}

/* ---- sets of simulated replicas ---------------------------------------- */

static int try_open(ekv_store **s, simdev **sd, unsigned n, uint8_t erase,
                    uint32_t flags, const ekv_allocator *al)
{
    ekv_device *d[MAXREP];
    for (unsigned i = 0; i < n; i++)
        d[i] = &sd[i]->dev;
    ekv_options o = {.flags = flags, .erase_byte = erase, .allocator = al};
    *s = NULL;
    return ekv_open(s, d, n, &o);
}

static ekv_store *open_set(simdev **sd, unsigned n, uint8_t erase)
{
    ekv_store *s = NULL;
    int rc = try_open(&s, sd, n, erase, 0, NULL);
    ck_assert_msg(rc == 0, "open: %s", ekv_strerror(rc));
    return s;
}

/* n devices of bc blocks filled with the erase byte, formatted and
 * opened with that erase byte. */
static ekv_store *fresh_set(simdev **sd, unsigned n, uint32_t bc,
                            uint8_t erase)
{
    ekv_device *d[MAXREP];
    for (unsigned i = 0; i < n; i++) {
        sd[i] = sim_new(BS, bc, erase);
        ck_assert_ptr_nonnull(sd[i]);
        d[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(d, n, NULL), 0);
    return open_set(sd, n, erase);
}

static void free_set(simdev **sd, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        sim_free(sd[i]);
        sd[i] = NULL;
    }
}

static void reset_set(simdev **sd, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sim_reset_faults(sd[i]);
}

/* Close and open again; the recovery of that open must write nothing
 * (no garbage was left behind). */
static void reopen_clean(ekv_store **s, simdev **sd, unsigned n,
                         uint8_t erase)
{
    ekv_close(*s);
    reset_set(sd, n);
    *s = open_set(sd, n, erase);
    for (unsigned i = 0; i < n; i++)
        ck_assert_msg(sd[i]->writes == 0,
                      "recovery erased %llu blocks of replica %u",
                      (unsigned long long)sd[i]->writes, i);
}

/* "h" (2 blocks), "t" (3 blocks, the value streams replace), "z" (1
 * block), then "h" deleted: free blocks below used ones, so a record goes
 * to a hole and then past the used blocks. */
static void preload(ekv_store *s)
{
    ck_assert_int_eq(ekv_put(s, "h", 1, v_h, sizeof(v_h)), 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_old, sizeof(v_old)), 0);
    ck_assert_int_eq(ekv_put(s, "z", 1, v_z, sizeof(v_z)), 0);
    ck_assert_int_eq(ekv_delete(s, "h", 1), 0);
}

static uint32_t gen_of(ekv_store *s, const void *k, size_t klen)
{
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, k, klen, &ki), 0);
    return ki.generation;
}

static uint32_t free_of(ekv_store *s)
{
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    return st.free_blocks;
}

static int is_absent(ekv_store *s, const void *k, size_t klen)
{
    size_t len = 0;
    uint8_t b[8];
    return ekv_get(s, k, klen, b, sizeof(b), &len) == EKV_ENOENT;
}

enum { ST_ABSENT, ST_OLD, ST_NEW, ST_OTHER };
static const char *const state_names[] = {"absent", "old", "new",
                                          "neither old nor new"};

/* Which of two values key k holds. */
static int value_state(ekv_store *s, const char *k, const uint8_t *oldv,
                       size_t oldn, const uint8_t *newv, size_t newn)
{
    static uint8_t buf[4096];
    size_t len = 0;
    int rc = ekv_get(s, k, strlen(k), buf, sizeof(buf), &len);
    if (rc == EKV_ENOENT)
        return ST_ABSENT;
    if (rc)
        return ST_OTHER;
    if (oldv && len == oldn && memcmp(buf, oldv, len) == 0)
        return ST_OLD;
    if (newv && len == newn && memcmp(buf, newv, len) == 0)
        return ST_NEW;
    return ST_OTHER;
}

/* The first block where two sets' images differ, as a failure. */
static void assert_same_images(simdev **a, simdev **b, unsigned n,
                               const char *what)
{
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_eq(a[i]->bc, b[i]->bc);
        for (uint32_t blk = 0; blk < a[i]->bc; blk++) {
            size_t o = (size_t)blk * BS;
            if (memcmp(a[i]->cache + o, b[i]->cache + o, BS) != 0)
                ck_abort_msg("%s: replica %u, block %u differs", what, i,
                             blk);
            if (memcmp(a[i]->durable + o, b[i]->durable + o, BS) != 0)
                ck_abort_msg("%s: replica %u, block %u differs on the "
                             "durable image", what, i, blk);
        }
    }
}

static void assert_image_is(simdev *sd, const uint8_t *snap,
                            const char *what)
{
    for (uint32_t blk = 0; blk < sd->bc; blk++)
        if (memcmp(sd->cache + (size_t)blk * BS, snap + (size_t)blk * BS,
                   BS) != 0)
            ck_abort_msg("%s: block %u is not as it was", what, blk);
}

/* The keys of a store, collected by ekv_iterate. */
typedef struct keyset {
    unsigned n;
    size_t len[32];
    uint8_t key[32][BS];
} keyset;

static int collect(void *ctx, const ekv_key_info *ki)
{
    keyset *ks = ctx;
    ck_assert_uint_lt(ks->n, 32);
    ks->len[ks->n] = ki->key_len;
    memcpy(ks->key[ks->n], ki->key, ki->key_len);
    ks->n++;
    return 0;
}

/* Right after an open: on every replica, the blocks recovery left in use
 * are exactly those of the records it kept (orphan chunks were erased). */
static void assert_only_records_in_use(ekv_store *s, unsigned n)
{
    static keyset ks;
    ks.n = 0;
    ck_assert_int_eq(ekv_iterate(s, collect, &ks), 0);
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    for (unsigned r = 0; r < n; r++) {
        uint64_t used = 0;
        for (unsigned k = 0; k < ks.n; k++) {
            size_t len = 0;
            uint32_t g = 0;
            if (ekv_get_replica(s, r, ks.key[k], ks.len[k], NULL, 0, &len,
                                &g) == 0)
                used += record_blocks(BS, ks.len[k], len);
        }
        ekv_replica_report rep;
        ck_assert_int_eq(ekv_replica_report_get(s, r, &rep), 0);
        ck_assert_msg(rep.free_blocks == st.block_count - 1 - used,
                      "replica %u: %u blocks free, but records use %llu of "
                      "%u", r, rep.free_blocks, (unsigned long long)used,
                      st.block_count - 1);
    }
}

/* Blocks the records of the index take (one replica's worth). */
static uint32_t blocks_of_records(ekv_store *s)
{
    static keyset ks;
    ks.n = 0;
    ck_assert_int_eq(ekv_iterate(s, collect, &ks), 0);
    uint64_t used = 0;
    for (unsigned k = 0; k < ks.n; k++) {
        ekv_key_info ki;
        ck_assert_int_eq(ekv_stat_key(s, ks.key[k], ks.len[k], &ki), 0);
        used += record_blocks(BS, ks.len[k], ki.value_size);
    }
    return (uint32_t)used;
}

static void assert_used_blocks_are_records(ekv_store *s)
{
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.used_blocks, blocks_of_records(s));
}

/* ---- writing a value in pieces ------------------------------------------ */

enum how { BYTES, RANDOM, WHOLE, BOUNDARY, NHOW };
static const char *const how_names[] = {
    "byte by byte", "random pieces", "one piece",
    "pieces ending on block boundaries"};

static size_t piece_len(enum how how, size_t off, size_t len, uint32_t fc,
                        uint64_t *seed)
{
    size_t left = len - off, n;
    switch (how) {
    case BYTES:
        n = 1;
        break;
    case RANDOM:
        n = 1 + (size_t)(test_rand(seed) % (2 * BS));
        break;
    case BOUNDARY:
        n = off < fc ? fc - off : CCAP - (off - fc) % CCAP;
        break;
    default:
        n = left;
        break;
    }
    return n < left ? n : left;
}

/* Stream v[0..len) as the header's example does; returns the first
 * error, or the commit's result. */
static int stream_value(ekv_store *s, const void *key, size_t klen,
                        const uint8_t *v, size_t len, enum how how,
                        uint64_t *seed, uint32_t uflags)
{
    ekv_stream *w = NULL;
    int rc = ekv_stream_open(s, &w, key, klen, uflags);
    if (rc)
        return rc;
    ck_assert_ptr_nonnull(w);
    size_t off = 0;
    while (off < len && !rc) {
        size_t n = piece_len(how, off, len, fcap(klen), seed);
        rc = ekv_stream_write(w, v + off, n);
        /* Empty pieces now and then: they change nothing. */
        if (!rc && how == RANDOM && (test_rand(seed) & 3u) == 0)
            rc = ekv_stream_write(w, v + off + n, 0);
        off += n;
    }
    if (rc) {
        ekv_stream_abandon(w);
        return rc;
    }
    return ekv_stream_commit(w);
}

/* ---- a spy on device writes and flushes --------------------------------
 * Notes when a descriptor is first written (the commit) and the flush
 * that follows it, counted as the simulated device counts. */
typedef struct spy {
    simdev *sd;
    uint64_t desc_writes;     /* descriptor blocks written */
    uint64_t first_desc;      /* write number of the first (device) */
    uint64_t first_desc_grp;  /* ... counted by the device's group */
    uint64_t desc_flush;      /* flush number of the flush after it */
    int desc_unflushed;
} spy;

static spy spies[MAXREP];
static unsigned nspies;
static int (*real_write)(ekv_device *, uint32_t, const void *);
static int (*real_flush)(ekv_device *);

static spy *spy_of(ekv_device *d)
{
    for (unsigned i = 0; i < nspies; i++)
        if (&spies[i].sd->dev == d)
            return &spies[i];
    return NULL;
}

static int spy_write(ekv_device *d, uint32_t b, const void *buf)
{
    int rc = real_write(d, b, buf);
    spy *p = spy_of(d);
    if (p && ((const uint8_t *)buf)[0] == EKV_TYPE_DESCRIPTOR) {
        if (!p->desc_writes++) {
            p->first_desc = p->sd->writes;
            p->first_desc_grp =
                p->sd->group ? p->sd->group->writes : p->sd->writes;
        }
        p->desc_unflushed = 1;
    }
    return rc;
}

static int spy_flush(ekv_device *d)
{
    int rc = real_flush(d);
    spy *p = spy_of(d);
    if (p && p->desc_unflushed && !p->desc_flush)
        p->desc_flush = p->sd->flushes;
    if (p)
        p->desc_unflushed = 0;
    return rc;
}

/* Watch these devices from now on (after their last sim_reset_faults). */
static void spy_on(simdev **sd, unsigned n)
{
    memset(spies, 0, sizeof(spies));
    nspies = n;
    for (unsigned i = 0; i < n; i++) {
        spies[i].sd = sd[i];
        real_write = sd[i]->dev.write;
        real_flush = sd[i]->dev.flush;
        sd[i]->dev.write = spy_write;
        sd[i]->dev.flush = spy_flush;
    }
}

static void spy_off(simdev **sd, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sd[i]->dev.flush = real_flush;
    reset_set(sd, n);
    nspies = 0;
}

/* ---- 1. the same blocks as ekv_put -------------------------------------- */

START_TEST(streamed_put_leaves_the_images_put_leaves)
{
    const unsigned n = (_i & 1) ? 3 : 1;
    const uint8_t erase = (_i & 2) ? 0xff : 0x00;
    const size_t fc = fcap(1);
    const size_t sizes[] = {0,
                            1,
                            fc - 1,
                            fc,
                            fc + 1,
                            fc + CCAP - 1,
                            fc + CCAP,
                            fc + CCAP + 1,
                            fc + 2 * CCAP,
                            fc + 3 * CCAP + 1,
                            fc + 5 * CCAP + 77};
    char what[160];
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        for (int how = 0; how < NHOW; how++) {
            const size_t len = sizes[si];
            uint64_t seed = si * 16 + (uint64_t)how;
            simdev *a[MAXREP] = {NULL}, *b[MAXREP] = {NULL};
            ekv_store *sa = fresh_set(a, n, BC, erase);
            ekv_store *sb = fresh_set(b, n, BC, erase);
            preload(sa);
            preload(sb);
            const uint32_t g0 = gen_of(sb, "t", 1);

            /* A rewrite: the old record goes. */
            ck_assert_int_eq(ekv_put_flags(sa, "t", 1, v_new, len, 0xa5u),
                             0);
            ck_assert_int_eq(
                stream_value(sb, "t", 1, v_new, len, how, &seed, 0xa5u), 0);
            snprintf(what, sizeof(what),
                     "%u replicas, erase %02x, rewrite of %zu bytes, %s", n,
                     erase, len, how_names[how]);
            assert_same_images(a, b, n, what);
            assert_value(sb, "t", 1, v_new, len);
            ekv_key_info ki;
            ck_assert_int_eq(ekv_stat_key(sb, "t", 1, &ki), 0);
            ck_assert_uint_eq(ki.generation, g0 + 1);
            ck_assert_uint_eq(ki.value_size, len);
            ck_assert_uint_eq(ki.replicas, (1u << n) - 1);

            /* A new key. */
            const uint8_t *v2 = v_new + 3;
            ck_assert_int_eq(ekv_put(sa, "fresh", 5, v2, len), 0);
            ck_assert_int_eq(
                stream_value(sb, "fresh", 5, v2, len, how, &seed, 0), 0);
            snprintf(what, sizeof(what),
                     "%u replicas, erase %02x, new key of %zu bytes, %s", n,
                     erase, len, how_names[how]);
            assert_same_images(a, b, n, what);
            assert_value(sb, "fresh", 5, v2, len);
            ck_assert_uint_eq(gen_of(sb, "fresh", 5), 1);

            /* Nothing for a recovery to do on either. */
            ekv_close(sa);
            reopen_clean(&sb, b, n, erase);
            assert_value(sb, "t", 1, v_new, len);
            assert_value(sb, "fresh", 5, v2, len);
            ck_assert_uint_eq(gen_of(sb, "t", 1), g0 + 1);
            ekv_close(sb);
            free_set(a, n);
            free_set(b, n);
        }
    }
}
END_TEST

START_TEST(longest_key_streams_into_the_blocks_put_uses)
{
    /* Its descriptor has no room for value bytes: every byte is a
     * chunk's. */
    const size_t klen = EKV_MAX_KEY_SIZE(BS);
    static uint8_t key[BS];
    fill_pattern(key, klen, 77);
    ck_assert_uint_eq(fcap(klen), 0);
    const size_t sizes[] = {0, 1, CCAP - 1, CCAP, CCAP + 1, 3 * CCAP + 5};
    char what[120];
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        for (int how = 0; how < NHOW; how++) {
            uint64_t seed = si + 100;
            simdev *a[1] = {NULL}, *b[1] = {NULL};
            ekv_store *sa = fresh_set(a, 1, BC, 0);
            ekv_store *sb = fresh_set(b, 1, BC, 0);
            for (int round = 0; round < 2; round++) {
                const uint8_t *v = v_new + round;
                ck_assert_int_eq(ekv_put(sa, key, klen, v, sizes[si]), 0);
                ck_assert_int_eq(stream_value(sb, key, klen, v, sizes[si],
                                              how, &seed, 0),
                                 0);
                snprintf(what, sizeof(what),
                         "longest key, %zu bytes, %s, round %d", sizes[si],
                         how_names[how], round);
                assert_same_images(a, b, 1, what);
                assert_value(sb, key, klen, v, sizes[si]);
            }
            ekv_close(sa);
            ekv_close(sb);
            free_set(a, 1);
            free_set(b, 1);
        }
    }
}
END_TEST

/* ---- 2. nothing visible before the commit ------------------------------- */

static int count_keys(void *ctx, const ekv_key_info *ki)
{
    ck_assert_msg(!(ki->key_len == 3 && memcmp(ki->key, "new", 3) == 0),
                  "an uncommitted key is iterated");
    (*(uint32_t *)ctx)++;
    return 0;
}

START_TEST(nothing_is_visible_before_commit_and_abandon_undoes_it_all)
{
    const unsigned n = _i ? 2 : 1;
    simdev *sd[MAXREP] = {NULL};
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    uint8_t *snap[MAXREP];
    for (unsigned i = 0; i < n; i++)
        snap[i] = sim_snapshot(sd[i]);
    ekv_stats st0, st;
    ck_assert_int_eq(ekv_stats_get(s, &st0), 0);
    const uint32_t g0 = gen_of(s, "t", 1);
    reset_set(sd, n);

    ekv_stream *wt = NULL, *wn = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &wt, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_open(s, &wn, "new", 3, 0), 0);
    for (unsigned i = 0; i < n; i++)
        ck_assert_uint_eq(sd[i]->writes, 0); /* open writes nothing */
    /* Three chunks of each written, a fourth filling. */
    const size_t len = fcap(1) + 3 * CCAP + 10;
    for (size_t off = 0; off < len; off += 50) {
        size_t k = len - off < 50 ? len - off : 50;
        ck_assert_int_eq(ekv_stream_write(wt, v_new + off, k), 0);
        ck_assert_int_eq(ekv_stream_write(wn, v_new + off, k), 0);
    }
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_ge(sd[i]->writes, 6);
        ck_assert(memcmp(sim_image(sd[i]), snap[i], (size_t)BS * BC) != 0);
    }

    /* The old value, its generation, no new key, on every path. */
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_uint_eq(gen_of(s, "t", 1), g0);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "new", 3, &ki), EKV_ENOENT);
    ck_assert(is_absent(s, "new", 3));
    for (unsigned r = 0; r < n; r++) {
        static uint8_t buf[1024];
        size_t got = 0;
        uint32_t g = 0;
        ck_assert_int_eq(ekv_get_replica(s, r, "t", 1, buf, sizeof(buf),
                                         &got, &g),
                         0);
        ck_assert_uint_eq(got, sizeof(v_old));
        ck_assert_mem_eq(buf, v_old, got);
        ck_assert_uint_eq(g, g0);
        ck_assert_int_eq(ekv_get_replica(s, r, "new", 3, buf, sizeof(buf),
                                         &got, &g),
                         EKV_ENOENT);
    }
    uint32_t keys = 0;
    ck_assert_int_eq(ekv_iterate(s, count_keys, &keys), 0);
    ck_assert_uint_eq(keys, st0.records);
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.records, st0.records);
    /* The streams' blocks are in use. */
    ck_assert_uint_lt(st.free_blocks, st0.free_blocks);

    ekv_stream_abandon(wt);
    ekv_stream_abandon(wn);
    for (unsigned i = 0; i < n; i++)
        assert_image_is(sd[i], snap[i], "after abandon");
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.free_blocks, st0.free_blocks);
    ck_assert_uint_eq(st.used_blocks, st0.used_blocks);
    ck_assert_uint_eq(st.records, st0.records);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_uint_eq(gen_of(s, "t", 1), g0);
    ck_assert(is_absent(s, "new", 3));

    reopen_clean(&s, sd, n, 0);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_uint_eq(gen_of(s, "t", 1), g0);
    ck_assert(is_absent(s, "new", 3));
    ck_assert_uint_eq(free_of(s), st0.free_blocks);
    ekv_close(s);
    for (unsigned i = 0; i < n; i++)
        free(snap[i]);
    free_set(sd, n);
}
END_TEST

START_TEST(a_stream_within_its_first_payload_writes_nothing_until_commit)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    preload(s);
    uint8_t *snap = sim_snapshot(sd[0]);
    const uint32_t free0 = free_of(s);
    reset_set(sd, 1);
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, fcap(1)), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 0), 0);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_uint_eq(free_of(s), free0);
    ekv_stream_abandon(w);
    ck_assert_uint_eq(sd[0]->writes, 0);
    assert_image_is(sd[0], snap, "after abandon");
    /* Opened and abandoned at once. */
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ekv_stream_abandon(w);
    ck_assert_uint_eq(sd[0]->writes, 0);
    /* A value with no bytes at all. */
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_commit(w), 0);
    assert_value(s, "t", 1, NULL, 0);
    ekv_close(s);
    free(snap);
    free_set(sd, 1);
}
END_TEST

/* ---- 3. other calls between a stream's calls ---------------------------- */

START_TEST(puts_and_deletes_between_stream_writes_are_older_than_the_stream)
{
    const unsigned n = _i ? 2 : 1;
    simdev *sd[MAXREP] = {NULL};
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    ck_assert_int_eq(ekv_put(s, "a", 1, v_h, 300), 0);
    ck_assert_int_eq(ekv_put(s, "b", 1, v_mid, 60), 0);
    const uint32_t g0 = gen_of(s, "t", 1);
    const size_t len = fcap(1) + 4 * CCAP + 30;
    const size_t half = len / 2;

    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, half), 0);
    /* Other keys, then the same key, twice. */
    ck_assert_int_eq(ekv_put(s, "c", 1, v_new + 9, 700), 0);
    ck_assert_int_eq(ekv_put(s, "a", 1, v_mid, 100), 0);
    ck_assert_int_eq(ekv_delete(s, "b", 1), 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_mid, 250), 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_mid + 1, 40), 0);
    const uint32_t g_between = gen_of(s, "t", 1);
    ck_assert_uint_eq(g_between, g0 + 2);
    assert_value(s, "t", 1, v_mid + 1, 40);
    ck_assert_int_eq(ekv_put(s, "d", 1, v_mid, 5), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new + half, len - half), 0);
    ck_assert_int_eq(ekv_stream_commit(w), 0);

    assert_value(s, "t", 1, v_new, len);
    ck_assert_uint_eq(gen_of(s, "t", 1), g_between + 1);
    assert_value(s, "c", 1, v_new + 9, 700);
    assert_value(s, "a", 1, v_mid, 100);
    assert_value(s, "d", 1, v_mid, 5);
    assert_value(s, "z", 1, v_z, sizeof(v_z));
    ck_assert(is_absent(s, "b", 1));
    ck_assert(is_absent(s, "h", 1));
    assert_used_blocks_are_records(s);

    /* Recovery finds nothing to erase, in place or on a new open, and the
     * same values. */
    reset_set(sd, n);
    ck_assert_int_eq(ekv_recover(s), 0);
    for (unsigned i = 0; i < n; i++)
        ck_assert_uint_eq(sd[i]->writes, 0);
    reopen_clean(&s, sd, n, 0);
    assert_value(s, "t", 1, v_new, len);
    ck_assert_uint_eq(gen_of(s, "t", 1), g_between + 1);
    assert_value(s, "c", 1, v_new + 9, 700);
    assert_value(s, "a", 1, v_mid, 100);
    assert_value(s, "d", 1, v_mid, 5);
    ck_assert(is_absent(s, "b", 1));
    assert_only_records_in_use(s, n);
    ekv_close(s);
    free_set(sd, n);
}
END_TEST

START_TEST(a_delete_of_the_key_between_stream_writes_does_not_stop_it)
{
    const unsigned n = _i ? 2 : 1;
    simdev *sd[MAXREP] = {NULL};
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    const size_t len = fcap(1) + 2 * CCAP + 3;
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, fcap(1) + CCAP + 1), 0);
    ck_assert_int_eq(ekv_delete(s, "t", 1), 0);
    ck_assert(is_absent(s, "t", 1));
    ck_assert_int_eq(ekv_stream_write(w, v_new + fcap(1) + CCAP + 1,
                                      len - (fcap(1) + CCAP + 1)),
                     0);
    ck_assert(is_absent(s, "t", 1));
    ck_assert_int_eq(ekv_stream_commit(w), 0);
    /* A key put after its delete starts again at generation 1. */
    assert_value(s, "t", 1, v_new, len);
    ck_assert_uint_eq(gen_of(s, "t", 1), 1);
    assert_used_blocks_are_records(s);
    reopen_clean(&s, sd, n, 0);
    assert_value(s, "t", 1, v_new, len);
    ck_assert_uint_eq(gen_of(s, "t", 1), 1);
    assert_value(s, "z", 1, v_z, sizeof(v_z));
    assert_only_records_in_use(s, n);
    ekv_close(s);
    free_set(sd, n);
}
END_TEST

START_TEST(two_streams_at_once_both_commit)
{
    const unsigned n = _i ? 2 : 1;
    simdev *sd[MAXREP] = {NULL};
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    const uint32_t g0 = gen_of(s, "t", 1);
    const size_t lx = fcap(1) + 3 * CCAP + 11, lt = fcap(1) + 2 * CCAP + 90;
    const uint8_t *vx = v_new + 100, *vt = v_new;
    ekv_stream *wx = NULL, *wt = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &wx, "x", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_open(s, &wt, "t", 1, 0), 0);
    size_t ox = 0, ot = 0;
    while (ox < lx || ot < lt) {
        size_t k = lx - ox < 97 ? lx - ox : 97;
        ck_assert_int_eq(ekv_stream_write(wx, vx + ox, k), 0);
        ox += k;
        k = lt - ot < 61 ? lt - ot : 61;
        ck_assert_int_eq(ekv_stream_write(wt, vt + ot, k), 0);
        ot += k;
    }
    ck_assert(is_absent(s, "x", 1));
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_int_eq(ekv_stream_commit(wx), 0);
    assert_value(s, "x", 1, vx, lx);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_int_eq(ekv_stream_commit(wt), 0);
    assert_value(s, "x", 1, vx, lx);
    assert_value(s, "t", 1, vt, lt);
    ck_assert_uint_eq(gen_of(s, "t", 1), g0 + 1);
    ck_assert_uint_eq(gen_of(s, "x", 1), 1);
    assert_value(s, "z", 1, v_z, sizeof(v_z));
    assert_used_blocks_are_records(s);
    reopen_clean(&s, sd, n, 0);
    assert_value(s, "x", 1, vx, lx);
    assert_value(s, "t", 1, vt, lt);
    assert_only_records_in_use(s, n);
    ekv_close(s);
    free_set(sd, n);
}
END_TEST

START_TEST(of_two_streams_one_commits_and_one_is_abandoned)
{
    const unsigned n = _i ? 2 : 1;
    simdev *sd[MAXREP] = {NULL};
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    const uint32_t g0 = gen_of(s, "t", 1);
    const size_t len = fcap(1) + 3 * CCAP + 50;
    ekv_stream *wx = NULL, *wt = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &wt, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_open(s, &wx, "x", 1, 0), 0);
    for (size_t off = 0; off < len; off += 128) {
        size_t k = len - off < 128 ? len - off : 128;
        ck_assert_int_eq(ekv_stream_write(wt, v_new + off, k), 0);
        ck_assert_int_eq(ekv_stream_write(wx, v_new + 1 + off, k), 0);
    }
    /* The abandoned one first, so that the other's blocks lie above
     * blocks given back. */
    ekv_stream_abandon(wt);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_uint_eq(gen_of(s, "t", 1), g0);
    ck_assert_int_eq(ekv_stream_commit(wx), 0);
    assert_value(s, "x", 1, v_new + 1, len);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    assert_used_blocks_are_records(s);
    reopen_clean(&s, sd, n, 0);
    assert_value(s, "x", 1, v_new + 1, len);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert_uint_eq(gen_of(s, "t", 1), g0);
    assert_only_records_in_use(s, n);
    ekv_close(s);
    free_set(sd, n);
}
END_TEST

/* ---- 4. power cuts ------------------------------------------------------ */

typedef struct cut_mode {
    enum sim_tear tear;
    uint32_t tear_bytes;
    enum sim_lose lose;
    int completes; /* the cut write itself reaches the device whole */
    const char *name;
} cut_mode;

static const cut_mode cut_modes[] = {
    {SIM_TEAR_NONE, 0, SIM_LOSE_NONE, 0, "clean"},
    {SIM_TEAR_PREFIX, BS, SIM_LOSE_NONE, 1, "written, unacknowledged"},
    {SIM_TEAR_PREFIX, BS / 2, SIM_LOSE_SUBSET, 0, "torn, reordered"},
    {SIM_TEAR_RANDOM, 0, SIM_LOSE_SUBSET, 0, "random, reordered"},
    {SIM_TEAR_PREFIX, BS, SIM_LOSE_SUBSET, 1, "written, reordered"},
    {SIM_TEAR_ERASE_HEAD, 1, SIM_LOSE_ALL, 0, "cache lost"},
};
#define NCUT (sizeof(cut_modes) / sizeof(cut_modes[0]))
#define PBC 32u

static size_t power_len(void)
{
    return fcap(1) + 3 * CCAP + 100; /* descriptor and 4 chunks */
}

static ekv_store *power_setup(simdev **sd, unsigned n, simgroup *g)
{
    ekv_store *s = fresh_set(sd, n, PBC, 0);
    preload(s);
    memset(g, 0, sizeof(*g));
    for (unsigned i = 0; i < n; i++) {
        sim_reset_faults(sd[i]);
        sim_group_add(g, sd[i]);
    }
    return s;
}

/* The streamed rewrite of "t" in pieces of 150 bytes: 0 or the first
 * error. *desc_early counts descriptors written before the commit. */
static int power_stream(ekv_store *s, unsigned n, uint64_t *desc_early)
{
    ekv_stream *w = NULL;
    int rc = ekv_stream_open(s, &w, "t", 1, 0);
    ck_assert_int_eq(rc, 0);
    const size_t len = power_len();
    for (size_t off = 0; off < len && !rc; off += 150)
        rc = ekv_stream_write(w, v_new + off,
                              len - off < 150 ? len - off : 150);
    if (desc_early) {
        *desc_early = 0;
        for (unsigned i = 0; i < n && i < nspies; i++)
            *desc_early += spies[i].desc_writes;
    }
    if (rc) {
        ekv_stream_abandon(w);
        return rc;
    }
    return ekv_stream_commit(w);
}

START_TEST(power_cut_anywhere_in_a_streamed_rewrite_keeps_old_or_new)
{
    const unsigned n = 1 + (unsigned)_i / (unsigned)NCUT;
    const cut_mode *m = &cut_modes[(unsigned)_i % NCUT];
    const size_t len = power_len();
    simdev *sd[2] = {NULL, NULL};
    simgroup g;

    /* Dry run: how many writes, and which one is the commit's first
     * descriptor (its flush follows it). */
    ekv_store *s = power_setup(sd, n, &g);
    spy_on(sd, n);
    uint64_t early = 0;
    ck_assert_int_eq(power_stream(s, n, &early), 0);
    ck_assert_msg(early == 0, "a descriptor was written before the commit");
    const uint64_t desc_at = spies[0].first_desc_grp;
    const uint64_t total = g.writes;
    ck_assert_uint_gt(desc_at, 0);
    spy_off(sd, n);
    ekv_close(s);
    free_set(sd, n);

    for (uint64_t at = 1; at <= total + 1; at++) {
        s = power_setup(sd, n, &g);
        for (unsigned i = 0; i < n; i++) {
            sd[i]->tear = m->tear;
            sd[i]->tear_bytes = m->tear_bytes;
            sd[i]->lose = m->lose;
            sd[i]->seed = at * 131 + i;
        }
        g.cut_at = at; /* total + 1: no cut, the power goes after */
        const int rc = power_stream(s, n, NULL);
        sim_group_powercycle(&g);
        ekv_close(s);
        reset_set(sd, n);
        int orc = try_open(&s, sd, n, 0, 0, NULL);
        ck_assert_msg(orc == 0, "%s, cut at write %llu: open: %s", m->name,
                      (unsigned long long)at, ekv_strerror(orc));
        const int st = value_state(s, "t", v_old, sizeof(v_old), v_new, len);
        int want_old = at < desc_at || (at == desc_at && !m->completes);
        int want_new = rc == 0 || at > desc_at;
        ck_assert_msg(st == ST_OLD || st == ST_NEW,
                      "%u replicas, %s, cut at write %llu (commit's "
                      "descriptor: %llu): the key is %s",
                      n, m->name, (unsigned long long)at,
                      (unsigned long long)desc_at, state_names[st]);
        ck_assert_msg(!(want_old && st != ST_OLD),
                      "%u replicas, %s, cut at write %llu before the "
                      "commit's flush (descriptor at %llu): new value",
                      n, m->name, (unsigned long long)at,
                      (unsigned long long)desc_at);
        ck_assert_msg(!(want_new && st != ST_NEW),
                      "%u replicas, %s, cut at write %llu (commit rc %d, "
                      "descriptor at %llu): old value",
                      n, m->name, (unsigned long long)at, rc,
                      (unsigned long long)desc_at);
        assert_value(s, "z", 1, v_z, sizeof(v_z));
        ck_assert(is_absent(s, "h", 1));
        assert_only_records_in_use(s, n);
        reopen_clean(&s, sd, n, 0);
        ck_assert_int_eq(
            value_state(s, "t", v_old, sizeof(v_old), v_new, len), st);
        ekv_close(s);
        free_set(sd, n);
    }
}
END_TEST

START_TEST(power_cut_before_commit_leaves_the_old_value_and_no_chunk)
{
    static const enum sim_lose loses[] = {SIM_LOSE_NONE, SIM_LOSE_SUBSET,
                                          SIM_LOSE_ALL};
    const enum sim_lose lose = loses[_i];
    const size_t len = fcap(1) + 4 * CCAP + 10;
    const size_t piece = 100;
    for (size_t k = 0; k * piece < len + piece; k++) {
        simdev *sd[1] = {NULL};
        ekv_store *s = fresh_set(sd, 1, PBC, 0);
        preload(s);
        const uint32_t free0 = free_of(s);
        const uint32_t g0 = gen_of(s, "t", 1);
        uint8_t *snap = sim_snapshot(sd[0]);
        sim_reset_faults(sd[0]);
        sd[0]->lose = lose;
        sd[0]->seed = k + 1;
        ekv_stream *w = NULL;
        ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
        size_t off = 0;
        for (size_t j = 0; j < k && off < len; j++) {
            size_t p = len - off < piece ? len - off : piece;
            ck_assert_int_eq(ekv_stream_write(w, v_new + off, p), 0);
            off += p;
        }
        const uint64_t chunks =
            off > fcap(1) ? (off - fcap(1) - 1) / CCAP : 0;
        ck_assert_uint_eq(sd[0]->writes, chunks);
        sim_powercycle(sd[0]);
        ekv_close(s); /* frees the stream, writes nothing */
        sim_reset_faults(sd[0]);
        s = open_set(sd, 1, 0);
        assert_value(s, "t", 1, v_old, sizeof(v_old));
        ck_assert_uint_eq(gen_of(s, "t", 1), g0);
        assert_value(s, "z", 1, v_z, sizeof(v_z));
        ck_assert_uint_eq(free_of(s), free0);
        ekv_replica_report rep;
        ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
        if (lose == SIM_LOSE_NONE)
            ck_assert_uint_eq(rep.erased_blocks, chunks);
        else
            ck_assert_uint_le(rep.erased_blocks, chunks);
        /* The orphan chunks are erased: the image is the one before. */
        assert_image_is(sd[0], snap, "after recovery");
        reopen_clean(&s, sd, 1, 0);
        ekv_close(s);
        free(snap);
        free_set(sd, 1);
    }
}
END_TEST

/* ---- 5. device errors --------------------------------------------------- */

static ekv_store *fault_setup(simdev **sd, unsigned n)
{
    ekv_store *s = fresh_set(sd, n, BC, 0);
    preload(s);
    return s;
}

static size_t fault_len(void)
{
    return fcap(1) + 3 * CCAP + 40;
}

/* Stream the new value of "t" in pieces of 100 bytes. On the first write
 * error, check that the stream stays failed with it, then commit (odd
 * `finish`) or abandon. Returns the error, or the commit's result. */
static int fault_stream(ekv_store *s, unsigned finish)
{
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    const size_t len = fault_len();
    int werr = 0;
    for (size_t off = 0; off < len && !werr; off += 100)
        werr = ekv_stream_write(w, v_new + off,
                                len - off < 100 ? len - off : 100);
    if (!werr)
        return ekv_stream_commit(w);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 10), werr);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 0), werr);
    ck_assert_int_eq(ekv_stream_write(w, NULL, 0), werr);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 1000), werr);
    if (finish & 1)
        ck_assert_int_eq(ekv_stream_commit(w), werr);
    else
        ekv_stream_abandon(w);
    return werr;
}

/* Which replica fails, with how many, and how a failed write leaves its
 * block. */
static const struct {
    unsigned n, rep;
    int tears;
} fault_cases[] = {{1, 0, 0}, {1, 0, 1}, {2, 0, 0},
                   {2, 0, 1}, {2, 1, 0}, {2, 1, 1}};
#define NFAULT (sizeof(fault_cases) / sizeof(fault_cases[0]))

/* A fault-free run of fault_stream, counting replica rep's operations:
 * its writes and flushes, the number of its first descriptor write and of
 * the flush after it. */
typedef struct dry_counts {
    uint64_t writes, flushes, first_desc, desc_flush;
} dry_counts;

static dry_counts fault_dry_run(unsigned n, unsigned rep)
{
    simdev *sd[2] = {NULL, NULL};
    ekv_store *s = fault_setup(sd, n);
    reset_set(sd, n);
    spy_on(sd, n);
    ck_assert_int_eq(fault_stream(s, 0), 0);
    dry_counts d = {sd[rep]->writes, sd[rep]->flushes, spies[rep].first_desc,
                    spies[rep].desc_flush};
    ck_assert_uint_gt(d.first_desc, 0);
    ck_assert_uint_gt(d.desc_flush, 0);
    spy_off(sd, n);
    ekv_close(s);
    free_set(sd, n);
    return d;
}

START_TEST(write_error_anywhere_fails_the_stream_and_keeps_the_old_value)
{
    const unsigned n = fault_cases[_i].n, rep = fault_cases[_i].rep;
    const int tears = fault_cases[_i].tears;
    const size_t len = fault_len();
    simdev *sd[2] = {NULL, NULL};
    const dry_counts dry = fault_dry_run(n, rep);
    const uint64_t total = dry.writes, desc_no = dry.first_desc;
    ekv_store *s;

    for (uint64_t at = 1; at <= total; at++) {
        s = fault_setup(sd, n);
        uint8_t *snap[2];
        for (unsigned i = 0; i < n; i++)
            snap[i] = sim_snapshot(sd[i]);
        const uint32_t free0 = free_of(s);
        const uint32_t g0 = gen_of(s, "t", 1);
        reset_set(sd, n);
        sd[rep]->fail_write_at = at;
        sd[rep]->fail_write_tears = tears;
        sd[rep]->seed = at;
        const int err = fault_stream(s, (unsigned)at);
        const int fails = at <= desc_no;
        ck_assert_msg(err == (fails ? EKV_EIO : 0),
                      "%u replicas, write %llu of replica %u fails%s "
                      "(commit's descriptor: %llu): stream gives %d",
                      n, (unsigned long long)at, rep,
                      tears ? " and tears" : "",
                      (unsigned long long)desc_no, err);
        reset_set(sd, n);
        if (fails) {
            assert_value(s, "t", 1, v_old, sizeof(v_old));
            ck_assert_uint_eq(gen_of(s, "t", 1), g0);
            for (unsigned i = 0; i < n; i++)
                assert_image_is(sd[i], snap[i], "after the failed stream");
            ck_assert_uint_eq(free_of(s), free0);
        } else {
            assert_value(s, "t", 1, v_new, len);
            ck_assert_uint_eq(gen_of(s, "t", 1), g0 + 1);
        }
        assert_value(s, "z", 1, v_z, sizeof(v_z));
        /* The same after a new open and after a power cycle. A failed
         * stream left nothing to erase; a failed erase of the old record
         * (the put has succeeded) may leave blocks for recovery. */
        if (fails) {
            reopen_clean(&s, sd, n, 0);
        } else {
            ekv_close(s);
            s = open_set(sd, n, 0);
        }
        ck_assert_int_eq(
            value_state(s, "t", v_old, sizeof(v_old), v_new, len),
            fails ? ST_OLD : ST_NEW);
        ekv_close(s);
        for (unsigned i = 0; i < n; i++)
            sim_powercycle(sd[i]);
        s = open_set(sd, n, 0);
        ck_assert_int_eq(
            value_state(s, "t", v_old, sizeof(v_old), v_new, len),
            fails ? ST_OLD : ST_NEW);
        assert_value(s, "z", 1, v_z, sizeof(v_z));
        assert_only_records_in_use(s, n);
        ekv_close(s);
        for (unsigned i = 0; i < n; i++)
            free(snap[i]);
        free_set(sd, n);
    }
}
END_TEST

START_TEST(flush_error_in_the_commit_keeps_the_old_value)
{
    const unsigned n = fault_cases[_i].n, rep = fault_cases[_i].rep;
    const int drops = fault_cases[_i].tears;
    const size_t len = fault_len();
    simdev *sd[2] = {NULL, NULL};
    const dry_counts dry = fault_dry_run(n, rep);
    const uint64_t total = dry.flushes, desc_flush = dry.desc_flush;
    ekv_store *s;

    for (uint64_t at = 1; at <= total; at++) {
        s = fault_setup(sd, n);
        uint8_t *snap[2];
        for (unsigned i = 0; i < n; i++)
            snap[i] = sim_snapshot(sd[i]);
        const uint32_t g0 = gen_of(s, "t", 1);
        const uint32_t free0 = free_of(s);
        reset_set(sd, n);
        sd[rep]->fail_flush_at = at;
        sd[rep]->flush_fail_drops = drops;
        sd[rep]->lose = drops ? SIM_LOSE_SUBSET : SIM_LOSE_NONE;
        sd[rep]->seed = at + 7;
        const int err = fault_stream(s, 0);
        const int fails = at <= desc_flush;
        ck_assert_msg(err == (fails ? EKV_EIO : 0),
                      "%u replicas, flush %llu of replica %u fails%s "
                      "(the commit's: %llu): commit gives %d",
                      n, (unsigned long long)at, rep,
                      drops ? " and drops" : "",
                      (unsigned long long)desc_flush, err);
        reset_set(sd, n);
        if (fails) {
            assert_value(s, "t", 1, v_old, sizeof(v_old));
            ck_assert_uint_eq(gen_of(s, "t", 1), g0);
            ck_assert_uint_eq(free_of(s), free0);
            for (unsigned i = 0; i < n; i++) {
                assert_image_is(sd[i], snap[i], "after the failed commit");
                /* Flushed: what a crash now leaves is the same. */
                ck_assert_mem_eq(sd[i]->durable, sd[i]->cache,
                                 (size_t)BS * BC);
            }
        } else {
            assert_value(s, "t", 1, v_new, len);
        }
        ekv_close(s);
        for (unsigned i = 0; i < n; i++)
            sim_powercycle(sd[i]);
        s = open_set(sd, n, 0);
        ck_assert_int_eq(
            value_state(s, "t", v_old, sizeof(v_old), v_new, len),
            fails ? ST_OLD : ST_NEW);
        assert_value(s, "z", 1, v_z, sizeof(v_z));
        ekv_close(s);
        for (unsigned i = 0; i < n; i++)
            free(snap[i]);
        free_set(sd, n);
    }
}
END_TEST

/* A flush that fails while a stream has chunks on the device, made by
 * another call (a put of another key, which fails; a delete, which retries
 * and succeeds), may have lost those chunks (Linux drops the writes a
 * failed fsync covered): the stream fails instead of committing a record
 * whose chunks are gone. */
START_TEST(a_failed_flush_of_another_call_fails_the_stream)
{
    for (int other = 0; other < 2; other++) {
        simdev *sd[1] = {NULL};
        ekv_store *s = fresh_set(sd, 1, BC, 0);
        ck_assert_int_eq(ekv_put(s, "t", 1, v_old, sizeof(v_old)), 0);
        ck_assert_int_eq(ekv_put(s, "z", 1, v_z, sizeof(v_z)), 0);
        const uint32_t free0 = free_of(s);
        ekv_stream *w = NULL;
        ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
        ck_assert_int_eq(ekv_stream_write(w, v_new, 1000), 0); /* chunks */
        sd[0]->fail_flush_at = sd[0]->flushes + 1;
        sd[0]->flush_fail_drops = 1;
        sd[0]->lose = SIM_LOSE_ALL; /* the stream's chunks are gone */
        if (other == 0)
            ck_assert_int_eq(ekv_put(s, "y", 1, v_z, sizeof(v_z)), EKV_EIO);
        else
            ck_assert_int_eq(ekv_delete(s, "z", 1), 0); /* retried */
        sim_reset_faults(sd[0]);
        ck_assert_int_eq(ekv_stream_write(w, v_new + 1000, 100), EKV_EIO);
        ck_assert_int_eq(ekv_stream_commit(w), EKV_EIO);
        assert_value(s, "t", 1, v_old, sizeof(v_old));
        if (other == 0)
            ck_assert_uint_eq(free_of(s), free0);
        ekv_close(s);
        sim_powercycle(sd[0]);
        s = open_set(sd, 1, 0);
        assert_value(s, "t", 1, v_old, sizeof(v_old));
        ekv_close(s);
        free_set(sd, 1);
    }
}
END_TEST

/* ---- 6. limits and arguments -------------------------------------------- */

START_TEST(a_value_larger_than_the_store_is_efbig)
{
    /* 15 data blocks: the largest value is a descriptor and 14 chunks. */
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, 16, 0);
    const size_t max = fcap(1) + 14 * CCAP;
    static uint8_t big[4096];
    fill_pattern(big, sizeof(big), 5);
    ck_assert_uint_le(max + 1, sizeof(big));

    /* Too large in one piece: refused before anything is written. */
    reset_set(sd, 1);
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, big, max + 1), EKV_EFBIG);
    ck_assert_int_eq(ekv_stream_write(w, big, 1), EKV_EFBIG);
    ck_assert_int_eq(ekv_stream_commit(w), EKV_EFBIG);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert(is_absent(s, "t", 1));

    /* Grown to the largest value, then one byte more. */
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    for (size_t off = 0; off < max; off += 200)
        ck_assert_int_eq(
            ekv_stream_write(w, big + off, max - off < 200 ? max - off : 200),
            0);
    ck_assert_uint_eq(free_of(s), 0);
    ck_assert_int_eq(ekv_stream_write(w, big + max, 1), EKV_EFBIG);
    ck_assert_int_eq(ekv_stream_write(w, big, 0), EKV_EFBIG);
    ekv_stream_abandon(w);
    ck_assert_uint_eq(free_of(s), 15);
    ck_assert(is_absent(s, "t", 1));

    /* The largest value itself is stored. */
    uint64_t seed = 1;
    ck_assert_int_eq(stream_value(s, "t", 1, big, max, RANDOM, &seed, 0), 0);
    assert_value(s, "t", 1, big, max);
    ck_assert_uint_eq(free_of(s), 0);
    /* A rewrite that would need more than the store: EFBIG, old value. */
    reset_set(sd, 1);
    ck_assert_int_eq(stream_value(s, "t", 1, big, max + 1, WHOLE, &seed, 0),
                     EKV_EFBIG);
    ck_assert_uint_eq(sd[0]->writes, 0);
    assert_value(s, "t", 1, big, max);
    ekv_close(s);
    free_set(sd, 1);
}
END_TEST

START_TEST(running_out_of_blocks_mid_stream_is_enospc_and_abandon_gives_all_back)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, 16, 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_old, sizeof(v_old)), 0); /* 3 */
    ck_assert_int_eq(ekv_put(s, "o", 1, v_new, 700), 0);            /* 4 */
    ck_assert_uint_eq(free_of(s), 8);
    uint8_t *snap = sim_snapshot(sd[0]);
    /* Ten blocks: within the store, beyond its free blocks. */
    const size_t len = fcap(1) + 9 * CCAP;
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    int err = 0;
    size_t off = 0;
    for (; off < len && !err; off += 100)
        err = ekv_stream_write(w, v_new + off,
                               len - off < 100 ? len - off : 100);
    ck_assert_int_eq(err, EKV_ENOSPC);
    ck_assert_uint_lt(off, len);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 1), EKV_ENOSPC);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 0), EKV_ENOSPC);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ekv_stream_abandon(w);
    ck_assert_uint_eq(free_of(s), 8);
    assert_image_is(sd[0], snap, "after abandon");
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    assert_value(s, "o", 1, v_new, 700);
    /* Every block came back: a put of exactly the free blocks fits. */
    ck_assert_int_eq(ekv_put(s, "u", 1, v_new + 5, fcap(1) + 7 * CCAP), 0);
    ck_assert_uint_eq(free_of(s), 0);

    /* No block at all for the first chunk. */
    reset_set(sd, 1);
    ck_assert_int_eq(ekv_stream_open(s, &w, "q", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, fcap(1)), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 1), EKV_ENOSPC);
    ck_assert_int_eq(ekv_stream_commit(w), EKV_ENOSPC);
    /* No block for a one-block value: its commit says so. */
    ck_assert_int_eq(ekv_stream_open(s, &w, "q", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 10), 0);
    ck_assert_int_eq(ekv_stream_commit(w), EKV_ENOSPC);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert(is_absent(s, "q", 1));
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "q", 1, &ki), EKV_ENOENT);
    reopen_clean(&s, sd, 1, 0);
    assert_value(s, "u", 1, v_new + 5, fcap(1) + 7 * CCAP);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ekv_close(s);
    free(snap);
    free_set(sd, 1);
}
END_TEST

START_TEST(a_read_only_store_refuses_streams)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, 16, 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_old, sizeof(v_old)), 0);
    ekv_close(s);
    reset_set(sd, 1);
    ck_assert_int_eq(try_open(&s, sd, 1, 0, EKV_OPEN_RDONLY, NULL), 0);
    ekv_stream *w = (ekv_stream *)(uintptr_t)1;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), EKV_EROFS);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(ekv_stream_open(s, &w, "n", 1, 0), EKV_EROFS);
    ck_assert_ptr_null(w);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ekv_close(s);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_uint_eq(sd[0]->flushes, 0);
    free_set(sd, 1);
}
END_TEST

START_TEST(argument_errors)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    static uint8_t key[BS];
    const size_t max = EKV_MAX_KEY_SIZE(BS);
    ekv_stream *w = (ekv_stream *)(uintptr_t)1;

    reset_set(sd, 1);
    ck_assert_int_eq(ekv_stream_open(s, &w, key, max + 1, 0),
                     EKV_ENAMETOOLONG);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(ekv_stream_open(s, &w, key, 60000, 0),
                     EKV_ENAMETOOLONG);
    ck_assert_int_eq(ekv_stream_open(NULL, &w, "k", 1, 0), EKV_EINVAL);
    ck_assert_int_eq(ekv_stream_open(s, NULL, "k", 1, 0), EKV_EINVAL);
    w = (ekv_stream *)(uintptr_t)1;
    ck_assert_int_eq(ekv_stream_open(s, &w, NULL, 1, 0), EKV_EINVAL);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(ekv_stream_write(NULL, v_new, 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_stream_write(NULL, NULL, 0), EKV_EINVAL);
    ck_assert_int_eq(ekv_stream_commit(NULL), EKV_EINVAL);
    ekv_stream_abandon(NULL);
    ck_assert_uint_eq(sd[0]->writes, 0);

    /* The longest key is accepted; the empty key too, as NULL. */
    ck_assert_int_eq(ekv_stream_open(s, &w, key, max, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 300), 0);
    ck_assert_int_eq(ekv_stream_commit(w), 0);
    assert_value(s, key, max, v_new, 300);
    ck_assert_int_eq(ekv_stream_open(s, &w, NULL, 0, 0), 0);
    /* A piece without bytes may be NULL; bytes without a piece may not,
     * and that refusal leaves the stream as it was. */
    ck_assert_int_eq(ekv_stream_write(w, NULL, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, 400), 0);
    ck_assert_int_eq(ekv_stream_write(w, NULL, 5), EKV_EINVAL);
    ck_assert_int_eq(ekv_stream_write(w, v_new + 400, 20), 0);
    ck_assert_int_eq(ekv_stream_commit(w), 0);
    assert_value(s, "", 0, v_new, 420);
    ekv_close(s);
    free_set(sd, 1);
}
END_TEST

START_TEST(user_flags_reach_the_descriptor)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    uint64_t seed = 3;
    ck_assert_int_eq(stream_value(s, "f", 1, v_new, 600, RANDOM, &seed,
                                  0xdeadbeefu),
                     0);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(sim_block(sd[0], 1), BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_DESCRIPTOR);
    ck_assert_uint_eq(bi.user_flags, 0xdeadbeefu);
    ck_assert_uint_eq(bi.chunk_count, 3);
    ekv_close(s);
    free_set(sd, 1);
}
END_TEST

/* Give the descriptor at block b another generation, on both images. */
static void set_generation(simdev *sd, uint32_t b, uint32_t gen)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, b), BS);
    ck_assert_uint_eq(blk[0], EKV_TYPE_DESCRIPTOR);
    put_le32(blk + DESC_GENERATION, gen);
    block_seal(blk, BS);
    sim_poke(sd, b, blk);
}

START_TEST(a_generation_at_its_limit_is_erange_at_commit)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    ck_assert_int_eq(ekv_put(s, "t", 1, v_old, 100), 0);
    ekv_close(s);
    set_generation(sd[0], 1, 0xffffffffu);
    s = open_set(sd, 1, 0);
    uint8_t *snap = sim_snapshot(sd[0]);
    uint64_t seed = 9;
    /* Both paths agree. */
    ck_assert_int_eq(ekv_put(s, "t", 1, v_new, 700), EKV_ERANGE);
    ck_assert_int_eq(stream_value(s, "t", 1, v_new, 700, RANDOM, &seed, 0),
                     EKV_ERANGE);
    ck_assert_int_eq(stream_value(s, "t", 1, v_new, 7, WHOLE, &seed, 0),
                     EKV_ERANGE);
    assert_image_is(sd[0], snap, "after the refused commit");
    assert_value(s, "t", 1, v_old, 100);
    ck_assert_uint_eq(gen_of(s, "t", 1), 0xffffffffu);
    ck_assert_uint_eq(free_of(s), BC - 2);
    reopen_clean(&s, sd, 1, 0);
    assert_value(s, "t", 1, v_old, 100);
    ekv_close(s);
    free(snap);
    free_set(sd, 1);
}
END_TEST

START_TEST(no_memory_for_a_stream_or_its_commit_is_enomem)
{
    live_counter c = {0, -1};
    ekv_allocator al = {lc_alloc, lc_free, &c};
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    ekv_close(s);
    ck_assert_int_eq(try_open(&s, sd, 1, 0, 0, &al), 0);
    preload(s);
    const size_t live0 = c.live;
    uint8_t *snap = sim_snapshot(sd[0]);
    reset_set(sd, 1);

    c.fail_after = 0;
    ekv_stream *w = (ekv_stream *)(uintptr_t)1;
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), EKV_ENOMEM);
    ck_assert_ptr_null(w);
    ck_assert_uint_eq(c.live, live0);
    c.fail_after = -1;

    /* The commit of a new key needs an index entry. */
    const size_t len = fcap(1) + 2 * CCAP + 1;
    ck_assert_int_eq(ekv_stream_open(s, &w, "new", 3, 0), 0);
    ck_assert_uint_gt(c.live, live0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, len), 0);
    c.fail_after = 0;
    ck_assert_int_eq(ekv_stream_commit(w), EKV_ENOMEM);
    c.fail_after = -1;
    ck_assert_uint_eq(c.live, live0);
    ck_assert(is_absent(s, "new", 3));
    assert_image_is(sd[0], snap, "after the refused commit");

    /* A rewrite and an abandon give back all the memory they took. */
    uint64_t seed = 4;
    ck_assert_int_eq(stream_value(s, "t", 1, v_new, len, RANDOM, &seed, 0),
                     0);
    ck_assert_uint_eq(c.live, live0);
    ck_assert_int_eq(ekv_stream_open(s, &w, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, len), 0);
    ekv_stream_abandon(w);
    ck_assert_uint_eq(c.live, live0);
    assert_value(s, "t", 1, v_new, len);
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    free(snap);
    free_set(sd, 1);
}
END_TEST

/* ---- 7. recovery, repair and close while streams are open ---------------- */

START_TEST(recover_and_repair_wait_for_open_streams)
{
    simdev *sd[2] = {NULL, NULL};
    ekv_store *s = fresh_set(sd, 2, BC, 0);
    preload(s);
    const size_t len = fcap(1) + 2 * CCAP + 7;
    ekv_stream *w1 = NULL, *w2 = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w1, "t", 1, 0), 0);
    /* Busy from the open on, before a block is written. */
    ck_assert_int_eq(ekv_recover(s), EKV_EBUSY);
    uint32_t copied = 77;
    ck_assert_int_eq(ekv_repair(s, &copied), EKV_EBUSY);
    ck_assert_uint_eq(copied, 0);
    ck_assert_int_eq(ekv_stream_write(w1, v_new, len), 0);
    ck_assert_int_eq(ekv_stream_open(s, &w2, "x", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w2, v_mid, 290), 0);
    reset_set(sd, 2);
    ck_assert_int_eq(ekv_recover(s), EKV_EBUSY);
    ck_assert_int_eq(ekv_repair(s, &copied), EKV_EBUSY);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_EBUSY);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_uint_eq(sd[i]->writes, 0);
        ck_assert_uint_eq(sd[i]->flushes, 0);
    }
    /* The refusals cost the streams nothing. */
    ck_assert_int_eq(ekv_stream_commit(w1), 0);
    assert_value(s, "t", 1, v_new, len);
    /* One stream still open. */
    ck_assert_int_eq(ekv_recover(s), EKV_EBUSY);
    ck_assert_int_eq(ekv_repair(s, &copied), EKV_EBUSY);
    ck_assert_int_eq(ekv_stream_commit(w2), 0);

    reset_set(sd, 2);
    ck_assert_int_eq(ekv_recover(s), 0);
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 0);
    for (unsigned i = 0; i < 2; i++)
        ck_assert_uint_eq(sd[i]->writes, 0);
    assert_value(s, "t", 1, v_new, len);
    assert_value(s, "x", 1, v_mid, 290);

    /* And after an abandon. */
    ck_assert_int_eq(ekv_stream_open(s, &w1, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_write(w1, v_old, sizeof(v_old)), 0);
    ck_assert_int_eq(ekv_recover(s), EKV_EBUSY);
    ekv_stream_abandon(w1);
    ck_assert_int_eq(ekv_recover(s), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    assert_value(s, "t", 1, v_new, len);
    assert_used_blocks_are_records(s);
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(close_frees_open_streams_and_the_next_open_erases_their_chunks)
{
    live_counter c = {0, -1};
    ekv_allocator al = {lc_alloc, lc_free, &c};
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, BC, 0);
    preload(s);
    ekv_close(s);
    uint8_t *snap = sim_snapshot(sd[0]);
    ck_assert_int_eq(try_open(&s, sd, 1, 0, 0, &al), 0);
    const uint32_t free0 = free_of(s);
    ekv_stream *w1 = NULL, *w2 = NULL, *w3 = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w1, "t", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_open(s, &w2, "x", 1, 0), 0);
    ck_assert_int_eq(ekv_stream_open(s, &w3, "y", 1, 0), 0);
    const size_t len = fcap(1) + 2 * CCAP + 1; /* 2 chunks written */
    ck_assert_int_eq(ekv_stream_write(w1, v_new, len), 0);
    ck_assert_int_eq(ekv_stream_write(w2, v_new, len), 0);
    ck_assert_int_eq(ekv_stream_write(w3, v_new, 10), 0);
    reset_set(sd, 1);
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_uint_eq(sd[0]->flushes, 0);

    s = open_set(sd, 1, 0);
    assert_value(s, "t", 1, v_old, sizeof(v_old));
    ck_assert(is_absent(s, "x", 1));
    ck_assert(is_absent(s, "y", 1));
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_eq(rep.erased_blocks, 4);
    ck_assert_uint_eq(free_of(s), free0);
    assert_image_is(sd[0], snap, "after recovery");
    reopen_clean(&s, sd, 1, 0);
    ekv_close(s);
    free(snap);
    free_set(sd, 1);
}
END_TEST

/* ---- failures that leave chunks on the devices --------------------------
 * These check what happens to a stream's chunks that a flush made
 * durable while it was open (any other call's flush does), once the
 * stream ends without its value. Each test frees what it made before it
 * asserts, so a failure leaks nothing. */

/* A commit that fails before writing: ERANGE (0), ENOMEM (1), or on a
 * stream an ENOSPC ended (2). "After a failure nothing of the stream is
 * left on any device (flushed)". */
START_TEST(a_failed_commit_leaves_nothing_of_the_stream_durable)
{
    static const char *const why[] = {"ERANGE", "ENOMEM",
                                      "a dead stream (ENOSPC)"};
    live_counter c = {0, -1};
    ekv_allocator al = {lc_alloc, lc_free, &c};
    simdev *sd[1] = {NULL};
    ekv_store *s = fresh_set(sd, 1, _i == 2 ? 16 : BC, 0);
    /* ENOMEM: the store starts empty, so that its index has no spare
     * room from a recovery and every new key takes an allocation. */
    if (_i != 1)
        ck_assert_int_eq(ekv_put(s, "t", 1, v_old, 100), 0);
    ekv_close(s);
    if (_i == 0)
        set_generation(sd[0], 1, 0xffffffffu);
    ck_assert_int_eq(try_open(&s, sd, 1, 0, 0, &al), 0);
    if (_i == 1)
        ck_assert_int_eq(ekv_put(s, "t", 1, v_old, 100), 0);
    const char *key = _i == 1 ? "new" : "t";
    const size_t len = _i == 2 ? fcap(1) + 20 * CCAP : fcap(1) + 3 * CCAP + 9;
    ekv_stream *w = NULL;
    ck_assert_int_eq(ekv_stream_open(s, &w, key, strlen(key), 0), 0);
    ck_assert_int_eq(ekv_stream_write(w, v_new, fcap(1) + 2 * CCAP + 1), 0);
    /* Another key's put: its flush makes the stream's chunks durable. */
    ck_assert_int_eq(ekv_put(s, "o", 1, v_mid, 10), 0);
    size_t off = fcap(1) + 2 * CCAP + 1;
    int werr = 0;
    if (_i == 2) {
        /* Fill the store until the stream runs out of blocks. */
        while (off < len && !werr) {
            werr = ekv_stream_write(w, v_new + (off % 1000), 100);
            off += 100;
        }
    } else {
        werr = ekv_stream_write(w, v_new + off, len - off);
    }
    if (_i == 1)
        c.fail_after = 0;
    const int rc = ekv_stream_commit(w);
    c.fail_after = -1;
    const int want = _i == 0 ? EKV_ERANGE
                     : _i == 1 ? EKV_ENOMEM
                               : EKV_ENOSPC;
    const int werr_ok = _i == 2 ? werr == EKV_ENOSPC : werr == 0;
    const int visible_ok =
        value_state(s, "t", v_old, 100, NULL, 0) == ST_OLD &&
        is_absent(s, "new", 3);
    const int durable = memcmp(sd[0]->durable, sd[0]->cache,
                               (size_t)BS * sd[0]->bc) == 0;
    uint32_t stray = 0;
    for (uint32_t b = 1; b < sd[0]->bc; b++)
        if (memcmp(sd[0]->durable + (size_t)b * BS,
                   sd[0]->cache + (size_t)b * BS, BS) != 0)
            stray++;
    ekv_close(s);
    /* What a crash now leaves, when the device's cache is lost. */
    sd[0]->lose = SIM_LOSE_ALL;
    sim_powercycle(sd[0]);
    reset_set(sd, 1);
    s = open_set(sd, 1, 0);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    const int after_ok =
        value_state(s, "t", v_old, 100, NULL, 0) == ST_OLD;
    ekv_close(s);
    free_set(sd, 1);

    ck_assert_msg(werr_ok, "%s: the stream's writes gave %d", why[_i], werr);
    ck_assert_msg(rc == want, "%s: commit gave %d", why[_i], rc);
    ck_assert_msg(visible_ok, "%s: the old value is not in force", why[_i]);
    ck_assert_msg(after_ok, "%s: the old value is lost in a crash", why[_i]);
    ck_assert_msg(durable,
                  "%s: the failed commit returned with %u blocks of the "
                  "stream still on the device, unflushed erasures (a "
                  "recovery then erased %u)",
                  why[_i], stray, rep.erased_blocks);
}
END_TEST

/* An abandoned stream gives its blocks back unflushed; the next put takes
 * the same descriptor block and the same chunk blocks in the same order.
 * If the power then goes while that put is being written, and the device
 * kept its writes in another order, the put's descriptor can be found
 * with the abandoned stream's chunk in its chain: every CRC, owner and
 * index right, the value a mix of both. The put never returned, so its
 * key must hold its old value (none) or the new one. */
START_TEST(blocks_an_abandoned_stream_gives_back_never_mix_into_a_cut_put)
{
    const size_t fc = fcap(1);
    static uint8_t vs[2048], vp[2048];
    fill_pattern(vs, sizeof(vs), 21);
    fill_pattern(vp, sizeof(vp), 22);
    int bad_seeds = 0;
    uint64_t first_bad = 0;
    int first_state = ST_OLD;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        simdev *sd[1] = {NULL};
        ekv_store *s = fresh_set(sd, 1, 32, 0);
        ck_assert_int_eq(ekv_put(s, "a", 1, v_z, 10), 0); /* block 1 */
        /* Chunks 1 and 2 written (blocks 3 and 4, descriptor block 2
         * held), chunk 3 filling (block 5). */
        ekv_stream *w = NULL;
        ck_assert_int_eq(ekv_stream_open(s, &w, "s", 1, 0), 0);
        ck_assert_int_eq(ekv_stream_write(w, vs, fc + 2 * CCAP + 1), 0);
        /* Another key's put flushes the device. */
        ck_assert_int_eq(ekv_put(s, "o", 1, v_z, 10), 0);
        ekv_stream_abandon(w);
        /* A put of the same shape: descriptor and two full chunks. */
        sim_reset_faults(sd[0]);
        sd[0]->lose = SIM_LOSE_SUBSET;
        sd[0]->seed = seed;
        sd[0]->tear = SIM_TEAR_PREFIX;
        sd[0]->tear_bytes = BS;
        sd[0]->cut_at = 3; /* its last chunk: written, unacknowledged */
        const int prc = ekv_put(s, "x", 1, vp, fc + 2 * CCAP);
        sim_powercycle(sd[0]);
        ekv_close(s);
        sim_reset_faults(sd[0]);
        s = open_set(sd, 1, 0);
        const int st = value_state(s, "x", NULL, 0, vp, fc + 2 * CCAP);
        const int others = value_state(s, "a", NULL, 0, v_z, 10) == ST_NEW &&
                           value_state(s, "o", NULL, 0, v_z, 10) == ST_NEW;
        ekv_close(s);
        free_set(sd, 1);
        ck_assert_int_eq(prc, EKV_EIO);
        ck_assert(others);
        if (st != ST_ABSENT && st != ST_NEW) {
            if (!bad_seeds++) {
                first_bad = seed;
                first_state = st;
            }
        }
    }
    ck_assert_msg(bad_seeds == 0,
                  "%d of 64 seeds: after the cut put, the key holds a "
                  "value that was never put (first: seed %llu, %s)",
                  bad_seeds, (unsigned long long)first_bad,
                  state_names[first_state]);
}
END_TEST

static Suite *make(void)
{
    values_init();
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("layout");
    tcase_add_loop_test(tc, streamed_put_leaves_the_images_put_leaves, 0, 4);
    tcase_add_test(tc, longest_key_streams_into_the_blocks_put_uses);
    tcase_add_test(tc, user_flags_reach_the_descriptor);
    suite_add_tcase(s, tc);

    tc = tcase_create("visibility");
    tcase_add_loop_test(
        tc, nothing_is_visible_before_commit_and_abandon_undoes_it_all, 0, 2);
    tcase_add_test(
        tc, a_stream_within_its_first_payload_writes_nothing_until_commit);
    suite_add_tcase(s, tc);

    tc = tcase_create("interleaving");
    tcase_add_loop_test(
        tc, puts_and_deletes_between_stream_writes_are_older_than_the_stream,
        0, 2);
    tcase_add_loop_test(
        tc, a_delete_of_the_key_between_stream_writes_does_not_stop_it, 0, 2);
    tcase_add_loop_test(tc, two_streams_at_once_both_commit, 0, 2);
    tcase_add_loop_test(tc, of_two_streams_one_commits_and_one_is_abandoned,
                        0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("power");
    tcase_add_loop_test(
        tc, power_cut_anywhere_in_a_streamed_rewrite_keeps_old_or_new, 0,
        (int)(2 * NCUT));
    tcase_add_loop_test(
        tc, power_cut_before_commit_leaves_the_old_value_and_no_chunk, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_loop_test(
        tc, write_error_anywhere_fails_the_stream_and_keeps_the_old_value, 0,
        (int)NFAULT);
    tcase_add_test(tc, a_failed_flush_of_another_call_fails_the_stream);
    tcase_add_loop_test(tc, flush_error_in_the_commit_keeps_the_old_value, 0,
                        (int)NFAULT);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, a_value_larger_than_the_store_is_efbig);
    tcase_add_test(
        tc,
        running_out_of_blocks_mid_stream_is_enospc_and_abandon_gives_all_back);
    tcase_add_test(tc, a_read_only_store_refuses_streams);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, a_generation_at_its_limit_is_erange_at_commit);
    tcase_add_test(tc, no_memory_for_a_stream_or_its_commit_is_enomem);
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_test(tc, recover_and_repair_wait_for_open_streams);
    tcase_add_test(
        tc, close_frees_open_streams_and_the_next_open_erases_their_chunks);
    suite_add_tcase(s, tc);

    tc = tcase_create("leftovers");
    tcase_add_loop_test(tc,
                        a_failed_commit_leaves_nothing_of_the_stream_durable,
                        0, 3);
    tcase_add_test(
        tc, blocks_an_abandoned_stream_gives_back_never_mix_into_a_cut_put);
    suite_add_tcase(s, tc);
    return s;
}

#else /* EKV_NO_INDEX */

START_TEST(a_scanning_build_has_no_streams)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    sim_reset_faults(sd[0]);
    ekv_stream *w = (ekv_stream *)(uintptr_t)1;
    ck_assert_int_eq(ekv_stream_open(s, &w, "k", 1, 0), EKV_ENOSYS);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(ekv_stream_open(s, &w, "new", 3, 0), EKV_ENOSYS);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(ekv_stream_write(NULL, "x", 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_stream_commit(NULL), EKV_EINVAL);
    ekv_stream_abandon(NULL);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ck_assert_int_eq(ekv_recover(s), 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("scanning build");
    tcase_add_test(tc, a_scanning_build_has_no_streams);
    suite_add_tcase(s, tc);
    return s;
}

#endif /* EKV_NO_INDEX */

RUN_SUITE(make)
