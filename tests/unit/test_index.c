/*
 * The key index (src/core/index.c): an open-addressing table with linear
 * probing and backward-shift deletion. The hash is a parameter of every
 * call, so tests can force any collision pattern: all keys in one home
 * slot, homes at the end of the table that wrap around, and random
 * insert/delete sequences checked against a plain array model.
 */
#include <stdio.h>

#include "helpers.h"

/* An allocator that counts what is live and can be told to fail. */
typedef struct counting {
    size_t live_bytes;
    long live_blocks;
    long fail_after; /* allocations left before failing; < 0: never */
} counting;

static void *c_alloc(void *ctx, size_t size)
{
    counting *c = ctx;
    if (c->fail_after == 0)
        return NULL;
    if (c->fail_after > 0)
        c->fail_after--;
    void *p = malloc(size ? size : 1);
    if (p) {
        c->live_bytes += size;
        c->live_blocks++;
    }
    return p;
}

static void c_free(void *ctx, void *p, size_t size)
{
    counting *c = ctx;
    c->live_bytes -= size;
    c->live_blocks--;
    free(p);
}

static counting cnt;
static ekv_allocator calloc_hook = {c_alloc, c_free, &cnt};

static void setup(void)
{
    memset(&cnt, 0, sizeof(cnt));
    cnt.fail_after = -1;
}

static ekv_entry *add(ekv_index *ix, const void *k, size_t len, uint32_t h)
{
    ekv_entry *e = index_get_or_add(ix, k, len, h);
    ck_assert_ptr_nonnull(e);
    return e;
}

/* Every entry sits at or after its home slot with no empty slot between:
 * the probe-chain invariant that lookups rely on. A slot's tag is set
 * exactly when the slot is used, and it is the same for equal hashes. */
static void assert_chains_unbroken(const ekv_index *ix)
{
    uint32_t mask = ix->cap - 1, n = 0;
    for (uint32_t i = 0; i < ix->cap; i++) {
        ekv_entry *e = ix->slots[i];
        require((ix->tags[i] != 0) == (e != NULL));
        if (!e)
            continue;
        for (uint32_t j = 0; ix->cap <= 4096 && j < i; j++)
            if (ix->slots[j] && ix->slots[j]->hash == e->hash)
                require(ix->tags[j] == ix->tags[i]);
        n++;
        for (uint32_t j = e->hash & mask; j != i; j = (j + 1) & mask)
            require(ix->slots[j] != NULL);
    }
    ck_assert_uint_eq(n, ix->count);
}

START_TEST(empty_index_finds_nothing)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    ck_assert_ptr_null(index_find(&ix, "a", 1, key_hash("a", 1)));
    ck_assert_ptr_null(index_find(&ix, "", 0, key_hash("", 0)));
    ck_assert_uint_eq(ix.count, 0);
    ck_assert_uint_eq(ix.bytes, 0);
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
}
END_TEST

START_TEST(added_key_is_found_with_every_replica_slot_empty)
{
    ekv_index ix;
    index_init(&ix, 3, &calloc_hook);
    ekv_entry *e = add(&ix, "alpha", 5, key_hash("alpha", 5));
    ck_assert_uint_eq(e->key_len, 5);
    ck_assert_mem_eq(entry_key(e, 3), "alpha", 5);
    for (unsigned r = 0; r < 3; r++) {
        ck_assert_uint_eq(e->rep[r].desc, EKV_BLOCK_NONE);
        ck_assert_uint_eq(e->rep[r].gen, 0);
        ck_assert_uint_eq(e->rep[r].size, 0);
    }
    ck_assert_ptr_eq(index_find(&ix, "alpha", 5, key_hash("alpha", 5)), e);
    ck_assert_uint_eq(ix.count, 1);
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
}
END_TEST

START_TEST(get_or_add_of_present_key_returns_the_same_entry)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    ekv_entry *e = add(&ix, "k", 1, key_hash("k", 1));
    e->rep[0].gen = 9;
    ck_assert_ptr_eq(add(&ix, "k", 1, key_hash("k", 1)), e);
    ck_assert_uint_eq(e->rep[0].gen, 9);
    ck_assert_uint_eq(ix.count, 1);
    index_free(&ix);
}
END_TEST

START_TEST(many_keys_are_all_found_after_growth)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    char k[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        add(&ix, k, (size_t)n, key_hash(k, (size_t)n))->rep[0].gen =
            (uint32_t)i;
    }
    ck_assert_uint_eq(ix.count, 20000);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        ekv_entry *e = index_find(&ix, k, (size_t)n, key_hash(k, (size_t)n));
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->rep[0].gen, (uint32_t)i);
    }
    ck_assert_ptr_null(index_find(&ix, "key-20000", 9,
                                  key_hash("key-20000", 9)));
    assert_chains_unbroken(&ix);
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
    ck_assert_uint_eq(cnt.live_bytes, 0);
}
END_TEST

START_TEST(load_factor_never_exceeds_four_fifths)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    for (uint32_t i = 0; i < 5000; i++) {
        add(&ix, &i, sizeof(i), key_hash(&i, sizeof(i)));
        ck_assert_uint_le((uint64_t)ix.count * 5, (uint64_t)ix.cap * 4);
        ck_assert_uint_eq(ix.cap & (ix.cap - 1), 0); /* power of two */
    }
    index_free(&ix);
}
END_TEST

START_TEST(keys_with_identical_hash_stay_distinct)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    char k[16];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(k, sizeof(k), "c%d", i);
        add(&ix, k, (size_t)n, 0x1234u)->rep[0].gen = (uint32_t)i + 1;
    }
    ck_assert_uint_eq(ix.count, 300);
    for (int i = 0; i < 300; i++) {
        int n = snprintf(k, sizeof(k), "c%d", i);
        ekv_entry *e = index_find(&ix, k, (size_t)n, 0x1234u);
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->rep[0].gen, (uint32_t)i + 1);
    }
    /* The same bytes under another hash are another probe: not found. */
    ck_assert_ptr_null(index_find(&ix, "c0", 2, 0x1235u));
    assert_chains_unbroken(&ix);
    index_free(&ix);
}
END_TEST

START_TEST(keys_differing_only_in_length_are_distinct)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    static const char k[] = "aaaa\0\0";
    for (size_t len = 0; len <= 6; len++)
        add(&ix, k, len, 7u)->rep[0].size = (uint32_t)len;
    ck_assert_uint_eq(ix.count, 7);
    for (size_t len = 0; len <= 6; len++)
        ck_assert_uint_eq(index_find(&ix, k, len, 7u)->rep[0].size, len);
    index_free(&ix);
}
END_TEST

START_TEST(empty_key_is_a_key_like_any_other)
{
    ekv_index ix;
    index_init(&ix, 2, &calloc_hook);
    ekv_entry *e = add(&ix, "", 0, key_hash("", 0));
    ck_assert_uint_eq(e->key_len, 0);
    ck_assert_ptr_eq(index_find(&ix, "", 0, key_hash("", 0)), e);
    ck_assert_ptr_null(index_find(&ix, "\0", 1, key_hash("\0", 1)));
    index_remove(&ix, e);
    ck_assert_ptr_null(index_find(&ix, "", 0, key_hash("", 0)));
    ck_assert_uint_eq(ix.count, 0);
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
}
END_TEST

START_TEST(keys_differing_only_in_non_utf8_bytes_are_distinct)
{
    /* Each of these decodes lossily to the same text (U+FFFD in place of
     * the bad byte), which is how the Rust version collides them. */
    static const uint8_t keys[][3] = {
        {'k', 0xff, 0}, {'k', 0xfe, 0}, {'k', 0x80, 0}, {'k', 0xc3, 0x28},
        {'k', 0xc3, 0x29}, {'k', 0xed, 0xa0},
    };
    static const size_t lens[] = {2, 2, 2, 3, 3, 3};
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    for (size_t i = 0; i < 6; i++) {
        /* Force them into one home as well: only the bytes tell them
         * apart. */
        add(&ix, keys[i], lens[i], 99u)->rep[0].gen = (uint32_t)i;
    }
    ck_assert_uint_eq(ix.count, 6);
    for (size_t i = 0; i < 6; i++)
        ck_assert_uint_eq(index_find(&ix, keys[i], lens[i], 99u)->rep[0].gen,
                          i);
    ck_assert_uint_ne(key_hash("k\xff", 2), key_hash("k\xfe", 2));
    index_free(&ix);
}
END_TEST

START_TEST(removing_head_of_collision_chain_keeps_the_rest_reachable)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    ekv_entry *a = add(&ix, "a", 1, 5u);
    add(&ix, "b", 1, 5u);
    add(&ix, "c", 1, 6u); /* home taken by b: displaced */
    add(&ix, "d", 1, 5u);
    index_remove(&ix, a);
    ck_assert_ptr_null(index_find(&ix, "a", 1, 5u));
    ck_assert_ptr_nonnull(index_find(&ix, "b", 1, 5u));
    ck_assert_ptr_nonnull(index_find(&ix, "c", 1, 6u));
    ck_assert_ptr_nonnull(index_find(&ix, "d", 1, 5u));
    assert_chains_unbroken(&ix);
    index_free(&ix);
}
END_TEST

START_TEST(removal_does_not_move_an_entry_before_its_home)
{
    /* a@5 b@5 c@7: removing a must move b into 5, not c (whose home 7 lies
     * after the hole). */
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    ekv_entry *a = add(&ix, "a", 1, 5u);
    add(&ix, "b", 1, 5u);
    add(&ix, "x", 1, 6u);
    add(&ix, "c", 1, 7u);
    index_remove(&ix, a);
    assert_chains_unbroken(&ix);
    ck_assert_ptr_nonnull(index_find(&ix, "b", 1, 5u));
    ck_assert_ptr_nonnull(index_find(&ix, "x", 1, 6u));
    ck_assert_ptr_nonnull(index_find(&ix, "c", 1, 7u));
    index_free(&ix);
}
END_TEST

START_TEST(chains_that_wrap_past_the_table_end_survive_removal)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    /* A 16-slot table: homes 15 and 14 wrap into slots 0, 1, ... */
    ekv_entry *first = add(&ix, "w0", 2, 15u);
    add(&ix, "w1", 2, 15u);
    add(&ix, "w2", 2, 0xffffffffu); /* home 15 too, in any table size */
    add(&ix, "z", 2, 0u);           /* home 0, displaced by the wrap */
    add(&ix, "y", 1, 14u);
    ck_assert_uint_eq(ix.cap, 16);
    assert_chains_unbroken(&ix);
    index_remove(&ix, first);
    assert_chains_unbroken(&ix);
    ck_assert_ptr_nonnull(index_find(&ix, "w1", 2, 15u));
    ck_assert_ptr_nonnull(index_find(&ix, "w2", 2, 0xffffffffu));
    ck_assert_ptr_nonnull(index_find(&ix, "z", 2, 0u));
    ck_assert_ptr_nonnull(index_find(&ix, "y", 1, 14u));
    index_free(&ix);
}
END_TEST

/* The model: key i ("m<i>") present or not. Hashes come from a chooser so
 * that runs range from real spread to everything in three homes. */
#define MODEL_KEYS 400

static uint32_t model_hash(int mode, const char *k, size_t n, int i)
{
    switch (mode) {
    case 0: return key_hash(k, n);
    case 1: return (uint32_t)(i % 3) * 0x55555555u; /* three homes */
    case 2: return 0xfffffff0u + (uint32_t)(i % 16); /* end of table */
    default: return (uint32_t)i * 2654435761u;
    }
}

START_TEST(random_inserts_and_removals_match_a_model)
{
    const int mode = _i % 4;
    uint64_t seed = 1000 + (uint64_t)_i;
    bool present[MODEL_KEYS] = {false};
    uint32_t count = 0;
    ekv_index ix;
    index_init(&ix, 2, &calloc_hook);
    char k[16];
    for (int step = 0; step < 6000; step++) {
        int i = (int)(test_rand(&seed) % MODEL_KEYS);
        size_t n = (size_t)snprintf(k, sizeof(k), "m%d", i);
        uint32_t h = model_hash(mode, k, n, i);
        ekv_entry *e = index_find(&ix, k, n, h);
        require((e != NULL) == present[i]);
        if (present[i] && (test_rand(&seed) % 3) != 0) {
            index_remove(&ix, e);
            present[i] = false;
            count--;
        } else if (!present[i]) {
            e = add(&ix, k, n, h);
            e->rep[1].gen = (uint32_t)i;
            present[i] = true;
            count++;
        }
        require(ix.count == count);
        if (step % 7 == 0)
            assert_chains_unbroken(&ix);
        if (step % 53 == 0) {
            for (int j = 0; j < MODEL_KEYS; j++) {
                size_t m = (size_t)snprintf(k, sizeof(k), "m%d", j);
                ekv_entry *f = index_find(&ix, k, m, model_hash(mode, k, m, j));
                require((f != NULL) == present[j]);
                require(!f || f->rep[1].gen == (uint32_t)j);
            }
        }
    }
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
    ck_assert_uint_eq(cnt.live_bytes, 0);
}
END_TEST

START_TEST(bytes_count_table_and_entries_as_allocated)
{
    ekv_index ix;
    index_init(&ix, 2, &calloc_hook);
    char k[16];
    ekv_entry *keep[50];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(k, sizeof(k), "bytes%d", i);
        keep[i] = add(&ix, k, (size_t)n, key_hash(k, (size_t)n));
        ck_assert_uint_eq(ix.bytes, cnt.live_bytes);
    }
    for (int i = 0; i < 50; i += 2) {
        index_remove(&ix, keep[i]);
        ck_assert_uint_eq(ix.bytes, cnt.live_bytes);
    }
    index_free(&ix);
    ck_assert_uint_eq(ix.bytes, 0);
    ck_assert_uint_eq(cnt.live_bytes, 0);
}
END_TEST

START_TEST(memory_per_key_is_at_most_48_bytes_plus_key_length)
{
    /* One replica, as the benchmark's target states it. */
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    char k[24];
    size_t keybytes = 0;
    for (uint32_t i = 1; i <= 100000; i++) {
        int n = snprintf(k, sizeof(k), "key%08u", i);
        add(&ix, k, (size_t)n, key_hash(k, (size_t)n));
        keybytes += (size_t)n;
        /* From 16 keys on: below that the minimal table dominates. */
        if (i >= 16 && ((i & (i - 1)) == 0 || i % 997 == 0))
            ck_assert_uint_le(ix.bytes, (size_t)48 * i + keybytes);
    }
    index_free(&ix);
}
END_TEST

START_TEST(allocation_failure_returns_null_and_leaves_index_intact)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    char k[16];
    for (int i = 0; i < 12; i++) {
        int n = snprintf(k, sizeof(k), "f%d", i);
        add(&ix, k, (size_t)n, key_hash(k, (size_t)n));
    }
    /* The 13th key needs the table to grow (13 > 16 * 0.8): fail that,
     * then fail the entry itself. */
    for (long f = 0; f < 2; f++) {
        cnt.fail_after = f;
        ck_assert_ptr_null(index_get_or_add(&ix, "new", 3, key_hash("new", 3)));
        ck_assert_uint_eq(ix.count, 12);
        ck_assert_uint_eq(ix.bytes, cnt.live_bytes);
        assert_chains_unbroken(&ix);
        for (int i = 0; i < 12; i++) {
            int n = snprintf(k, sizeof(k), "f%d", i);
            ck_assert_ptr_nonnull(
                index_find(&ix, k, (size_t)n, key_hash(k, (size_t)n)));
        }
    }
    cnt.fail_after = -1;
    ck_assert_ptr_nonnull(index_get_or_add(&ix, "new", 3, key_hash("new", 3)));
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
}
END_TEST

START_TEST(reserve_sizes_the_table_once_for_many_keys)
{
    ekv_index ix;
    index_init(&ix, 1, &calloc_hook);
    ck_assert_int_eq(index_reserve(&ix, 1000), 0);
    const uint32_t cap = ix.cap;
    ck_assert_uint_ge((uint64_t)cap * 4, 1000u * 5);
    ck_assert_uint_eq(ix.bytes, cnt.live_bytes);
    for (uint32_t i = 0; i < 1000; i++)
        add(&ix, &i, sizeof(i), key_hash(&i, sizeof(i)));
    ck_assert_uint_eq(ix.cap, cap); /* no growth on the way */
    assert_chains_unbroken(&ix);
    /* Reserving less than there is changes nothing. */
    ck_assert_int_eq(index_reserve(&ix, 10), 0);
    ck_assert_uint_eq(ix.cap, cap);
    /* A reserve that cannot be allocated leaves the index as it was. */
    cnt.fail_after = 0;
    ck_assert_int_eq(index_reserve(&ix, 100000), EKV_ENOMEM);
    cnt.fail_after = -1;
    ck_assert_uint_eq(ix.cap, cap);
    for (uint32_t i = 0; i < 1000; i++)
        ck_assert_ptr_nonnull(index_find(&ix, &i, sizeof(i),
                                         key_hash(&i, sizeof(i))));
    index_free(&ix);
    ck_assert_int_eq(cnt.live_blocks, 0);
}
END_TEST

START_TEST(key_hash_is_deterministic_and_sees_every_byte)
{
    uint8_t k[64];
    fill_pattern(k, sizeof(k), 3);
    uint32_t h = key_hash(k, sizeof(k));
    ck_assert_uint_eq(key_hash(k, sizeof(k)), h);
    for (size_t i = 0; i < sizeof(k); i++) {
        k[i] ^= 0x80;
        ck_assert_uint_ne(key_hash(k, sizeof(k)), h);
        k[i] ^= 0x80;
    }
    ck_assert_uint_ne(key_hash(k, 63), h);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, empty_index_finds_nothing);
    tcase_add_test(tc, added_key_is_found_with_every_replica_slot_empty);
    tcase_add_test(tc, get_or_add_of_present_key_returns_the_same_entry);
    tcase_add_test(tc, many_keys_are_all_found_after_growth);
    tcase_add_test(tc, load_factor_never_exceeds_four_fifths);
    tcase_add_test(tc, keys_with_identical_hash_stay_distinct);
    tcase_add_test(tc, keys_differing_only_in_length_are_distinct);
    tcase_add_test(tc, empty_key_is_a_key_like_any_other);
    tcase_add_test(tc, keys_differing_only_in_non_utf8_bytes_are_distinct);
    tcase_add_test(tc, removing_head_of_collision_chain_keeps_the_rest_reachable);
    tcase_add_test(tc, removal_does_not_move_an_entry_before_its_home);
    tcase_add_test(tc, chains_that_wrap_past_the_table_end_survive_removal);
    tcase_add_loop_test(tc, random_inserts_and_removals_match_a_model, 0, 8);
    tcase_add_test(tc, bytes_count_table_and_entries_as_allocated);
    tcase_add_test(tc, memory_per_key_is_at_most_48_bytes_plus_key_length);
    tcase_add_test(tc, allocation_failure_returns_null_and_leaves_index_intact);
    tcase_add_test(tc, reserve_sizes_the_table_once_for_many_keys);
    tcase_add_test(tc, key_hash_is_deterministic_and_sees_every_byte);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
