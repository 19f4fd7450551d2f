/*
 * test_regress.c - the library bugs the power-loss and fault sweep found,
 * one test each, in the sweep's words: what a user did, what went wrong.
 * Every test failed before its fix. Built twice, against the indexed core
 * and the EKV_NO_INDEX one (which has no repair: those tests are skipped).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkv.h"
#include "simdev.h"

#define BS 128u
#define BC 32u

static simdev *sd[2];
static ekv_device *devs[2];

static ekv_store *format_open(unsigned n, uint32_t flags)
{
    for (unsigned i = 0; i < n; i++) {
        sd[i] = sim_new(BS, BC, 0);
        devs[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(devs, n, NULL), 0);
    ekv_store *s = NULL;
    ekv_options o = {.flags = flags};
    ck_assert_int_eq(ekv_open(&s, devs, n, &o), 0);
    return s;
}

static int reopen(ekv_store **s, unsigned n, uint32_t flags)
{
    ekv_close(*s);
    *s = NULL;
    ekv_options o = {.flags = flags};
    return ekv_open(s, devs, n, &o);
}

static void free_all(ekv_store *s, unsigned n)
{
    ekv_close(s);
    for (unsigned i = 0; i < n; i++)
        sim_free(sd[i]);
}

static int put(ekv_store *s, const char *k, const char *v)
{
    return ekv_put(s, k, strlen(k), v, strlen(v));
}

/* The value of k as a string, "<absent>", or "<error N>". */
static const char *get(ekv_store *s, const char *k)
{
    static char buf[256];
    size_t len = 0;
    int rc = ekv_get(s, k, strlen(k), buf, sizeof(buf) - 1, &len);
    if (rc == EKV_ENOENT)
        return "<absent>";
    if (rc) {
        snprintf(buf, sizeof(buf), "<error %d>", rc);
        return buf;
    }
    buf[len] = 0;
    return buf;
}

static void powercycle(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sim_powercycle(sd[i]);
}

#ifndef EKV_NO_INDEX
static void destroy_header(simdev *d)
{
    uint8_t junk[BS];
    memset(junk, 0x5a, sizeof(junk));
    sim_poke(d, 0, junk);
}

/* sweep --seed 408 --model cut --cut 0: a key deleted while a replica was
 * dropped came back when repair revived that replica. */
START_TEST(repair_does_not_bring_back_a_key_deleted_while_dropped)
{
    ekv_store *s = format_open(2, 0);
    ck_assert_int_eq(put(s, "k", "old"), 0);
    ck_assert_int_eq(put(s, "j", "kept"), 0);
    destroy_header(sd[1]);
    ck_assert_int_eq(reopen(&s, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    ck_assert_int_eq(reopen(&s, 2, 0), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    ck_assert_str_eq(get(s, "j"), "kept");
    free_all(s, 2);
}
END_TEST

/* ... and a key deleted and written again while the replica was dropped
 * (its generation starts over at 1) lost to the stale copy. */
START_TEST(repair_does_not_let_a_stale_generation_win)
{
    ekv_store *s = format_open(2, 0);
    ck_assert_int_eq(put(s, "k", "v1"), 0);
    ck_assert_int_eq(put(s, "k", "v2"), 0);
    destroy_header(sd[0]);
    ck_assert_int_eq(reopen(&s, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(put(s, "k", "new"), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ck_assert_int_eq(reopen(&s, 2, 0), 0);
    ck_assert_str_eq(get(s, "k"), "new");
    free_all(s, 2);
}
END_TEST

/* sweep --seed 782 --model ferr-drop --cut 13: a revive whose flush failed
 * (the device dropping the erasures) was retried by a second repair that
 * skipped blocks that merely read free, and the deleted key came back. */
START_TEST(repair_after_a_dropped_flush_empties_the_replica_again)
{
    ekv_store *s = format_open(2, 0);
    ck_assert_int_eq(put(s, "k", "old"), 0);
    destroy_header(sd[1]);
    ck_assert_int_eq(reopen(&s, 2, EKV_OPEN_DEGRADED), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    sim_reset_faults(sd[1]);
    sd[1]->fail_flush_at = 1;
    sd[1]->flush_fail_drops = 1;
    sd[1]->lose = SIM_LOSE_ALL;
    ck_assert_int_ne(ekv_repair(s, NULL), 0);
    ck_assert_int_eq(ekv_repair(s, NULL), 0);
    ekv_close(s);
    s = NULL;
    powercycle(2);
    ck_assert_int_eq(reopen(&s, 2, 0), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    free_all(s, 2);
}
END_TEST

/* sweep --seed 9 --model rerr --cut 55: repair could not read the only
 * good copy of a key, skipped it and still returned 0. */
START_TEST(repair_reports_a_key_it_could_not_read)
{
    ekv_store *s = format_open(2, 0);
    ck_assert_int_eq(put(s, "k", "v"), 0); /* block 1 of each replica */
    destroy_header(sd[1]);
    ck_assert_int_eq(reopen(&s, 2, EKV_OPEN_DEGRADED), 0);
    sd[0]->bad_block = 1;
    ck_assert_int_eq(ekv_repair(s, NULL), EKV_EIO);
    free_all(s, 2);
}
END_TEST
#endif

/* sweep --seed 8 --model werr --cut 16: a put whose erase of the old
 * record failed left that record behind; a later delete erased only the
 * new one and the old value came back. */
START_TEST(put_whose_old_erase_failed_then_delete_stays_deleted)
{
    ekv_store *s = format_open(1, 0);
    ck_assert_int_eq(put(s, "k", "v1"), 0);
    sim_reset_faults(sd[0]);
    sd[0]->fail_write_at = 2; /* 1: the new record, 2: erasing the old */
    ck_assert_int_eq(put(s, "k", "v2"), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(reopen(&s, 1, 0), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    free_all(s, 1);
}
END_TEST

/* sweep --seed 2 --model ferr --cut 2: after a delete whose flush failed,
 * get called the key corrupt instead of absent (or its value). */
START_TEST(delete_with_a_failed_flush_leaves_no_corrupt_key)
{
    ekv_store *s = format_open(1, 0);
    ck_assert_int_eq(put(s, "k", "v"), 0);
    sim_reset_faults(sd[0]);
    sd[0]->fail_flush_at = 1;
    int rc = ekv_delete(s, "k", 1);
    const char *v = get(s, "k");
    ck_assert_msg(!strcmp(v, "<absent>") || (rc && !strcmp(v, "v")),
                  "delete returned %d, get says %s", rc, v);
    free_all(s, 1);
}
END_TEST

/* sweep --seed 186 --model ferr-drop --cut 28: the device dropped a
 * failed delete's erasure; the key, gone from the index, was put again at
 * generation 1 and lost to the old record after a reboot. */
START_TEST(put_after_a_delete_whose_flush_was_dropped_wins)
{
    ekv_store *s = format_open(1, 0);
    ck_assert_int_eq(put(s, "k", "a"), 0);
    ck_assert_int_eq(put(s, "k", "b"), 0); /* generation 2 */
    sim_reset_faults(sd[0]);
    sd[0]->fail_flush_at = 1;
    sd[0]->flush_fail_drops = 1;
    sd[0]->lose = SIM_LOSE_ALL;
    (void)ekv_delete(s, "k", 1);
    ck_assert_int_eq(put(s, "k", "new"), 0);
    ekv_close(s);
    s = NULL;
    powercycle(1);
    ck_assert_int_eq(reopen(&s, 1, 0), 0);
    ck_assert_str_eq(get(s, "k"), "new");
    free_all(s, 1);
}
END_TEST

/* sweep --model flip: one bit flipped on one read during recovery made a
 * sound record look like garbage, and recovery erased it. */
START_TEST(recovery_survives_a_transient_bit_flip)
{
    for (uint64_t seed = 1; seed <= 64; seed++) {
        ekv_store *s = format_open(1, 0);
        ck_assert_int_eq(put(s, "k", "value"), 0); /* block 1 */
        ekv_close(s);
        s = NULL;
        sim_reset_faults(sd[0]);
        sd[0]->seed = seed;
        sd[0]->flip_read_at = 2; /* 1: header, 2: block 1 */
        ck_assert_int_eq(reopen(&s, 1, 0), 0);
        ck_assert_str_eq(get(s, "k"), "value");
        ck_assert_int_eq(reopen(&s, 1, 0), 0);
        ck_assert_str_eq(get(s, "k"), "value");
        free_all(s, 1);
    }
}
END_TEST

/* sweep --seed 2 --model rerr --cut 2: one failed read during recovery
 * hid a key: delete said ENOENT, and the key was back after a reopen. */
START_TEST(recovery_survives_a_transient_read_error)
{
    ekv_store *s = format_open(1, 0);
    ck_assert_int_eq(put(s, "k", "value"), 0);
    ekv_close(s);
    s = NULL;
    sim_reset_faults(sd[0]);
    sd[0]->fail_read_at = 2;
    ck_assert_int_eq(reopen(&s, 1, 0), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(reopen(&s, 1, 0), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    free_all(s, 1);
}
END_TEST

/* sweep --seed 3 --model rerr --cut 14: a degraded open dropped a good
 * replica over one failed header read; it missed a delete and brought the
 * key back at the next open. */
START_TEST(degraded_open_keeps_a_replica_whose_header_read_failed_once)
{
    ekv_store *s = format_open(2, 0);
    ck_assert_int_eq(put(s, "k", "v"), 0);
    ekv_close(s);
    s = NULL;
    sim_reset_faults(sd[1]);
    sd[1]->fail_read_at = 1;
    ck_assert_int_eq(reopen(&s, 2, EKV_OPEN_DEGRADED), 0);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 1, &rep), 0);
    ck_assert_int_eq(rep.status, 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(reopen(&s, 2, 0), 0);
    ck_assert_str_eq(get(s, "k"), "<absent>");
    free_all(s, 2);
}
END_TEST

static Suite *make(void)
{
    Suite *su = suite_create("sweep-regressions");
    TCase *tc = tcase_create("found-by-sweep");
#ifndef EKV_NO_INDEX
    tcase_add_test(tc, repair_does_not_bring_back_a_key_deleted_while_dropped);
    tcase_add_test(tc, repair_does_not_let_a_stale_generation_win);
    tcase_add_test(tc, repair_after_a_dropped_flush_empties_the_replica_again);
    tcase_add_test(tc, repair_reports_a_key_it_could_not_read);
#endif
    tcase_add_test(tc, put_whose_old_erase_failed_then_delete_stays_deleted);
    tcase_add_test(tc, delete_with_a_failed_flush_leaves_no_corrupt_key);
    tcase_add_test(tc, put_after_a_delete_whose_flush_was_dropped_wins);
    tcase_add_test(tc, recovery_survives_a_transient_bit_flip);
    tcase_add_test(tc, recovery_survives_a_transient_read_error);
    tcase_add_test(tc,
                   degraded_open_keeps_a_replica_whose_header_read_failed_once);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(make());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
