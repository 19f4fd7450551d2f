/*
 * Replica sets (src/core/replica.c): epochs and participant masks, identity,
 * geometry, the epoch bump, heal. Built against both index modes; heal and
 * repair are indexed-mode only (EKV_NO_INDEX: EKV_ENOSYS, a stale replica
 * needs EKV_OPEN_DEGRADED).
 */
#include <stdio.h>

#include "helpers.h"

#define BS 256u
#define BC 48u

static int open_list(ekv_store **s, simdev **sd, unsigned n, uint32_t flags)
{
    ekv_device *d[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++)
        d[i] = &sd[i]->dev;
    ekv_options o = {.flags = flags};
    *s = NULL;
    return ekv_open(s, d, n, &o);
}

static void make_set(simdev **sd, unsigned n)
{
    ekv_device *d[EKV_MAX_REPLICAS] = {0};
    for (unsigned i = 0; i < n; i++) {
        sd[i] = sim_new(BS, BC, 0);
        d[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(d, n, NULL), 0);
}

static uint32_t hdr_seq(simdev *sd)
{
    return get_le32(sim_block(sd, 0) + HDR_FORMAT_SEQ);
}

static uint32_t hdr_mask(simdev *sd)
{
    return get_le32(sim_block(sd, 0) + HDR_FLAGS);
}

static uint64_t writes_of(simdev **sd, unsigned n)
{
    uint64_t w = 0;
    for (unsigned i = 0; i < n; i++)
        w += sd[i]->writes;
    return w;
}

static void free_set(simdev **sd, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sim_free(sd[i]);
}

START_TEST(format_of_a_set_names_its_participants_one_image_stays_upstream)
{
    simdev *sd[3];
    make_set(sd, 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(hdr_mask(sd[i]), 7);
        ck_assert_uint_eq(hdr_seq(sd[i]), 0);
    }
    simdev *one = sim_new(BS, BC, 0);
    ekv_device *d = &one->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0); /* the upstream header, flags 0 */
    ck_assert_mem_eq(sim_block(one, 0), h, BS);
    sim_free(one);
    free_set(sd, 3);
}
END_TEST

static uint32_t info_gen(ekv_store *s, const char *k)
{
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, k, strlen(k), &ki), 0);
    return ki.generation;
}

/* Scenario 1 of issue 13: b is absent; a key is deleted and re-created
 * (generation 1 again) and another rewritten; b returns. */
static void absent_then_back(simdev **sd)
{
    make_set(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(put_s(s, "creds", "password=OLD"), 0);
    ck_assert_int_eq(put_s(s, "gone", "x"), 0);
    ck_assert_int_eq(put_s(s, "kept", "v1"), 0);
    ekv_close(s);
    /* b absent: a writable open of a alone needs DEGRADED. */
    uint64_t w0 = sd[0]->writes;
    ck_assert_int_eq(open_list(&s, sd, 1, 0), EKV_ENXIO);
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_RDONLY), 0);
    ekv_close(s);
    ck_assert_uint_eq(sd[0]->writes, w0);
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_uint_eq(hdr_seq(sd[0]), 0); /* nothing changed yet */
    ck_assert_int_eq(ekv_delete(s, "creds", 5), 0);
    /* The first change started epoch 1 with a alone. */
    ck_assert_uint_eq(hdr_seq(sd[0]), 1);
    ck_assert_uint_eq(hdr_mask(sd[0]), 1);
    ck_assert_int_eq(put_s(s, "creds", "password=NEW"), 0);
    ck_assert_int_eq(ekv_delete(s, "gone", 4), 0);
    ck_assert_int_eq(put_s(s, "kept", "v2"), 0);
    ck_assert_uint_eq(info_gen(s, "creds"), 1);
    ekv_close(s);
    ck_assert_uint_eq(hdr_seq(sd[1]), 0);
}

START_TEST(absent_replica_returns_stale_and_never_wins)
{
    simdev *sd[2];
    absent_then_back(sd);
    /* b is back. Read-only: b is stale, never read; nothing is written. */
    ekv_store *s;
    uint64_t w0 = writes_of(sd, 2);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ck_assert_ptr_null(get_s(s, "gone"));
    ck_assert_str_eq(get_s(s, "kept"), "v2");
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ck_assert_uint_eq(r.format_seq, 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.epoch, 1);
    ck_assert_uint_eq(st.active_replicas, 1);
    ekv_close(s);
    ck_assert_uint_eq(writes_of(sd, 2), w0);
    /* Writable without DEGRADED or HEAL: refused, nothing written. */
    ck_assert_int_eq(open_list(&s, sd, 2, 0), EKV_ESTALE);
    ck_assert_uint_eq(writes_of(sd, 2), w0);
    free_set(sd, 2);
}
END_TEST

START_TEST(degraded_open_keeps_a_stale_replica_out_and_writes_go_on)
{
    simdev *sd[2];
    absent_then_back(sd);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "more", "m"), 0);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ekv_close(s);
    /* b was not written (it is not in use), and stays stale. */
    ck_assert_uint_eq(hdr_seq(sd[1]), 0);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "more"), "m");
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

#ifndef EKV_NO_INDEX
START_TEST(heal_rebuilds_the_stale_replica_and_both_join_a_new_epoch)
{
    simdev *sd[2];
    absent_then_back(sd);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.healed, 1);
    ck_assert_uint_eq(r.copied, 2); /* creds and kept */
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.healed_replicas, 1);
    ck_assert_uint_eq(st.epoch, 2);
    ck_assert_uint_eq(st.missing, 0);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ck_assert_ptr_null(get_s(s, "gone"));
    /* The re-created key keeps its new generation everywhere. */
    ck_assert_uint_eq(info_gen(s, "creds"), 1);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "creds", 5, &ki), 0);
    ck_assert_uint_eq(ki.replicas, 3);
    ekv_close(s);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_uint_eq(hdr_seq(sd[i]), 2);
        ck_assert_uint_eq(hdr_mask(sd[i]), 3);
    }
    /* b alone now tells the new values. */
    ck_assert_int_eq(open_list(&s, sd + 1, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ck_assert_str_eq(get_s(s, "kept"), "v2");
    ck_assert_ptr_null(get_s(s, "gone"));
    ekv_close(s);
    /* A plain open is clean, and a heal with nothing to do writes
     * nothing. */
    uint64_t w0 = writes_of(sd, 2);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ekv_close(s);
    ck_assert_uint_eq(writes_of(sd, 2), w0);
    free_set(sd, 2);
}
END_TEST

START_TEST(a_heal_that_cannot_finish_leaves_the_open_usable_and_says_why)
{
    simdev *sd[2];
    absent_then_back(sd);
    sd[1]->fail_write_at = 1; /* b's device refuses every write */
    sd[1]->fail_count = 1000000;
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_int_eq(st.heal_error, EKV_EIO);
    ck_assert_uint_eq(st.healed_replicas, 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ck_assert_int_eq(put_s(s, "more", "m"), 0);
    ekv_close(s);
    sim_reset_faults(sd[1]);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "more"), "m");
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(an_unrevivable_replica_does_not_keep_a_stale_one_from_its_rebuild)
{
    simdev *sd[3];
    make_set(sd, 3);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 3, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "old"), 0);
    ekv_close(s);
    /* b away while k changes; c is then replaced by a device of another
     * size, which repair cannot revive. */
    simdev *ac[2] = {sd[0], sd[2]};
    ck_assert_int_eq(open_list(&s, ac, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "k", "new"), 0);
    ekv_close(s);
    sim_free(sd[2]);
    sd[2] = sim_new(BS, BC + 1, 0);
    ck_assert_int_eq(open_list(&s, sd, 3, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_EDOM);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, 0); /* b rebuilt all the same */
    ck_assert_uint_eq(r.healed, 1);
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd + 1, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "k"), "new");
    ekv_close(s);
    free_set(sd, 3);
}
END_TEST

START_TEST(a_rebuild_cut_short_leaves_the_replica_stale_and_out_of_the_index)
{
    simdev *sd[2];
    absent_then_back(sd);
    sim_reset_faults(sd[1]);
    sd[1]->fail_write_at = BC; /* emptied (BC - 1 writes), then refills fail */
    sd[1]->fail_count = 1000000;
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_int_eq(st.heal_error, EKV_EIO);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "creds", 5, &ki), 0);
    ck_assert_uint_eq(ki.replicas, 1); /* b's partial copies are forgotten */
    ck_assert_uint_eq(ki.stale, 0);
    ck_assert_int_eq(put_s(s, "creds", "password=NEWER"), 0);
    ekv_close(s);
    ck_assert_uint_eq(hdr_seq(sd[1]), 0);
    sim_reset_faults(sd[1]);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEWER");
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, 0);
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(repair_empties_a_stale_replica_and_never_copies_from_it)
{
    simdev *sd[2];
    absent_then_back(sd);
    /* Something only the stale replica holds (a write it got before it
     * left, on a key the others then deleted): it must not come back. */
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    uint32_t copied = 0;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 2);
    ck_assert_ptr_null(get_s(s, "gone"));
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd + 1, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_ptr_null(get_s(s, "gone"));
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(heal_reconciles_replicas_a_crash_left_apart)
{
    simdev *sd[2];
    make_set(sd, 2);
    simgroup g;
    memset(&g, 0, sizeof(g));
    sim_group_add(&g, sd[0]);
    sim_group_add(&g, sd[1]);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "old"), 0);
    /* The next put dies after its record reached replica 0 only. */
    sim_group_reset(&g);
    g.cut_at = 2;
    ck_assert_int_ne(put_s(s, "k", "new"), 0);
    ekv_close(s);
    sim_group_powercycle(&g);
    sim_group_reset(&g);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "k", 1, &ki), 0);
    ck_assert_uint_eq(ki.replicas, 1); /* diverged */
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.healed_records, 1);
    ck_assert_uint_eq(st.healed_replicas, 0);
    ck_assert_uint_eq(st.epoch, 0); /* a reconciliation is no new epoch */
    ck_assert_int_eq(ekv_stat_key(s, "k", 1, &ki), 0);
    ck_assert_uint_eq(ki.replicas, 3);
    ck_assert_str_eq(get_s(s, "k"), "new");
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(repair_force_keeps_the_first_store_and_overwrites_the_other)
{
    simdev *sd[2];
    for (unsigned i = 0; i < 2; i++) {
        sd[i] = sim_new(BS, BC, 0);
        ekv_device *d = &sd[i]->dev;
        ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
        ekv_store *s;
        ck_assert_int_eq(open_list(&s, sd + i, 1, 0), 0);
        ck_assert_int_eq(put_s(s, i ? "theirs" : "mine", "v"), 0);
        ekv_close(s);
    }
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), EKV_ENOTUNIQ);
    ck_assert_int_eq(
        open_list(&s, sd, 2, EKV_OPEN_DEGRADED | EKV_OPEN_FORCE), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ENOTUNIQ);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.replica_id, 1);
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    ck_assert_str_eq(get_s(s, "mine"), "v");
    ck_assert_ptr_null(get_s(s, "theirs"));
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST
#else
START_TEST(scan_build_cannot_heal_a_stale_replica_needs_degraded)
{
    simdev *sd[2];
    absent_then_back(sd);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), EKV_ESTALE);
    ck_assert_int_eq(
        open_list(&s, sd, 2, EKV_OPEN_HEAL | EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_ENOSYS);
    ck_assert_str_eq(get_s(s, "creds"), "password=NEW");
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST
#endif

START_TEST(a_replica_dropped_for_its_size_and_fixed_comes_back_stale)
{
    simdev *sd[2];
    make_set(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "v1"), 0);
    ekv_close(s);
    /* b's file the wrong size: its device has other geometry. */
    simdev *wrong = sim_new(BS, BC + 3, 0);
    memcpy(wrong->cache, sd[1]->cache, (size_t)BS * BC);
    memcpy(wrong->durable, sd[1]->cache, (size_t)BS * BC);
    simdev *pair[2] = {sd[0], wrong};
    ck_assert_int_eq(open_list(&s, pair, 2, 0), EKV_EDOM);
    ck_assert_int_eq(open_list(&s, pair, 2, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_EDOM);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ekv_close(s);
    sim_free(wrong);
    /* Fixed (truncate -s): b holds its old header and the deleted key. */
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_ptr_null(get_s(s, "k"));
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(two_stores_with_one_replica_id_are_refused_and_untouched)
{
    simdev *sd[2];
    for (unsigned i = 0; i < 2; i++) {
        sd[i] = sim_new(BS, BC, 0);
        ekv_device *d = &sd[i]->dev;
        ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    }
    uint64_t w0 = writes_of(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), EKV_ENOTUNIQ);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), EKV_ENOTUNIQ);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY | EKV_OPEN_DEGRADED),
                     EKV_ENOTUNIQ);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), EKV_ENOTUNIQ);
    ck_assert_uint_eq(writes_of(sd, 2), w0);
    free_set(sd, 2);
}
END_TEST

START_TEST(replicas_written_apart_are_refused_not_merged)
{
    simdev *sd[2];
    make_set(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "k", "from-a"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd + 1, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "k", "from-b"), 0);
    ekv_close(s);
    uint64_t w0 = writes_of(sd, 2);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), EKV_ENOTUNIQ);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED | EKV_OPEN_HEAL),
                     EKV_ENOTUNIQ);
    ck_assert_uint_eq(writes_of(sd, 2), w0);
    free_set(sd, 2);
}
END_TEST

/* Open the replicas sd[idx[0..n)] as a set. */
static int open_some(ekv_store **s, simdev **sd, const unsigned *idx,
                     unsigned n, uint32_t flags)
{
    simdev *pick[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++)
        pick[i] = sd[idx[i]];
    return open_list(s, pick, n, flags);
}

/* Three replicas, each side changed without the other across epochs:
 * b and c go on without a (epoch 1, {b,c}), then b alone (epoch 2, {b});
 * a, opened alone, takes a write at an epoch of its own (1, {a}). a is
 * below b's epoch, but b never took part in a's epoch: a holds a write b
 * never saw, so the set is refused, never "healed" by rebuilding a from b
 * (which silently undid the acknowledged write). */
START_TEST(a_lower_epoch_written_apart_is_refused_not_rebuilt)
{
    simdev *sd[3];
    make_set(sd, 3);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 3, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "base"), 0);
    ekv_close(s);
    const unsigned bc[] = {1, 2}, b[] = {1}, a[] = {0}, ab[] = {0, 1};
    ck_assert_int_eq(open_some(&s, sd, bc, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "x", "X"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_some(&s, sd, b, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "z", "Z"), 0);
    ekv_close(s);
    ck_assert_int_eq(open_some(&s, sd, a, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "y", "Y"), 0);
    ekv_close(s);
    ck_assert_uint_eq(hdr_seq(sd[0]), 1);
    ck_assert_uint_eq(hdr_seq(sd[1]), 2);
    uint64_t w0 = writes_of(sd, 3);
    ck_assert_int_eq(open_some(&s, sd, ab, 2, EKV_OPEN_RDONLY), EKV_ENOTUNIQ);
    ck_assert_int_eq(
        open_some(&s, sd, ab, 2, EKV_OPEN_DEGRADED | EKV_OPEN_HEAL),
        EKV_ENOTUNIQ);
    ck_assert_uint_eq(writes_of(sd, 3), w0);
    /* a alone still holds its write. */
    ck_assert_int_eq(open_some(&s, sd, a, 1, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "y"), "Y");
    ekv_close(s);
    /* A replica that merely missed writes is still stale: c (epoch 1,
     * {b,c}) beside b (epoch 2, {b}); b took part in c's epoch. */
    const unsigned bc2[] = {1, 2};
    ck_assert_int_eq(open_some(&s, sd, bc2, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "z"), "Z");
    ck_assert_str_eq(get_s(s, "x"), "X");
    ekv_replica_report r;
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ekv_close(s);
    free_set(sd, 3);
}
END_TEST

START_TEST(mixed_geometry_is_refused_degraded_the_majority_wins)
{
    simdev *sd[3];
    ekv_device *d[3];
    for (unsigned i = 0; i < 3; i++) {
        sd[i] = sim_new(BS, i == 0 ? BC + 8 : BC, 0);
        d[i] = &sd[i]->dev;
        ekv_format_options fo = {.replica_id_base = i, .participants = 7};
        ck_assert_int_eq(ekv_format(&d[i], 1, &fo), 0);
    }
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 3, 0), EKV_EDOM);
    ck_assert_int_eq(open_list(&s, sd, 3, EKV_OPEN_DEGRADED), 0);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.block_count, BC); /* two of three, not the first */
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_int_eq(r.status, EKV_EDOM);
    ekv_close(s);
    /* A tie: the first image with a valid header. */
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.block_count, BC + 8);
    ekv_close(s);
    free_set(sd, 3);
}
END_TEST

START_TEST(the_epoch_bump_happens_once_and_refuses_to_wrap)
{
    simdev *sd[2];
    make_set(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(put_s(s, "a", "1"), 0);
    uint8_t h[BS];
    memcpy(h, sim_block(sd[0], 0), BS);
    ck_assert_int_eq(put_s(s, "b", "2"), 0);
    ck_assert_mem_eq(sim_block(sd[0], 0), h, BS);
    ekv_close(s);
    /* An epoch at 0xFFFFFFFF cannot grow: the change is refused. */
    for (unsigned i = 0; i < 2; i++) {
        sim_free(sd[i]);
        sd[i] = sim_new(BS, BC, 0);
    }
    ekv_device *d[2] = {&sd[0]->dev, &sd[1]->dev};
    ekv_format_options fo = {.format_seq = 0xffffffffu};
    ck_assert_int_eq(ekv_format(d, 2, &fo), 0);
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_DEGRADED), 0);
    uint64_t w0 = sd[0]->writes;
    ck_assert_int_eq(put_s(s, "a", "1"), EKV_ERANGE);
    ck_assert_uint_eq(sd[0]->writes, w0);
    ekv_close(s);
    free_set(sd, 2);
}
END_TEST

START_TEST(a_header_torn_by_an_epoch_change_is_used_and_rewritten)
{
    simdev *sd[2];
    make_set(sd, 2);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    /* The new format_seq landed, the new CRC did not. */
    uint8_t h[BS];
    memcpy(h, sim_block(sd[0], 0), BS);
    put_le32(h + HDR_FORMAT_SEQ, 1);
    sim_poke(sd[0], 0, h);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.header_torn, 1);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ekv_close(s);
    /* It shows the new epoch: the replica still at the old one (the cut
     * came before its header write) is stale. The next change rewrites
     * the torn header whole. */
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report_get(s, 1, &r);
    ck_assert_int_eq(r.status, EKV_ESTALE);
    ck_assert_int_eq(put_s(s, "k", "w"), 0);
    ekv_close(s);
    ekv_block_info bi;
    ekv_block_decode(sim_block(sd[0], 0), BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_HEADER);
    ck_assert_uint_eq(bi.format_seq, 2);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), 0);
    ck_assert_str_eq(get_s(s, "k"), "w");
    ekv_close(s);
    /* Damage elsewhere in the header is no torn rewrite. */
    memcpy(h, sim_block(sd[0], 0), BS);
    h[40] = 0x77;
    sim_poke(sd[0], 0, h);
    ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_RDONLY), EKV_EBADHDR);
    free_set(sd, 2);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("epoch");
    TCase *tc = tcase_create("sets");
    tcase_add_test(tc, format_of_a_set_names_its_participants_one_image_stays_upstream);
    tcase_add_test(tc, absent_replica_returns_stale_and_never_wins);
    tcase_add_test(tc, degraded_open_keeps_a_stale_replica_out_and_writes_go_on);
#ifndef EKV_NO_INDEX
    tcase_add_test(tc, heal_rebuilds_the_stale_replica_and_both_join_a_new_epoch);
    tcase_add_test(tc, repair_empties_a_stale_replica_and_never_copies_from_it);
    tcase_add_test(tc, a_heal_that_cannot_finish_leaves_the_open_usable_and_says_why);
    tcase_add_test(tc, an_unrevivable_replica_does_not_keep_a_stale_one_from_its_rebuild);
    tcase_add_test(tc, a_rebuild_cut_short_leaves_the_replica_stale_and_out_of_the_index);
    tcase_add_test(tc, heal_reconciles_replicas_a_crash_left_apart);
    tcase_add_test(tc, repair_force_keeps_the_first_store_and_overwrites_the_other);
#else
    tcase_add_test(tc, scan_build_cannot_heal_a_stale_replica_needs_degraded);
#endif
    tcase_add_test(tc, a_replica_dropped_for_its_size_and_fixed_comes_back_stale);
    tcase_add_test(tc, two_stores_with_one_replica_id_are_refused_and_untouched);
    tcase_add_test(tc, replicas_written_apart_are_refused_not_merged);
    tcase_add_test(tc, a_lower_epoch_written_apart_is_refused_not_rebuilt);
    tcase_add_test(tc, mixed_geometry_is_refused_degraded_the_majority_wins);
    tcase_add_test(tc, the_epoch_bump_happens_once_and_refuses_to_wrap);
    tcase_add_test(tc, a_header_torn_by_an_epoch_change_is_used_and_rewritten);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
