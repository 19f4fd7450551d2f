/*
 * The store's contract on one replica (include/embedkv.h): put, get,
 * delete, iterate, stat_key and stats; keys as byte strings; the limits
 * (ENAMETOOLONG, EFBIG, ENOSPC, ERANGE); generations; where records go
 * (lowest free blocks, byte-identical images for the same operations);
 * values of every size around block boundaries; persistence; read-only
 * stores; the allocation hook.
 */
#include <stdio.h>

#include "helpers.h"

#define BS 256u

/* Format a fresh device filled with `fill` and open it with erase byte
 * `erase`. */
static ekv_store *open_fresh(simdev **sd, uint32_t bc, uint8_t fill,
                             uint8_t erase, uint32_t flags)
{
    *sd = sim_new(BS, bc, fill);
    ekv_device *d = &(*sd)->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_options o = {.flags = flags, .erase_byte = erase};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    return s;
}

static uint32_t gen_of(ekv_store *s, const void *k, size_t klen)
{
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, k, klen, &ki), 0);
    return ki.generation;
}

/* The key held by the descriptor at block b ("" if b holds none). */
static const char *key_at(simdev *sd, uint32_t b)
{
    static char k[BS];
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd, b), BS, &bi);
    if (bi.kind != EKV_BLOCK_DESCRIPTOR)
        return "";
    memcpy(k, bi.key, bi.key_size);
    k[bi.key_size] = 0;
    return k;
}

/* ---- basic operations --------------------------------------------------- */

START_TEST(put_then_get_returns_the_value)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "hello", "world"), 0);
    ck_assert_str_eq(get_s(s, "hello"), "world");
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(get_of_absent_key_is_enoent)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    char buf[8];
    size_t len = 77;
    ck_assert_int_eq(ekv_get(s, "nope", 4, buf, sizeof(buf), &len),
                     EKV_ENOENT);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "nope", 4, &ki), EKV_ENOENT);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(put_of_present_key_replaces_its_value)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "k", "first"), 0);
    ck_assert_int_eq(put_s(s, "k", "second, longer"), 0);
    ck_assert_str_eq(get_s(s, "k"), "second, longer");
    ck_assert_int_eq(put_s(s, "k", "3"), 0);
    ck_assert_str_eq(get_s(s, "k"), "3");
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 1);
    ck_assert_uint_eq(st.used_blocks, 1);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(delete_removes_the_key_and_frees_its_blocks)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    uint8_t v[600];
    fill_pattern(v, sizeof(v), 1);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0);
    ck_assert_int_eq(put_s(s, "other", "stays"), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_ptr_null(get_s(s, "k"));
    ck_assert_str_eq(get_s(s, "other"), "stays");
    for (uint32_t b = 1; b <= 3; b++)
        ck_assert(block_is_filled(sd[0], b, 0x00));
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 1);
    ck_assert_uint_eq(st.free_blocks, 16 - 1 - 1);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(delete_of_absent_key_is_enoent_and_writes_nothing)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(ekv_delete(s, "nope", 4), EKV_ENOENT);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(empty_key_holds_a_value)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(ekv_put(s, "", 0, "for the empty key", 17), 0);
    ck_assert_int_eq(put_s(s, "a", "x"), 0);
    assert_value(s, "", 0, "for the empty key", 17);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "", 0, &ki), 0);
    ck_assert_uint_eq(ki.key_len, 0);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    assert_value(s, "", 0, "for the empty key", 17);
    ck_assert_int_eq(ekv_delete(s, "", 0), 0);
    ck_assert_int_eq(ekv_stat_key(s, "", 0, &ki), EKV_ENOENT);
    ck_assert_str_eq(get_s(s, "a"), "x");
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(empty_key_may_be_given_as_a_null_pointer)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(ekv_put(s, NULL, 0, "v", 1), 0);
    assert_value(s, "", 0, "v", 1);
    assert_value(s, NULL, 0, "v", 1);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, NULL, 0, &ki), 0);
    ck_assert_int_eq(ekv_put(s, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(ekv_delete(s, NULL, 0), 0);
    ck_assert_int_eq(ekv_stat_key(s, NULL, 0, &ki), EKV_ENOENT);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(empty_value_round_trips)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(ekv_put(s, "e", 1, "", 0), 0);
    size_t len = 99;
    ck_assert_int_eq(ekv_get(s, "e", 1, NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(get_s(s, "e"), "");
    ck_assert_int_eq(ekv_put(s, "", 0, NULL, 0), 0);
    ck_assert_int_eq(ekv_get(s, "", 0, NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ck_assert_str_eq(get_s(s, "e"), "");
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "e", 1, &ki), 0);
    ck_assert_uint_eq(ki.value_size, 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* Keys that a lossy UTF-8 conversion maps to one string. */
static const uint8_t k_ff[] = {'k', 0xff};
static const uint8_t k_fe[] = {'k', 0xfe};
static const uint8_t k_bad1[] = {0xc3, 0x28};
static const uint8_t k_bad2[] = {0xc3, 0x29};
static const uint8_t k_nul1[] = {'a', 0x00, 'b'};
static const uint8_t k_nul2[] = {'a', 0x00, 'c'};

static int count_keys(void *ctx, const ekv_key_info *ki)
{
    (void)ki;
    (*(int *)ctx)++;
    return 0;
}

START_TEST(keys_are_compared_byte_for_byte)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(ekv_put(s, k_ff, 2, "FF", 2), 0);
    ck_assert_int_eq(ekv_put(s, k_fe, 2, "FE", 2), 0);
    ck_assert_int_eq(ekv_put(s, k_bad1, 2, "bad1", 4), 0);
    ck_assert_int_eq(ekv_put(s, k_bad2, 2, "bad2", 4), 0);
    ck_assert_int_eq(ekv_put(s, k_nul1, 3, "nul1", 4), 0);
    ck_assert_int_eq(ekv_put(s, k_nul2, 3, "nul2", 4), 0);
    for (int pass = 0; pass < 2; pass++) {
        assert_value(s, k_ff, 2, "FF", 2);
        assert_value(s, k_fe, 2, "FE", 2);
        assert_value(s, k_bad1, 2, "bad1", 4);
        assert_value(s, k_bad2, 2, "bad2", 4);
        assert_value(s, k_nul1, 3, "nul1", 4);
        assert_value(s, k_nul2, 3, "nul2", 4);
        int n = 0;
        ekv_iterate(s, count_keys, &n);
        ck_assert_int_eq(n, 6);
        ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    }
    ck_assert_int_eq(ekv_delete(s, k_ff, 2), 0);
    assert_value(s, k_fe, 2, "FE", 2);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(longest_key_is_accepted)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    uint8_t k[EKV_MAX_KEY_SIZE(BS)];
    fill_pattern(k, sizeof(k), 2);
    ck_assert_int_eq(ekv_put(s, k, sizeof(k), "v", 1), 0);
    assert_value(s, k, sizeof(k), "v", 1);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    assert_value(s, k, sizeof(k), "v", 1);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(key_one_byte_too_long_is_enametoolong_and_writes_nothing)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    uint8_t k[EKV_MAX_KEY_SIZE(BS) + 1];
    memset(k, 'k', sizeof(k));
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(ekv_put(s, k, sizeof(k), "v", 1), EKV_ENAMETOOLONG);
    ck_assert_int_eq(ekv_put(s, k, 70000, "v", 1), EKV_ENAMETOOLONG);
    ck_assert_uint_eq(sd[0]->writes, 0);
    size_t len;
    char buf[4];
    ck_assert_int_eq(ekv_get(s, k, sizeof(k), buf, sizeof(buf), &len),
                     EKV_ENOENT);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.max_key_size, sizeof(k) - 1);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(value_larger_than_the_store_is_efbig_and_writes_nothing)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 8, 0);
    /* 7 data blocks: 1 descriptor (first payload 219 for key "k") and 6
     * chunks of 232. */
    const size_t fits = 219 + 6 * 232;
    static uint8_t v[219 + 6 * 232 + 1];
    fill_pattern(v, sizeof(v), 3);
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, fits + 1), EKV_EFBIG);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, fits), 0);
    assert_value(s, "k", 1, v, fits);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.free_blocks, 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(enospc_keeps_the_old_value_and_writes_nothing)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 8, 0);
    uint8_t v[1000], w[1000];
    fill_pattern(v, sizeof(v), 4);
    fill_pattern(w, sizeof(w), 5);
    ck_assert_int_eq(ekv_put(s, "big", 3, v, sizeof(v)), 0); /* 5 blocks */
    ck_assert_int_eq(put_s(s, "a", "x"), 0);
    /* One block left: an update of "big" needs five more. */
    uint8_t *before = sim_snapshot(sd[0]);
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(ekv_put(s, "big", 3, w, sizeof(w)), EKV_ENOSPC);
    ck_assert_int_eq(ekv_put(s, "new", 3, w, 300), EKV_ENOSPC);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_uint_eq(sd[0]->flushes, 0);
    ck_assert_mem_eq(sim_image(sd[0]), before, BS * 8);
    assert_value(s, "big", 3, v, sizeof(v));
    ck_assert_uint_eq(gen_of(s, "big", 3), 1);
    ck_assert_int_eq(ekv_stat_key(s, "new", 3, &(ekv_key_info){0}),
                     EKV_ENOENT);
    /* Space comes back with a delete. */
    ck_assert_int_eq(ekv_delete(s, "a", 1), 0);
    ck_assert_int_eq(ekv_put(s, "new", 3, w, 300), 0);
    free(before);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(erange_reports_the_value_length)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    uint8_t v[500], buf[500];
    fill_pattern(v, sizeof(v), 6);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0);
    size_t len = 0;
    ck_assert_int_eq(ekv_get(s, "k", 1, buf, 499, &len), EKV_ERANGE);
    ck_assert_uint_eq(len, 500);
    len = 0;
    ck_assert_int_eq(ekv_get(s, "k", 1, NULL, 0, &len), EKV_ERANGE);
    ck_assert_uint_eq(len, 500);
    ck_assert_int_eq(ekv_get(s, "k", 1, buf, 500, &len), 0);
    ck_assert_mem_eq(buf, v, 500);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- generations -------------------------------------------------------- */

START_TEST(new_key_starts_at_generation_1_and_updates_increment)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "g", "1"), 0);
    ck_assert_uint_eq(gen_of(s, "g", 1), 1);
    for (uint32_t i = 2; i <= 20; i++) {
        ck_assert_int_eq(put_s(s, "g", "again"), 0);
        ck_assert_uint_eq(gen_of(s, "g", 1), i);
    }
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd[0], 1), BS, &bi); /* the blocks alternate */
    if (bi.kind != EKV_BLOCK_DESCRIPTOR)
        ekv_block_decode(sim_block(sd[0], 2), BS, &bi);
    ck_assert_uint_eq(bi.generation, 20);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ck_assert_uint_eq(gen_of(s, "g", 1), 20);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(put_after_delete_starts_again_at_generation_1)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(put_s(s, "g", "v"), 0);
    ck_assert_uint_eq(gen_of(s, "g", 1), 5);
    ck_assert_int_eq(ekv_delete(s, "g", 1), 0);
    ck_assert_int_eq(put_s(s, "g", "w"), 0);
    ck_assert_uint_eq(gen_of(s, "g", 1), 1);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- where records go --------------------------------------------------- */

START_TEST(put_takes_the_lowest_free_blocks)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "a", "1"), 0);
    ck_assert_int_eq(put_s(s, "b", "2"), 0);
    ck_assert_int_eq(put_s(s, "c", "3"), 0);
    ck_assert_str_eq(key_at(sd[0], 1), "a");
    ck_assert_str_eq(key_at(sd[0], 2), "b");
    ck_assert_str_eq(key_at(sd[0], 3), "c");
    ck_assert_int_eq(ekv_delete(s, "b", 1), 0);
    ck_assert_int_eq(put_s(s, "d", "4"), 0);
    ck_assert_str_eq(key_at(sd[0], 2), "d");
    /* Update: new copy in the lowest free block (4), then block 1 freed. */
    ck_assert_int_eq(put_s(s, "a", "11"), 0);
    ck_assert_str_eq(key_at(sd[0], 4), "a");
    ck_assert_str_eq(key_at(sd[0], 1), "");
    /* A multi-block record: descriptor first, chunks in the next ones. */
    uint8_t v[700];
    fill_pattern(v, sizeof(v), 7);
    ck_assert_int_eq(ekv_put(s, "m", 1, v, sizeof(v)), 0);
    ck_assert_str_eq(key_at(sd[0], 1), "m");
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd[0], 1), BS, &bi);
    ck_assert_uint_eq(bi.chunk_count, 4);
    ck_assert_uint_eq(bi.next_chunk, 5);
    for (uint32_t b = 5, idx = 1; idx < 4; b++, idx++) {
        ekv_block_decode(sim_block(sd[0], b), BS, &bi);
        ck_assert_int_eq(bi.kind, EKV_BLOCK_CHUNK);
        ck_assert_uint_eq(bi.owner, 1);
        ck_assert_uint_eq(bi.chunk_index, idx);
        ck_assert_uint_eq(bi.next_chunk, idx < 3 ? b + 1 : EKV_BLOCK_NONE);
    }
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* A fixed sequence of puts, updates and deletes of assorted sizes. */
static void scripted_ops(ekv_store *s)
{
    static uint8_t v[2000];
    char k[16];
    uint64_t seed = 42;
    for (int i = 0; i < 300; i++) {
        int key = (int)(test_rand(&seed) % 24);
        snprintf(k, sizeof(k), "key%d", key);
        size_t len = (size_t)(test_rand(&seed) % 900);
        fill_pattern(v, len, (uint32_t)i);
        if (test_rand(&seed) % 4 == 0) {
            int rc = ekv_delete(s, k, strlen(k));
            ck_assert(rc == 0 || rc == EKV_ENOENT);
        } else {
            int rc = ekv_put(s, k, strlen(k), v, len);
            ck_assert(rc == 0 || rc == EKV_ENOSPC);
        }
    }
}

START_TEST(same_operations_give_byte_identical_images)
{
    const uint8_t erase = _i ? 0xff : 0x00;
    simdev *a, *b;
    ekv_store *sa = open_fresh(&a, 64, erase, erase, 0);
    ekv_store *sb = open_fresh(&b, 64, erase, erase, 0);
    scripted_ops(sa);
    scripted_ops(sb);
    ck_assert_mem_eq(sim_image(a), sim_image(b), BS * 64);
    ekv_close(sa);
    ekv_close(sb);
    sim_free(a);
    sim_free(b);
}
END_TEST

START_TEST(erase_byte_changes_only_the_fill_of_free_blocks)
{
    simdev *z, *f;
    ekv_store *sz = open_fresh(&z, 64, 0x00, 0x00, 0);
    ekv_store *sf = open_fresh(&f, 64, 0xff, 0xff, 0);
    scripted_ops(sz);
    scripted_ops(sf);
    for (uint32_t b = 0; b < 64; b++) {
        if (memcmp(sim_block(z, b), sim_block(f, b), BS) == 0)
            continue;
        ck_assert_msg(block_is_filled(z, b, 0x00) &&
                          block_is_filled(f, b, 0xff),
                      "block %u differs beyond the erase fill", b);
    }
    ekv_close(sz);
    ekv_close(sf);
    sim_free(z);
    sim_free(f);
}
END_TEST

START_TEST(retired_blocks_are_filled_with_the_erase_byte)
{
    simdev *sd;
    ekv_store *s = open_fresh(&sd, 16, 0xff, 0xff, 0);
    uint8_t v[600];
    fill_pattern(v, sizeof(v), 8);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0); /* blocks 1-3 */
    ck_assert_int_eq(ekv_put(s, "k", 1, v, 10), 0);        /* block 4 */
    for (uint32_t b = 1; b <= 3; b++)
        ck_assert(block_is_filled(sd, b, 0xff));
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert(block_is_filled(sd, 4, 0xff));
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(open_rejects_an_erase_byte_other_than_00_or_ff)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ekv_close(s);
    ekv_device *d = &sd[0]->dev;
    ekv_options o = {.erase_byte = 0x55};
    s = (ekv_store *)1;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_EINVAL);
    ck_assert_ptr_null(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- values of every size ------------------------------------------------ */

START_TEST(values_around_block_boundaries_round_trip)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 300, 0);
    /* Key "v": first payload 219 bytes, chunks 232. */
    const size_t f = 219, c = 232;
    const size_t sizes[] = {0, 1, f - 1, f, f + 1, f + c - 1, f + c,
                            f + c + 1, f + 2 * c, f + 2 * c + 1,
                            f + 10 * c - 1, f + 10 * c, f + 10 * c + 1,
                            f + 100 * c, 12345, f + 126 * c};
    static uint8_t v[219 + 126 * 232];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill_pattern(v, sizes[i], (uint32_t)i + 1);
        ck_assert_msg(ekv_put(s, "v", 1, v, sizes[i]) == 0, "size %zu",
                      sizes[i]);
        assert_value(s, "v", 1, v, sizes[i]);
        ekv_stats st;
        ekv_stats_get(s, &st);
        ck_assert_uint_eq(st.used_blocks, record_blocks(BS, 1, sizes[i]));
    }
    /* The last one survives a reopen. */
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    assert_value(s, "v", 1, v, f + 126 * c);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(every_value_length_up_to_three_blocks_round_trips)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, 64, 32, 0);
    /* 64-byte blocks, key "ab": first payload 26, chunks 40. */
    uint8_t v[200];
    for (size_t len = 0; len <= 26 + 2 * 40 + 1; len++) {
        fill_pattern(v, len, (uint32_t)len);
        ck_assert_int_eq(ekv_put(s, "ab", 2, v, len), 0);
        assert_value(s, "ab", 2, v, len);
    }
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(data_persists_across_reopen)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 64, 0);
    uint8_t v[1500];
    fill_pattern(v, sizeof(v), 9);
    char k[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "p%d", i);
        ck_assert_int_eq(ekv_put(s, k, strlen(k), v, (size_t)i * 60), 0);
    }
    ck_assert_int_eq(ekv_delete(s, "p3", 2), 0);
    ck_assert_int_eq(ekv_put(s, "p4", 2, "changed", 7), 0);
    ekv_close(s);
    s = NULL;
    /* The durable image alone: what a power cut right now would keep. */
    sim_powercycle(sd[0]);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "p%d", i);
        if (i == 3)
            ck_assert_ptr_null(get_s(s, k));
        else if (i == 4)
            ck_assert_str_eq(get_s(s, k), "changed");
        else
            assert_value(s, k, strlen(k), v, (size_t)i * 60);
    }
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 19);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(user_flags_are_stored_verbatim)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(ekv_put_flags(s, "f", 1, "v", 1, 0xDEADBEEFu), 0);
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd[0], 1), BS, &bi);
    ck_assert_uint_eq(bi.user_flags, 0xDEADBEEFu);
    ck_assert_uint_eq(bi.flags, 0);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ekv_block_decode(sim_block(sd[0], 1), BS, &bi);
    ck_assert_uint_eq(bi.user_flags, 0xDEADBEEFu);
    /* ekv_put writes 0. */
    ck_assert_int_eq(put_s(s, "f", "w"), 0);
    ekv_block_decode(sim_block(sd[0], 2), BS, &bi);
    ck_assert_uint_eq(bi.user_flags, 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- read-only stores --------------------------------------------------- */

START_TEST(read_only_store_never_writes_and_refuses_changes)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    s = NULL;
    uint8_t *before = sim_snapshot(sd[0]);
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(reopen(&s, sd, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ck_assert_int_eq(put_s(s, "k", "w"), EKV_EROFS);
    ck_assert_int_eq(put_s(s, "new", "w"), EKV_EROFS);
    ck_assert_int_eq(ekv_put_flags(s, "k", 1, "w", 1, 1), EKV_EROFS);
    ck_assert_int_eq(ekv_delete(s, "k", 1), EKV_EROFS);
    ck_assert_int_eq(ekv_delete(s, "absent", 6), EKV_EROFS);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_EROFS);
    ck_assert_int_eq(ekv_recover(s), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.read_only, 1);
    ekv_close(s);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_uint_eq(sd[0]->flushes, 0);
    ck_assert_mem_eq(sim_image(sd[0]), before, BS * 16);
    free(before);
    sim_free(sd[0]);
}
END_TEST

START_TEST(read_only_open_works_on_a_device_without_write)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    s = NULL;
    sd[0]->readonly = 1;
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), EKV_EROFS);
    ck_assert_int_eq(reopen(&s, sd, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- iterate, stat_key, stats ------------------------------------------- */

typedef struct seen {
    int count;
    int mask; /* bit i: "it<i>" seen */
    int stop_after;
} seen;

static int note_key(void *ctx, const ekv_key_info *ki)
{
    seen *x = ctx;
    x->count++;
    int i = -1;
    if (ki->key_len >= 3 && memcmp(ki->key, "it", 2) == 0)
        i = ki->key[2] - '0';
    ck_assert(i >= 0 && i < 10);
    ck_assert_msg(!(x->mask & (1 << i)), "key seen twice");
    x->mask |= 1 << i;
    ck_assert_uint_eq(ki->value_size, (uint32_t)i * 10);
    ck_assert_uint_eq(ki->replicas, 1);
    ck_assert_uint_eq(ki->stale, 0);
    return x->stop_after && x->count == x->stop_after ? 1234 : 0;
}

START_TEST(iterate_visits_every_key_once)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 32, 0);
    uint8_t v[100] = {0};
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "it%d", i);
        ck_assert_int_eq(ekv_put(s, k, 3, v, (size_t)i * 10), 0);
    }
    seen x = {0};
    ck_assert_int_eq(ekv_iterate(s, note_key, &x), 0);
    ck_assert_int_eq(x.count, 10);
    ck_assert_int_eq(x.mask, 0x3ff);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(iterate_stops_at_and_returns_a_nonzero_result)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 32, 0);
    uint8_t v[100] = {0};
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "it%d", i);
        ck_assert_int_eq(ekv_put(s, k, 3, v, (size_t)i * 10), 0);
    }
    seen x = {.stop_after = 4};
    ck_assert_int_eq(ekv_iterate(s, note_key, &x), 1234);
    ck_assert_int_eq(x.count, 4);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(iterate_of_empty_store_calls_nothing)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 32, 0);
    seen x = {0};
    ck_assert_int_eq(ekv_iterate(s, note_key, &x), 0);
    ck_assert_int_eq(x.count, 0);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

#ifndef EKV_NO_INDEX
START_TEST(stat_key_reports_the_newest_record)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 32, 0);
    uint8_t v[777] = {0};
    ck_assert_int_eq(ekv_put(s, "sk", 2, v, 100), 0);
    ck_assert_int_eq(ekv_put(s, "sk", 2, v, 777), 0);
    sim_reset_faults(sd[0]);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "sk", 2, &ki), 0);
    ck_assert_uint_eq(ki.key_len, 2);
    ck_assert_mem_eq(ki.key, "sk", 2);
    ck_assert_uint_eq(ki.value_size, 777);
    ck_assert_uint_eq(ki.generation, 2);
    ck_assert_uint_eq(ki.replicas, 1);
    ck_assert_uint_eq(ki.stale, 0);
    ck_assert_uint_eq(sd[0]->reads, 0); /* the index alone */
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST
#endif

#ifndef EKV_NO_INDEX
START_TEST(stats_count_blocks_records_and_geometry)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 32, 0);
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.block_size, BS);
    ck_assert_uint_eq(st.block_count, 32);
    ck_assert_uint_eq(st.replicas, 1);
    ck_assert_uint_eq(st.active_replicas, 1);
    ck_assert_uint_eq(st.free_blocks, 31);
    ck_assert_uint_eq(st.used_blocks, 0);
    ck_assert_uint_eq(st.records, 0);
    ck_assert_uint_eq(st.max_key_size, 220);
    ck_assert_uint_eq(st.read_only, 0);
    ck_assert_uint_eq(st.io_errors, 0);
    uint8_t v[500] = {0};
    ck_assert_int_eq(ekv_put(s, "a", 1, v, 500), 0); /* 3 blocks */
    ck_assert_int_eq(ekv_put(s, "b", 1, v, 5), 0);
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.free_blocks, 27);
    ck_assert_uint_eq(st.used_blocks, 4);
    ck_assert_uint_eq(st.records, 2);
    ck_assert_uint_gt(st.index_bytes, 0);
    ck_assert_uint_ge(st.memory_bytes, st.index_bytes);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST
#endif

#ifndef EKV_NO_INDEX
START_TEST(index_memory_per_key_is_at_most_48_bytes_plus_key_length)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, 64, 4096, 0);
    char k[16];
    size_t keybytes = 0;
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(k, sizeof(k), "mem%05d", i);
        ck_assert_int_eq(ekv_put(s, k, (size_t)n, "v", 1), 0);
        keybytes += (size_t)n;
    }
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 3000);
    ck_assert_uint_le(st.index_bytes, 48u * 3000u + keybytes);
    /* Rebuilt by recovery: the same bound. */
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ekv_stats_get(s, &st);
    ck_assert_uint_le(st.index_bytes, 48u * 3000u + keybytes);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST
#endif

START_TEST(recover_rebuilds_the_same_view)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 64, 0);
    scripted_ops(s);
    ekv_stats a, b;
    ekv_stats_get(s, &a);
    ck_assert_int_eq(ekv_recover(s), 0);
    ekv_stats_get(s, &b);
    ck_assert_uint_eq(a.records, b.records);
    ck_assert_uint_eq(a.free_blocks, b.free_blocks);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(invalid_arguments_are_einval)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 16, 0);
    char buf[4];
    size_t len;
    ekv_key_info ki;
    ekv_stats st;
    ekv_replica_report rr;
    ck_assert_int_eq(ekv_put(NULL, "k", 1, "v", 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_put(s, NULL, 1, "v", 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_put(s, "k", 1, NULL, 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_get(NULL, "k", 1, buf, 4, &len), EKV_EINVAL);
    ck_assert_int_eq(ekv_get(s, NULL, 1, buf, 4, &len), EKV_EINVAL);
    ck_assert_int_eq(ekv_get(s, "k", 1, NULL, 4, &len), EKV_EINVAL);
    ck_assert_int_eq(ekv_delete(NULL, "k", 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_delete(s, NULL, 1), EKV_EINVAL);
    ck_assert_int_eq(ekv_stat_key(s, "k", 1, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_stat_key(NULL, "k", 1, &ki), EKV_EINVAL);
    ck_assert_int_eq(ekv_iterate(s, NULL, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_stats_get(NULL, &st), EKV_EINVAL);
    ck_assert_int_eq(ekv_stats_get(s, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_replica_report_get(s, 1, &rr), EKV_EINVAL);
    ck_assert_int_eq(ekv_recover(NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_repair(NULL, NULL), EKV_EINVAL);
    ekv_device *d = &sd[0]->dev;
    ck_assert_int_eq(ekv_open(NULL, &d, 1, NULL), EKV_EINVAL);
    ekv_store *t = NULL;
    ck_assert_int_eq(ekv_open(&t, &d, 0, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_open(&t, NULL, 1, NULL), EKV_EINVAL);
    ekv_device *none = NULL;
    ck_assert_int_eq(ekv_open(&t, &none, 1, NULL), EKV_EINVAL);
    ekv_close(NULL); /* accepted */
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- a random workload against a model ---------------------------------- */

#define MKEYS 30

START_TEST(random_operations_match_a_model_across_reopens)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, 128, 400, 0);
    static uint8_t model[MKEYS][1600];
    size_t mlen[MKEYS];
    bool have[MKEYS] = {false};
    uint32_t mgen[MKEYS] = {0};
    uint64_t seed = 7 + (uint64_t)_i;
    static uint8_t v[1600];
    char k[16];
    for (int step = 0; step < 3000; step++) {
        int i = (int)(test_rand(&seed) % MKEYS);
        int n = snprintf(k, sizeof(k), "r%d", i);
        unsigned op = (unsigned)(test_rand(&seed) % 10);
        if (op < 6) {
            size_t len = (size_t)(test_rand(&seed) % 1600);
            fill_pattern(v, len, (uint32_t)step);
            int rc = ekv_put(s, k, (size_t)n, v, len);
            if (rc == 0) {
                memcpy(model[i], v, len);
                mlen[i] = len;
                mgen[i] = have[i] ? mgen[i] + 1 : 1;
                have[i] = true;
            } else {
                ck_assert_int_eq(rc, EKV_ENOSPC);
            }
        } else if (op < 9) {
            int rc = ekv_delete(s, k, (size_t)n);
            ck_assert_int_eq(rc, have[i] ? 0 : EKV_ENOENT);
            have[i] = false;
        } else {
            ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
        }
        if (step % 100 == 0 || op == 9) {
            uint32_t records = 0;
            for (int j = 0; j < MKEYS; j++) {
                int m = snprintf(k, sizeof(k), "r%d", j);
                if (!have[j]) {
                    ck_assert_ptr_null(get_s(s, k));
                    continue;
                }
                records++;
                assert_value(s, k, (size_t)m, model[j], mlen[j]);
                ck_assert_uint_eq(gen_of(s, k, (size_t)m), mgen[j]);
            }
            ekv_stats st;
            ekv_stats_get(s, &st);
            ck_assert_uint_eq(st.records, records);
        }
    }
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

/* ---- the allocation hook ------------------------------------------------- */

START_TEST(all_memory_comes_from_the_allocator_and_goes_back)
{
    live_counter c = {0, -1};
    ekv_allocator al = {lc_alloc, lc_free, &c};
    simdev *sd = sim_new(BS, 64, 0);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_options o = {.allocator = &al};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    scripted_ops(s);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.memory_bytes, c.live);
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    sim_free(sd);
}
END_TEST

START_TEST(allocation_failure_anywhere_in_open_is_enomem_without_leaks)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, BS, 64, 0);
    scripted_ops(s);
    ekv_close(s);
    ekv_device *d = &sd[0]->dev;
    for (long f = 0;; f++) {
        live_counter c = {0, f};
        ekv_allocator al = {lc_alloc, lc_free, &c};
        ekv_options o = {.allocator = &al};
        s = NULL;
        int rc = ekv_open(&s, &d, 1, &o);
        if (rc == 0) {
            ekv_close(s);
            ck_assert_uint_eq(c.live, 0);
            ck_assert_int_gt(f, 0);
            break;
        }
        ck_assert_int_eq(rc, EKV_ENOMEM);
        ck_assert_ptr_null(s);
        ck_assert_uint_eq(c.live, 0);
    }
    sim_free(sd[0]);
}
END_TEST

#ifndef EKV_NO_INDEX
START_TEST(allocation_failure_in_put_is_enomem_and_changes_nothing)
{
    live_counter c = {0, -1};
    ekv_allocator al = {lc_alloc, lc_free, &c};
    simdev *sd = sim_new(BS, 1024, 0);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_options o = {.allocator = &al};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    char k[16];
    uint8_t v[3000];
    fill_pattern(v, sizeof(v), 1);
    int failures = 0;
    for (int i = 0; i < 40; i++) {
        int n = snprintf(k, sizeof(k), "a%d", i);
        /* Every put: first with no memory at all, then normally. */
        c.fail_after = 0;
        sim_reset_faults(sd);
        int rc = ekv_put(s, k, (size_t)n, v, (size_t)i * 70);
        if (rc) {
            ck_assert_int_eq(rc, EKV_ENOMEM);
            ck_assert_uint_eq(sd->writes, 0);
            ck_assert_int_eq(ekv_stat_key(s, k, (size_t)n, &(ekv_key_info){0}),
                             EKV_ENOENT);
            failures++;
        }
        c.fail_after = -1;
        ck_assert_int_eq(ekv_put(s, k, (size_t)n, v, (size_t)i * 70), 0);
    }
    ck_assert_int_gt(failures, 0);
    for (int i = 0; i < 40; i++) {
        int n = snprintf(k, sizeof(k), "a%d", i);
        assert_value(s, k, (size_t)n, v, (size_t)i * 70);
    }
    ekv_close(s);
    ck_assert_uint_eq(c.live, 0);
    sim_free(sd);
}
END_TEST
#endif

static Suite *make(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, put_then_get_returns_the_value);
    tcase_add_test(tc, get_of_absent_key_is_enoent);
    tcase_add_test(tc, put_of_present_key_replaces_its_value);
    tcase_add_test(tc, delete_removes_the_key_and_frees_its_blocks);
    tcase_add_test(tc, delete_of_absent_key_is_enoent_and_writes_nothing);
    tcase_add_test(tc, empty_key_holds_a_value);
    tcase_add_test(tc, empty_key_may_be_given_as_a_null_pointer);
    tcase_add_test(tc, empty_value_round_trips);
    tcase_add_test(tc, keys_are_compared_byte_for_byte);
    tcase_add_test(tc, invalid_arguments_are_einval);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, longest_key_is_accepted);
    tcase_add_test(tc, key_one_byte_too_long_is_enametoolong_and_writes_nothing);
    tcase_add_test(tc, value_larger_than_the_store_is_efbig_and_writes_nothing);
    tcase_add_test(tc, enospc_keeps_the_old_value_and_writes_nothing);
    tcase_add_test(tc, erange_reports_the_value_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("generations");
    tcase_add_test(tc, new_key_starts_at_generation_1_and_updates_increment);
    tcase_add_test(tc, put_after_delete_starts_again_at_generation_1);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_test(tc, put_takes_the_lowest_free_blocks);
    tcase_add_loop_test(tc, same_operations_give_byte_identical_images, 0, 2);
    tcase_add_test(tc, erase_byte_changes_only_the_fill_of_free_blocks);
    tcase_add_test(tc, retired_blocks_are_filled_with_the_erase_byte);
    tcase_add_test(tc, open_rejects_an_erase_byte_other_than_00_or_ff);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, values_around_block_boundaries_round_trip);
    tcase_add_test(tc, every_value_length_up_to_three_blocks_round_trips);
    tcase_add_test(tc, data_persists_across_reopen);
    tcase_add_test(tc, user_flags_are_stored_verbatim);
    tcase_add_loop_test(tc, random_operations_match_a_model_across_reopens, 0,
                        3);
    suite_add_tcase(s, tc);

    tc = tcase_create("read_only");
    tcase_add_test(tc, read_only_store_never_writes_and_refuses_changes);
    tcase_add_test(tc, read_only_open_works_on_a_device_without_write);
    suite_add_tcase(s, tc);

    tc = tcase_create("inspection");
    tcase_add_test(tc, iterate_visits_every_key_once);
    tcase_add_test(tc, iterate_stops_at_and_returns_a_nonzero_result);
    tcase_add_test(tc, iterate_of_empty_store_calls_nothing);
#ifndef EKV_NO_INDEX /* asserts what the index provides */
    tcase_add_test(tc, stat_key_reports_the_newest_record);
#endif
#ifndef EKV_NO_INDEX /* asserts what the index provides */
    tcase_add_test(tc, stats_count_blocks_records_and_geometry);
#endif
#ifndef EKV_NO_INDEX /* asserts what the index provides */
    tcase_add_test(tc, index_memory_per_key_is_at_most_48_bytes_plus_key_length);
#endif
    tcase_add_test(tc, recover_rebuilds_the_same_view);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_test(tc, all_memory_comes_from_the_allocator_and_goes_back);
    tcase_add_test(tc, allocation_failure_anywhere_in_open_is_enomem_without_leaks);
#ifndef EKV_NO_INDEX /* asserts what the index provides */
    tcase_add_test(tc, allocation_failure_in_put_is_enomem_and_changes_nothing);
#endif
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
