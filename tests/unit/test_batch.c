/*
 * Recovery's multi-block reads (ekv_device.read_blocks, src/core/
 * scan_batch.c) over a simulated device: a batch that fails, comes back
 * short, or comes back with a bit flipped must never cost a record nor
 * get a good block erased; every block of a bad batch is read again one
 * by one; a device without read_blocks, and the scanning core, keep one
 * read per block; zero_run skips holes; a failed batch-buffer allocation
 * falls back to block reads.
 */
#include <stdio.h>

#include "helpers.h"

#define BS 64u
/* 64-byte blocks: the core's 64 KiB batch holds 1024, so this device takes
 * three batches, the last one short of the end. */
#define BC 2600u
#define NKEYS 300u

static void key_of(char *k, unsigned i)
{
    snprintf(k, 16, "key-%04u", i);
}

/* Values of 1..3 blocks, spread over the device (every third key deleted
 * again leaves free blocks between records). */
static void fill(ekv_store *s)
{
    char k[16];
    uint8_t v[200];
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(k, i);
        size_t len = (i * 37u) % sizeof(v);
        for (size_t j = 0; j < len; j++)
            v[j] = (uint8_t)(i + j);
        ck_assert_int_eq(ekv_put(s, k, strlen(k), v, len), 0);
    }
    for (unsigned i = 0; i < NKEYS; i += 3) {
        key_of(k, i);
        ck_assert_int_eq(ekv_delete(s, k, strlen(k)), 0);
    }
    /* Records far into the device, in the third batch. */
    for (unsigned i = 0; i < NKEYS; i += 3) {
        key_of(k, i);
        size_t len = (i * 37u) % sizeof(v);
        for (size_t j = 0; j < len; j++)
            v[j] = (uint8_t)(i + j);
        ck_assert_int_eq(ekv_put(s, k, strlen(k), v, len), 0);
    }
}

static void check_all(ekv_store *s)
{
    char k[16];
    uint8_t v[200], got[200];
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.records, NKEYS);
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(k, i);
        size_t len = (i * 37u) % sizeof(v), n = 0;
        for (size_t j = 0; j < len; j++)
            v[j] = (uint8_t)(i + j);
        ck_assert_int_eq(ekv_get(s, k, strlen(k), got, sizeof(got), &n), 0);
        ck_assert_uint_eq(n, len);
        ck_assert(len == 0 || memcmp(got, v, len) == 0);
    }
}

/* A filled device, closed, with the fault-free reference report. */
static simdev *filled(ekv_replica_report *ref)
{
    simdev *sim = NULL;
    ekv_store *s = open_sims(&sim, 1, BS, BC, 0);
    fill(s);
    ekv_close(s);
    sim_reset_faults(sim);
    ekv_device *d = &sim->dev;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    check_all(s);
    ck_assert_int_eq(ekv_replica_report_get(s, 0, ref), 0);
    ck_assert_uint_eq(ref->erased_blocks, 0);
    ekv_close(s);
    return sim;
}

/* Open with batches on and the faults set by `arm`; the store must see
 * every record, erase nothing, and report what the block reads report. */
static void open_with(simdev *sim, const ekv_replica_report *ref,
                      uint32_t flags)
{
    ekv_device *d = &sim->dev;
    ekv_store *s = NULL;
    ekv_options o = {.flags = flags};
    uint64_t writes = sim->writes;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    check_all(s);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_eq(rep.erased_blocks, 0);
    ck_assert_uint_eq(rep.unreadable_blocks, 0);
    ck_assert_uint_eq(rep.garbage_blocks, 0);
    ck_assert_uint_eq(rep.free_blocks, ref->free_blocks);
    ck_assert_uint_eq(rep.descriptor_blocks, ref->descriptor_blocks);
    ck_assert_uint_eq(rep.chunk_blocks, ref->chunk_blocks);
    ck_assert_uint_eq(rep.keys, ref->keys);
    ck_assert_uint_eq(sim->writes, writes); /* nothing erased or written */
    ekv_close(s);
}

START_TEST(batches_read_the_device_in_a_few_calls)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
    sim_reset_faults(sim);
    open_with(sim, &ref, 0);
#ifdef EKV_NO_INDEX
    /* The scanning core keeps one read per block. */
    ck_assert_uint_eq(sim->batches, 0);
#else
    /* 2599 blocks after the header: three batches, and only the header
     * and the gets' record reads go one block at a time. */
    ck_assert_uint_eq(sim->batches, 3);
    ck_assert_uint_lt(sim->reads, 2 + NKEYS * 4);
#endif
    sim_free(sim);
}
END_TEST

START_TEST(without_read_blocks_every_block_is_read_alone)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    open_with(sim, &ref, 0);
    ck_assert_uint_eq(sim->batches, 0);
    ck_assert_uint_ge(sim->reads, BC);
    sim_free(sim);
}
END_TEST

/* Each of the three batches fails in turn (its buffer full of valid
 * blocks from the wrong places): every block of it is read alone. */
START_TEST(failed_batch_reads_its_blocks_again)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
    for (uint64_t at = 1; at <= 3; at++) {
        sim_reset_faults(sim);
        sim->fail_batch_at = at;
        open_with(sim, &ref, 0);
#ifndef EKV_NO_INDEX
        ck_assert_uint_eq(sim->batches, 3);
        ck_assert_uint_ge(sim->reads, 1000); /* that batch, block by block */
#endif
    }
    /* Every batch fails: the whole device is read block by block. */
    sim_reset_faults(sim);
    sim->fail_batch_at = 1;
    sim->fail_count = 3;
    open_with(sim, &ref, 0);
    ck_assert_uint_ge(sim->reads, BC);
    sim_free(sim);
}
END_TEST

START_TEST(short_batch_reads_its_blocks_again)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
    for (uint64_t at = 1; at <= 3; at++) {
        sim_reset_faults(sim);
        sim->short_batch_at = at;
        open_with(sim, &ref, 0);
    }
    sim_free(sim);
}
END_TEST

/* A bit flipped in one block of a batch: that block is read again alone
 * and believed only then. Every block of the first batch gets its turn
 * (the flip's block and bit are drawn from the seed). */
START_TEST(flipped_block_in_a_batch_is_read_again)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
#ifdef EKV_NO_INDEX
    const uint64_t seeds = 2; /* nothing batched there: just the same */
#else
    const uint64_t seeds = 64;
#endif
    for (uint64_t seed = 0; seed < seeds; seed++) {
        sim_reset_faults(sim);
        sim->seed = seed * 0x9e3779b97f4a7c15ull + 1;
        sim->flip_batch_at = 1 + seed % 3;
        open_with(sim, &ref, 0);
    }
    sim_free(sim);
}
END_TEST

/* A block that reads bad every time, in batch and alone: it is reported
 * unreadable, and nothing is erased on that replica. */
START_TEST(bad_block_fails_its_batch_and_is_reported_unreadable)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
    sim_reset_faults(sim);
    sim->bad_block = 1500; /* a free block, in the second batch */
    ekv_device *d = &sim->dev;
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    check_all(s);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_eq(rep.unreadable_blocks, 1);
    ck_assert_uint_eq(rep.erased_blocks, 0);
    ck_assert_uint_eq(sim->writes, 0);
    ekv_close(s);
    sim_free(sim);
}
END_TEST

/* A torn block in a batch is garbage as it is in a block read: erased,
 * while every record stays. */
START_TEST(garbage_in_a_batch_is_erased_like_in_block_reads)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    uint8_t junk[BS];
    memset(junk, 0x5a, sizeof(junk));
    sim_poke(sim, 2000, junk);
    sim_set_batch(sim, 1);
    sim_reset_faults(sim);
    ekv_device *d = &sim->dev;
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    check_all(s);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_eq(rep.garbage_blocks, 1);
    ck_assert_uint_eq(rep.erased_blocks, 1);
    ck_assert_uint_eq(sim->writes, 1);
    ekv_close(s);
    sim_free(sim);
}
END_TEST

/* An allocator that refuses the batch buffer (the one request of 64 KiB)
 * leaves recovery on block reads, and the open succeeds. */
static void *no_big_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return size >= 65536 ? NULL : malloc(size);
}

static void plain_free(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)size;
    free(p);
}

START_TEST(batch_buffer_refused_falls_back_to_block_reads)
{
    ekv_replica_report ref;
    simdev *sim = filled(&ref);
    sim_set_batch(sim, 1);
    sim_reset_faults(sim);
    ekv_allocator a = {.alloc = no_big_alloc, .free = plain_free};
    ekv_options o = {.allocator = &a};
    ekv_device *d = &sim->dev;
    ekv_store *s = NULL;
    /* BC x 16 B of chunk table is below 64 KiB: only the batch is big. */
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    check_all(s);
    ck_assert_uint_eq(sim->batches, 0);
    ck_assert_uint_ge(sim->reads, BC);
    ekv_close(s);
    sim_free(sim);
}
END_TEST

/* zero_run: the blocks it names are taken as free without being read. */
static uint32_t hole_from, hole_to;
static uint32_t sim_zero_run(ekv_device *d, uint32_t first, uint32_t count)
{
    (void)d;
    if (first < hole_from || first >= hole_to)
        return 0;
    return hole_to - first < count ? hole_to - first : count;
}

START_TEST(zero_run_skips_holes_without_reading_them)
{
    simdev *sim = NULL;
    ekv_store *s = open_sims(&sim, 1, BS, BC, 0);
    ck_assert_int_eq(put_s(s, "a", "first"), 0);
    ekv_close(s);
    sim_set_batch(sim, 1);
    sim_reset_faults(sim);
    sim->dev.zero_run = sim_zero_run;
    hole_from = 10;
    hole_to = BC;
#ifndef EKV_NO_INDEX
    sim->bad_block = 2000; /* would fail if it were read */
#endif
    ekv_device *d = &sim->dev;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_str_eq(get_s(s, "a"), "first");
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
#ifndef EKV_NO_INDEX
    ck_assert_uint_eq(rep.unreadable_blocks, 0);
    ck_assert_uint_eq(rep.free_blocks, BC - 2);
    ck_assert_uint_eq(sim->batches, 1); /* blocks 1..9 */
#endif
    /* The skipped blocks are usable free space. */
    ck_assert_int_eq(put_s(s, "b", "second"), 0);
    ekv_close(s);
    sim->dev.zero_run = NULL;
    sim->bad_block = EKV_BLOCK_NONE;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_str_eq(get_s(s, "a"), "first");
    ck_assert_str_eq(get_s(s, "b"), "second");
    ekv_close(s);
    sim_free(sim);
}
END_TEST

#ifndef EKV_NO_INDEX
/* Recovery's entry arena: every byte accounted for while keys come and go,
 * the arena given back once its last key is deleted, nothing left at
 * close; and a store whose arena cannot be had still opens. */
typedef struct counting {
    size_t live;
    size_t refuse; /* refuse requests of exactly this size (0: none) */
    unsigned refused;
} counting;

static void *c_alloc(void *ctx, size_t size)
{
    counting *c = ctx;
    if (c->refuse && size == c->refuse) {
        c->refused++;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p)
        c->live += size;
    return p;
}

static void c_free(void *ctx, void *p, size_t size)
{
    counting *c = ctx;
    c->live -= size;
    free(p);
}

/* Returns how many allocations were refused; *had_arena: whether the
 * open store had an arena. */
static unsigned arena_round(unsigned nrep, size_t refuse, bool *had_arena)
{
    simdev *sims[2] = {NULL, NULL};
    ekv_store *s = open_sims(sims, nrep, BS, BC, 0);
    fill(s);
    ekv_close(s);
    counting c = {0, refuse, 0};
    ekv_allocator al = {c_alloc, c_free, &c};
    ekv_options o = {.allocator = &al};
    ekv_device *devs[2] = {&sims[0]->dev, nrep > 1 ? &sims[1]->dev : NULL};
    ck_assert_int_eq(ekv_open(&s, devs, nrep, &o), 0);
    *had_arena = s->index.arena != NULL;
    check_all(s);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.memory_bytes, c.live);
    char k[16];
    /* Delete every key, then put some back: accounting holds throughout. */
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(k, i);
        ck_assert_int_eq(ekv_delete(s, k, strlen(k)), 0);
        if (i % 50 == 0) {
            ekv_stats_get(s, &st);
            ck_assert_uint_eq(st.memory_bytes, c.live);
        }
    }
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 0);
    ck_assert_uint_eq(st.memory_bytes, c.live);
    ck_assert_uint_eq(st.index_bytes, (size_t)s->index.cap * 9);
    ck_assert_ptr_null(s->index.arena);
    for (unsigned i = 0; i < 20; i++) {
        key_of(k, i);
        ck_assert_int_eq(put_s(s, k, "again"), 0);
    }
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.memory_bytes, c.live);
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    for (unsigned r = 0; r < nrep; r++)
        sim_free(sims[r]);
    return c.refused;
}

START_TEST(entry_arena_is_accounted_and_given_back)
{
    bool had = false;
    ck_assert_uint_eq(arena_round(1, 0, &had), 0);
    ck_assert(had);
    ck_assert_uint_eq(arena_round(2, 0, &had), 0);
    ck_assert(had);
}
END_TEST

START_TEST(scan_entries_become_the_arena_with_no_entry_allocated_alone)
{
    /* Every key is 8 bytes: an entry allocated alone would be a request
     * of 8 + 12 + 8 = 28 bytes. Recovery of one replica makes none: the
     * entries the scan wrote are the arena, and every key's entry lies in
     * it. */
    simdev *sim = NULL;
    ekv_store *s = open_sims(&sim, 1, BS, BC, 0);
    fill(s);
    ekv_close(s);
    counting c = {0, 28, 0};
    ekv_allocator al = {c_alloc, c_free, &c};
    ekv_options o = {.allocator = &al};
    ekv_device *d = &sim->dev;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_uint_eq(c.refused, 0);
    ck_assert_ptr_nonnull(s->index.arena);
    check_all(s);
    for (uint32_t i = 0; i < s->index.cap; i++) {
        const uint8_t *e = (const uint8_t *)s->index.slots[i];
        if (e)
            ck_assert(e >= s->index.arena &&
                      e < s->index.arena + s->index.arena_used);
    }
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    sim_free(sim);
}
END_TEST

/* Keys only at the start of a large device: the scan's guess of how many
 * entries are coming is far too high, and the arena it leaves must not
 * stay that large (at most half again the entries' bytes). */
START_TEST(arena_of_a_front_filled_device_stays_near_its_entries)
{
    const uint32_t bc = 40000;
    const unsigned n = 1500;
    simdev *sim = NULL;
    ekv_store *s = open_sims(&sim, 1, BS, bc, 0);
    char k[16];
    for (unsigned i = 0; i < n; i++) {
        key_of(k, i);
        ck_assert_int_eq(put_s(s, k, "v"), 0);
    }
    ekv_close(s);
    ekv_device *d = &sim->dev;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, n);
    ck_assert_ptr_nonnull(s->index.arena);
    size_t entries = (size_t)n * 28; /* 8 + 12 + 8 bytes each */
    ck_assert_uint_le(s->index.arena_size, entries + entries / 2 + 4096);
    ck_assert_uint_eq(st.index_bytes,
                      (size_t)s->index.cap * 9 + s->index.arena_size);
    ekv_close(s);
    sim_free(sim);
}
END_TEST

/* The word-at-a-time range of the free map equals block-by-block frees. */
START_TEST(freemap_range_equals_block_by_block)
{
    const uint32_t nb = 64 * 64 * 3 + 17;
    ekv_freemap a, b;
    ck_assert_int_eq(freemap_init(&a, nb, &ekv_default_allocator), 0);
    ck_assert_int_eq(freemap_init(&b, nb, &ekv_default_allocator), 0);
    uint64_t seed = 12345;
    for (int i = 0; i < 400; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t first = (uint32_t)(seed >> 33) % nb;
        uint32_t n = (uint32_t)(seed >> 13) % (i % 4 == 0 ? 9000 : 130);
        if (n > nb - first)
            n = nb - first;
        freemap_set_free_range(&a, first, n);
        for (uint32_t k = 0; k < n; k++)
            freemap_set_free(&b, first + k);
        ck_assert_uint_eq(a.free_count, b.free_count);
        /* Take a few again, so that ranges meet used and free bits. */
        for (int k = 0; k < 3; k++)
            ck_assert_uint_eq(freemap_take_lowest(&a),
                              freemap_take_lowest(&b));
        ck_assert_uint_eq(a.hint, b.hint);
    }
    ck_assert_mem_eq(a.bits, b.bits, freemap_bytes(nb));
    freemap_free(&a, &ekv_default_allocator);
    freemap_free(&b, &ekv_default_allocator);
}
END_TEST
#endif

int main(void)
{
    Suite *su = suite_create("batch");
    TCase *tc = tcase_create("read_blocks");
    tcase_add_test(tc, batches_read_the_device_in_a_few_calls);
    tcase_add_test(tc, without_read_blocks_every_block_is_read_alone);
    tcase_add_test(tc, failed_batch_reads_its_blocks_again);
    tcase_add_test(tc, short_batch_reads_its_blocks_again);
    tcase_add_test(tc, flipped_block_in_a_batch_is_read_again);
    tcase_add_test(tc, bad_block_fails_its_batch_and_is_reported_unreadable);
    tcase_add_test(tc, garbage_in_a_batch_is_erased_like_in_block_reads);
    tcase_add_test(tc, batch_buffer_refused_falls_back_to_block_reads);
    tcase_add_test(tc, zero_run_skips_holes_without_reading_them);
#ifndef EKV_NO_INDEX
    tcase_add_test(tc, freemap_range_equals_block_by_block);
    tcase_add_test(tc, entry_arena_is_accounted_and_given_back);
    tcase_add_test(tc, scan_entries_become_the_arena_with_no_entry_allocated_alone);
    tcase_add_test(tc, arena_of_a_front_filled_device_stays_near_its_entries);
#endif
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
