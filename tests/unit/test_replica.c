/*
 * Replicas: every write goes to every replica, reads take the newest
 * complete copy and fall back from a corrupt one, open refuses (or, when
 * degraded, drops) a replica with a bad header or other geometry, and
 * ekv_repair brings every replica to the newest record of every key.
 *
 * Divergence is made the way it happens in the field: a replica is opened
 * on its own (as after a put that stopped half-way through the replicas)
 * and changed there.
 */
#include <stdio.h>

#include "helpers.h"

#define BS 256u
#define BC 64u

/* Open replicas sd[0..n-1]; returns the open result. */
static int open_n(ekv_store **s, simdev **sd, unsigned n, uint32_t flags)
{
    ekv_device *d[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++)
        d[i] = &sd[i]->dev;
    ekv_options o = {.flags = flags};
    *s = NULL;
    return ekv_open(s, d, n, &o);
}

/* Open replica sd alone, run fn on it, close. */
static ekv_store *open_alone(simdev *sd)
{
    ekv_device *d = &sd->dev;
    ekv_store *s = NULL;
    /* Degraded: after a repair the set names both replicas. */
    ekv_options o = {.flags = EKV_OPEN_DEGRADED};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    return s;
}

static void make_replicas(simdev **sd, unsigned n, uint32_t bc)
{
    ekv_device *d[EKV_MAX_REPLICAS] = {0};
    for (unsigned i = 0; i < n; i++) {
        sd[i] = sim_new(BS, bc, 0);
        d[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(d, n, NULL), 0);
    for (unsigned i = 0; i < n; i++)
        sim_set_mask(sd[i], 0); /* an upstream-style set: see helpers.h */
}

static void free_replicas(simdev **sd, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sim_free(sd[i]);
}

/* Data blocks (1..bc-1) of a and b are byte-identical. */
static void assert_data_equal(simdev *a, simdev *b)
{
    ck_assert_uint_eq(a->bc, b->bc);
    ck_assert_mem_eq(sim_block(a, 1), sim_block(b, 1),
                     (size_t)BS * (a->bc - 1));
}

static ekv_key_info info_of(ekv_store *s, const char *k)
{
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, k, strlen(k), &ki), 0);
    return ki;
}

/* The descriptor block of key k on replica sd, found by scanning. */
static uint32_t desc_block(simdev *sd, const char *k)
{
    for (uint32_t b = 1; b < sd->bc; b++) {
        ekv_block_info bi;
        ekv_block_decode(sim_block(sd, b), BS, &bi);
        if (bi.kind == EKV_BLOCK_DESCRIPTOR && bi.key_size == strlen(k) &&
            memcmp(bi.key, k, bi.key_size) == 0)
            return b;
    }
    return EKV_BLOCK_NONE;
}

static void scripted_ops(ekv_store *s, uint64_t seed, int n)
{
    static uint8_t v[1200];
    char k[16];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%d", (int)(test_rand(&seed) % 12));
        size_t len = (size_t)(test_rand(&seed) % sizeof(v));
        fill_pattern(v, len, (uint32_t)(seed >> 7));
        int rc = test_rand(&seed) % 5 == 0
                     ? ekv_delete(s, k, strlen(k))
                     : ekv_put(s, k, strlen(k), v, len);
        ck_assert(rc == 0 || rc == EKV_ENOENT || rc == EKV_ENOSPC);
    }
}

/* ---- writing to every replica ------------------------------------------- */

START_TEST(every_replica_gets_an_identical_image)
{
    const unsigned n = 2 + (unsigned)_i; /* two, then three */
    simdev *sd[3];
    make_replicas(sd, n, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, n, 0), 0);
    scripted_ops(s, 11, 200);
    for (unsigned i = 1; i < n; i++)
        assert_data_equal(sd[0], sd[i]);
    /* Headers differ in replica_id only. */
    for (unsigned i = 0; i < n; i++) {
        uint8_t h[BS];
        header_encode(h, BS, BC, i, 0, 0);
        ck_assert_mem_eq(sim_block(sd[i], 0), h, BS);
    }
    ekv_key_info ki;
    if (ekv_stat_key(s, "key1", 4, &ki) == 0) {
        ck_assert_uint_eq(ki.replicas, (1u << n) - 1);
        ck_assert_uint_eq(ki.stale, 0);
    }
    ekv_close(s);
    free_replicas(sd, n);
}
END_TEST

START_TEST(delete_removes_every_copy_including_stale_ones)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "old"), 0);
    ekv_close(s);
    s = open_alone(sd[1]);
    ck_assert_int_eq(put_s(s, "k", "new"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_ptr_null(get_s(s, "k"));
    ck_assert_int_eq(reopen(&s, sd, 2, 0), 0);
    ck_assert_ptr_null(get_s(s, "k"));
    ck_assert_uint_eq(desc_block(sd[0], "k"), EKV_BLOCK_NONE);
    ck_assert_uint_eq(desc_block(sd[1], "k"), EKV_BLOCK_NONE);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

/* ---- reading across replicas --------------------------------------------- */

START_TEST(get_falls_back_when_one_copy_is_corrupt)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    uint8_t v[700];
    fill_pattern(v, sizeof(v), 1);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0); /* blocks 1-4 */
    /* Damage behind the store's back: a byte of the descriptor's value. */
    sim_block(sd[0], 1)[100] ^= 0xff;
    assert_value(s, "k", 1, v, sizeof(v));
    /* Now a chunk of the other replica, the first repaired. */
    sim_block(sd[0], 1)[100] ^= 0xff;
    sim_block(sd[1], 3)[50] ^= 0x01;
    assert_value(s, "k", 1, v, sizeof(v));
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(get_falls_back_when_reads_of_one_copy_flip_a_bit)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    uint8_t v[500];
    fill_pattern(v, sizeof(v), 2);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0);
    for (uint32_t bit = 0; bit < 8 * BS; bit += 37) {
        sd[0]->flip_block = 2;
        sd[0]->flip_bit = bit;
        assert_value(s, "k", 1, v, sizeof(v));
    }
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(get_with_every_copy_corrupt_is_ecorrupt)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "value"), 0);
    sim_block(sd[0], 1)[40] ^= 1;
    sim_block(sd[1], 1)[BS - 1] ^= 1;
    char buf[16];
    size_t len;
    ck_assert_int_eq(ekv_get(s, "k", 1, buf, sizeof(buf), &len),
                     EKV_ECORRUPT);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(copy_corrupt_at_open_leaves_the_other_replica_serving)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "value"), 0);
    ekv_close(s);
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd[0], 1), BS);
    blk[33] ^= 4;
    sim_poke(sd[0], 1, blk);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_str_eq(get_s(s, "k"), "value");
    ekv_key_info ki = info_of(s, "k");
    ck_assert_uint_eq(ki.replicas, 2);
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.garbage_blocks, 1);
    ck_assert_uint_eq(r.erased_blocks, 1);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(newest_generation_across_replicas_wins)
{
    simdev *sd[3];
    make_replicas(sd, 3, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "gen1"), 0);
    ekv_close(s);
    s = open_alone(sd[2]);
    ck_assert_int_eq(put_s(s, "k", "gen2"), 0);
    ck_assert_int_eq(put_s(s, "k", "gen3"), 0);
    ekv_close(s);
    s = open_alone(sd[1]);
    ck_assert_int_eq(put_s(s, "k", "gen2 on 1"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    ck_assert_str_eq(get_s(s, "k"), "gen3");
    ekv_key_info ki = info_of(s, "k");
    ck_assert_uint_eq(ki.generation, 3);
    ck_assert_uint_eq(ki.replicas, 4);
    ck_assert_uint_eq(ki.stale, 3);
    ck_assert_uint_eq(ki.value_size, 4);
    ekv_close(s);
    free_replicas(sd, 3);
}
END_TEST

START_TEST(put_after_divergence_continues_from_the_highest_generation)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "a"), 0);
    ekv_close(s);
    s = open_alone(sd[1]);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(put_s(s, "k", "b"), 0); /* generation 5 there */
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "c"), 0);
    ekv_key_info ki = info_of(s, "k");
    ck_assert_uint_eq(ki.generation, 6);
    ck_assert_uint_eq(ki.replicas, 3);
    ck_assert_uint_eq(ki.stale, 0);
    ekv_close(s);
    for (int i = 0; i < 2; i++) {
        s = open_alone(sd[i]);
        ck_assert_str_eq(get_s(s, "k"), "c");
        ck_assert_uint_eq(info_of(s, "k").generation, 6);
        ekv_close(s);
    }
    free_replicas(sd, 2);
}
END_TEST

START_TEST(equal_generations_on_two_replicas_first_replica_wins)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s = open_alone(sd[1]);
    ck_assert_int_eq(put_s(s, "k", "from replica 1"), 0);
    ekv_close(s);
    s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "from replica 0"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_str_eq(get_s(s, "k"), "from replica 0");
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(key_held_by_one_replica_only_is_served)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s = open_alone(sd[1]);
    ck_assert_int_eq(put_s(s, "only1", "here"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_str_eq(get_s(s, "only1"), "here");
    ekv_key_info ki = info_of(s, "only1");
    ck_assert_uint_eq(ki.replicas, 2);
    ck_assert_uint_eq(ki.stale, 0);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

/* ---- headers and geometry ----------------------------------------------- */

static void destroy_header(simdev *sd)
{
    uint8_t junk[BS];
    memset(junk, 0x5c, sizeof(junk));
    sim_poke(sd, 0, junk);
}

START_TEST(replica_with_destroyed_header_fails_open_with_ebadhdr)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    destroy_header(sd[1]);
    sim_reset_faults(sd[0]);
    sim_reset_faults(sd[1]);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), EKV_EBADHDR);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(sd[0]->writes + sd[1]->writes, 0);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(degraded_open_drops_the_bad_replica_and_reports_it)
{
    simdev *sd[3];
    make_replicas(sd, 3, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    destroy_header(sd[1]);
    uint8_t *before = sim_snapshot(sd[1]);
    ck_assert_int_eq(open_n(&s, sd, 3, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report r;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &r), 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(ekv_replica_report_get(s, 1, &r), 0);
    ck_assert_int_eq(r.status, EKV_EBADHDR);
    ck_assert_int_eq(ekv_replica_report_get(s, 2, &r), 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.replica_id, 2);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.replicas, 3);
    ck_assert_uint_eq(st.active_replicas, 2);
    ck_assert_str_eq(get_s(s, "k"), "v");
    /* The store works on the others and leaves the dropped one alone. */
    ck_assert_int_eq(put_s(s, "k", "w"), 0);
    ck_assert_int_eq(put_s(s, "n", "x"), 0);
    ck_assert_int_eq(ekv_delete(s, "n", 1), 0);
    ck_assert_uint_eq(info_of(s, "k").replicas, 5);
    ck_assert_mem_eq(sim_image(sd[1]), before, BS * BC);
    free(before);
    ekv_close(s);
    free_replicas(sd, 3);
}
END_TEST

START_TEST(degraded_open_with_no_good_replica_fails)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    destroy_header(sd[0]);
    destroy_header(sd[1]);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), EKV_EBADHDR);
    ck_assert_ptr_null(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(replicas_of_different_block_count_are_edom)
{
    simdev *sd[2];
    make_replicas(sd, 1, BC);
    make_replicas(sd + 1, 1, BC + 8);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), EKV_EDOM);
    ck_assert_ptr_null(s);
    /* Whichever comes first sets the geometry. */
    simdev *swapped[2] = {sd[1], sd[0]};
    ck_assert_int_eq(open_n(&s, swapped, 2, 0), EKV_EDOM);
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_EDOM);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(replicas_of_different_block_size_are_edom)
{
    simdev *a = sim_new(BS, BC, 0), *b = sim_new(512, BC / 2, 0);
    ekv_device *da = &a->dev, *db = &b->dev;
    ck_assert_int_eq(ekv_format(&da, 1, NULL), 0);
    ck_assert_int_eq(ekv_format(&db, 1, NULL), 0);
    simdev *sd[2] = {a, b};
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), EKV_EDOM);
    sim_free(a);
    sim_free(b);
}
END_TEST

START_TEST(replica_of_major_version_2_is_eversion)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    uint8_t h[BS];
    memcpy(h, sim_block(sd[1], 0), BS);
    put_le16(h + HDR_VMAJOR, 2);
    block_seal(h, BS);
    sim_poke(sd[1], 0, h);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), EKV_EVERSION);
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_EVERSION);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(replica_report_describes_what_the_scan_found)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_device *d[2] = {&sd[0]->dev, &sd[1]->dev};
    ekv_format_options fo = {.replica_id_base = 10, .format_seq = 4};
    ck_assert_int_eq(ekv_format(d, 2, &fo), 0);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    uint8_t v[500] = {0};
    ck_assert_int_eq(ekv_put(s, "a", 1, v, sizeof(v)), 0); /* 3 blocks */
    ck_assert_int_eq(put_s(s, "b", "1"), 0);
    ck_assert_int_eq(reopen(&s, sd, 2, 0), 0);
    for (unsigned i = 0; i < 2; i++) {
        ekv_replica_report r;
        ck_assert_int_eq(ekv_replica_report_get(s, i, &r), 0);
        ck_assert_int_eq(r.status, 0);
        ck_assert_uint_eq(r.replica_id, 10 + i);
        ck_assert_uint_eq(r.format_seq, 4);
        ck_assert_uint_eq(r.version_major, 1);
        ck_assert_uint_eq(r.version_minor, 0);
        ck_assert_uint_eq(r.block_size, BS);
        ck_assert_uint_eq(r.block_count, BC);
        ck_assert_uint_eq(r.descriptor_blocks, 2);
        ck_assert_uint_eq(r.chunk_blocks, 2);
        ck_assert_uint_eq(r.complete_records, 2);
        ck_assert_uint_eq(r.incomplete_records, 0);
        ck_assert_uint_eq(r.keys, 2);
        ck_assert_uint_eq(r.free_blocks, BC - 1 - 4);
        ck_assert_uint_eq(r.garbage_blocks, 0);
        ck_assert_uint_eq(r.erased_blocks, 0);
    }
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

/* ---- repair ------------------------------------------------------------- */

START_TEST(repair_revives_a_replica_whose_header_was_destroyed)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    uint8_t v[1000];
    fill_pattern(v, sizeof(v), 9);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0);
    ekv_close(s);
    destroy_header(sd[1]);
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    uint32_t copied = 99;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    /* Its records are not trusted (they missed every change while it was
     * dropped): it is emptied and gets every key again. */
    ck_assert_uint_eq(copied, 1);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.replica_id, 1);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.active_replicas, 2);
    ck_assert_uint_eq(info_of(s, "k").replicas, 3);
    ekv_close(s);
    uint8_t h[BS];
    /* Rebuilt: both replicas move to epoch 1 with both as participants. */
    header_encode(h, BS, BC, 1, 1, 3);
    ck_assert_mem_eq(sim_block(sd[1], 0), h, BS);
    assert_data_equal(sd[0], sd[1]);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0); /* no longer degraded */
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_does_not_bring_back_a_key_deleted_while_a_replica_was_dropped)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "gone", "old"), 0);
    ck_assert_int_eq(put_s(s, "kept", "v1"), 0);
    ekv_close(s);
    destroy_header(sd[1]);
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_delete(s, "gone", 4), 0);
    ck_assert_int_eq(put_s(s, "kept", "v2"), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ck_assert_ptr_null(get_s(s, "gone"));
    ck_assert_str_eq(get_s(s, "kept"), "v2");
    ekv_close(s);
    s = open_alone(sd[1]);
    ck_assert_ptr_null(get_s(s, "gone"));
    ck_assert_str_eq(get_s(s, "kept"), "v2");
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_leaves_an_unrevivable_replica_dropped_and_repairs_the_rest)
{
    simdev *sd[3];
    make_replicas(sd, 2, BC);
    make_replicas(sd + 2, 1, BC + 1); /* other geometry: cannot be revived */
    ekv_store *s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    uint8_t *other = sim_snapshot(sd[2]);
    ck_assert_int_eq(open_n(&s, sd, 3, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_EDOM);
    ck_assert_uint_eq(info_of(s, "k").replicas, 3);
    ekv_replica_report r;
    ekv_replica_report_get(s, 2, &r);
    ck_assert_int_eq(r.status, EKV_EDOM);
    ck_assert_mem_eq(sim_image(sd[2]), other, (size_t)BS * (BC + 1));
    free(other);
    ekv_close(s);
    free_replicas(sd, 3);
}
END_TEST

START_TEST(repair_reconciles_equal_generations_holding_different_values)
{
    /* Each replica, opened alone, got its own first put of "k". */
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s = open_alone(sd[1]);
    ck_assert_int_eq(put_s(s, "k", "written on replica 1"), 0);
    ekv_close(s);
    s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "on 0"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_str_eq(get_s(s, "k"), "on 0");
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 1);
    char buf[64];
    size_t len = 0;
    uint32_t gen = 0;
    ck_assert_int_eq(
        ekv_get_replica(s, 1, "k", 1, buf, sizeof(buf), &len, &gen), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(buf, "on 0", 4);
    ck_assert_uint_eq(gen, 1);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_rebuilds_a_replica_that_lost_everything)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    scripted_ops(s, 6, 100);
    ekv_stats st;
    ekv_stats_get(s, &st);
    const uint32_t records = st.records;
    ekv_close(s);
    memset(sd[1]->cache, 0xee, (size_t)BS * BC); /* wiped with garbage */
    memcpy(sd[1]->durable, sd[1]->cache, (size_t)BS * BC);
    ck_assert_int_eq(open_n(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, records);
    ekv_close(s);
    /* Alone, the rebuilt replica holds every key with its generation. */
    ekv_store *a = open_alone(sd[0]), *b = open_alone(sd[1]);
    ekv_stats sa, sb;
    ekv_stats_get(a, &sa);
    ekv_stats_get(b, &sb);
    ck_assert_uint_eq(sa.records, sb.records);
    ck_assert_uint_eq(sa.used_blocks, sb.used_blocks);
    char k[16];
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        ekv_key_info ia, ib;
        int ra = ekv_stat_key(a, k, strlen(k), &ia);
        ck_assert_int_eq(ekv_stat_key(b, k, strlen(k), &ib), ra);
        if (ra)
            continue;
        ck_assert_uint_eq(ia.generation, ib.generation);
        static uint8_t va[2000];
        size_t la;
        ck_assert_int_eq(ekv_get(a, k, strlen(k), va, sizeof(va), &la), 0);
        assert_value(b, k, strlen(k), va, la);
    }
    ekv_close(a);
    ekv_close(b);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_copies_records_a_replica_is_missing)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "a", "only on 0"), 0);
    uint8_t v[900];
    fill_pattern(v, sizeof(v), 3);
    ck_assert_int_eq(ekv_put(s, "big", 3, v, sizeof(v)), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_uint_eq(info_of(s, "a").replicas, 1);
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 2);
    ck_assert_uint_eq(info_of(s, "a").replicas, 3);
    ck_assert_uint_eq(info_of(s, "big").replicas, 3);
    ekv_close(s);
    s = open_alone(sd[1]);
    ck_assert_str_eq(get_s(s, "a"), "only on 0");
    assert_value(s, "big", 3, v, sizeof(v));
    ck_assert_uint_eq(info_of(s, "big").generation, 1);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_replaces_stale_records_and_images_match)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "generation 1"), 0);
    ekv_close(s);
    s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "generation 2"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_uint_eq(info_of(s, "k").stale, 2);
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 1);
    ekv_key_info ki = info_of(s, "k");
    ck_assert_uint_eq(ki.stale, 0);
    ck_assert_uint_eq(ki.replicas, 3);
    ck_assert_uint_eq(ki.generation, 2);
    ekv_close(s);
    /* Same lowest-free-block rule on both: the same image. */
    assert_data_equal(sd[0], sd[1]);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_replaces_copies_that_no_longer_verify)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    uint8_t v[600];
    fill_pattern(v, sizeof(v), 4);
    ck_assert_int_eq(ekv_put(s, "k", 1, v, sizeof(v)), 0);
    sim_block(sd[1], 2)[30] ^= 0x40; /* a chunk, after open */
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 1);
    ekv_close(s);
    s = open_alone(sd[1]);
    assert_value(s, "k", 1, v, sizeof(v));
    ck_assert_uint_eq(info_of(s, "k").generation, 1);
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_keeps_user_flags)
{
    simdev *sd[2];
    make_replicas(sd, 2, BC);
    ekv_store *s = open_alone(sd[0]);
    ck_assert_int_eq(ekv_put_flags(s, "f", 1, "v", 1, 0x1234abcdu), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ekv_close(s);
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd[1], desc_block(sd[1], "f")), BS, &bi);
    ck_assert_uint_eq(bi.user_flags, 0x1234abcdu);
    free_replicas(sd, 2);
}
END_TEST

START_TEST(repair_of_consistent_replicas_writes_nothing)
{
    simdev *sd[3];
    make_replicas(sd, 3, BC);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    scripted_ops(s, 8, 100);
    for (int i = 0; i < 3; i++)
        sim_reset_faults(sd[i]);
    uint32_t copied = 7;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(sd[i]->writes, 0);
    ekv_close(s);
    free_replicas(sd, 3);
}
END_TEST

START_TEST(after_repair_every_replica_holds_the_newest_of_every_key)
{
    /* Three replicas diverge in different ways, then one repair. */
    simdev *sd[3];
    make_replicas(sd, 3, 128);
    ekv_store *s;
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    scripted_ops(s, 100 + (uint64_t)_i, 60);
    ekv_close(s);
    for (int i = 0; i < 3; i++) {
        s = open_alone(sd[i]);
        scripted_ops(s, 200 + (uint64_t)(_i * 3 + i), 15);
        ekv_close(s);
    }
    ck_assert_int_eq(open_n(&s, sd, 3, 0), 0);
    /* The view before repair: newest generation of every key. */
    static uint8_t want[12][1200];
    size_t wlen[12];
    uint32_t wgen[12];
    int present[12];
    char k[16];
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        ekv_key_info ki;
        present[i] = ekv_stat_key(s, k, strlen(k), &ki) == 0;
        if (!present[i])
            continue;
        wgen[i] = ki.generation;
        ck_assert_int_eq(ekv_get(s, k, strlen(k), want[i], sizeof(want[i]),
                                 &wlen[i]), 0);
    }
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        if (!present[i])
            continue;
        ekv_key_info ki = info_of(s, k);
        ck_assert_uint_eq(ki.stale, 0);
        ck_assert_uint_eq(ki.replicas, 7);
    }
    ekv_close(s);
    for (int r = 0; r < 3; r++) {
        s = open_alone(sd[r]);
        for (int i = 0; i < 12; i++) {
            snprintf(k, sizeof(k), "key%d", i);
            if (!present[i]) {
                ck_assert_ptr_null(get_s(s, k));
                continue;
            }
            assert_value(s, k, strlen(k), want[i], wlen[i]);
            ck_assert_uint_eq(info_of(s, k).generation, wgen[i]);
        }
        ekv_replica_report rr;
        ekv_replica_report_get(s, 0, &rr);
        ck_assert_uint_eq(rr.erased_blocks, 0); /* nothing left behind */
        ekv_close(s);
    }
    free_replicas(sd, 3);
}
END_TEST

START_TEST(repair_into_a_full_replica_is_enospc_and_keeps_the_rest)
{
    simdev *sd[2];
    make_replicas(sd, 2, 8);
    ekv_store *s = open_alone(sd[1]);
    uint8_t v[1500];
    fill_pattern(v, sizeof(v), 5);
    ck_assert_int_eq(ekv_put(s, "fill", 4, v, sizeof(v)), 0); /* 7 blocks */
    ekv_close(s);
    s = open_alone(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_n(&s, sd, 2, 0), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_ENOSPC);
    ck_assert_str_eq(get_s(s, "k"), "v");
    assert_value(s, "fill", 4, v, sizeof(v));
    ekv_close(s);
    free_replicas(sd, 2);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("replica");
    TCase *tc = tcase_create("writes_and_reads");
    tcase_add_loop_test(tc, every_replica_gets_an_identical_image, 0, 2);
    tcase_add_test(tc, delete_removes_every_copy_including_stale_ones);
    tcase_add_test(tc, get_falls_back_when_one_copy_is_corrupt);
    tcase_add_test(tc, get_falls_back_when_reads_of_one_copy_flip_a_bit);
    tcase_add_test(tc, get_with_every_copy_corrupt_is_ecorrupt);
    tcase_add_test(tc, copy_corrupt_at_open_leaves_the_other_replica_serving);
    tcase_add_test(tc, newest_generation_across_replicas_wins);
    tcase_add_test(tc, put_after_divergence_continues_from_the_highest_generation);
    tcase_add_test(tc, equal_generations_on_two_replicas_first_replica_wins);
    tcase_add_test(tc, key_held_by_one_replica_only_is_served);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_test(tc, replica_with_destroyed_header_fails_open_with_ebadhdr);
    tcase_add_test(tc, degraded_open_drops_the_bad_replica_and_reports_it);
    tcase_add_test(tc, degraded_open_with_no_good_replica_fails);
    tcase_add_test(tc, replicas_of_different_block_count_are_edom);
    tcase_add_test(tc, replicas_of_different_block_size_are_edom);
    tcase_add_test(tc, replica_of_major_version_2_is_eversion);
    tcase_add_test(tc, replica_report_describes_what_the_scan_found);
    suite_add_tcase(s, tc);

    tc = tcase_create("repair");
    tcase_add_test(tc, repair_revives_a_replica_whose_header_was_destroyed);
    tcase_add_test(tc, repair_does_not_bring_back_a_key_deleted_while_a_replica_was_dropped);
    tcase_add_test(tc, repair_leaves_an_unrevivable_replica_dropped_and_repairs_the_rest);
    tcase_add_test(tc, repair_reconciles_equal_generations_holding_different_values);
    tcase_add_test(tc, repair_rebuilds_a_replica_that_lost_everything);
    tcase_add_test(tc, repair_copies_records_a_replica_is_missing);
    tcase_add_test(tc, repair_replaces_stale_records_and_images_match);
    tcase_add_test(tc, repair_replaces_copies_that_no_longer_verify);
    tcase_add_test(tc, repair_keeps_user_flags);
    tcase_add_test(tc, repair_of_consistent_replicas_writes_nothing);
    tcase_add_loop_test(tc, after_repair_every_replica_holds_the_newest_of_every_key,
                        0, 6);
    tcase_add_test(tc, repair_into_a_full_replica_is_enospc_and_keeps_the_rest);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
