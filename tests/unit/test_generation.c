/* Generations near the top of the u32 range: a put that would wrap to 0
 * is refused, because generation 0 would lose to the old record. */
#include "helpers.h"

START_TEST(put_refuses_to_wrap_the_generation)
{
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, 256, 16, 0);
    ck_assert_int_eq(put_s(s, "k", "old"), 0);
    ekv_close(s);
    /* Move the record to generation 0xFFFFFFFE by hand. */
    uint8_t *blk = sim_image(sd[0]) + 256;
    ck_assert_uint_eq(blk[0], 0x02);
    put_le32(blk + DESC_GENERATION, 0xfffffffeu);
    block_seal(blk, 256);
    s = NULL;
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ck_assert_int_eq(put_s(s, "k", "last"), 0);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "k", 1, &ki), 0);
    ck_assert_uint_eq(ki.generation, 0xffffffffu);
    sim_reset_faults(sd[0]);
    ck_assert_int_eq(put_s(s, "k", "wrapped"), EKV_ERANGE);
    ck_assert_uint_eq(sd[0]->writes, 0);
    ck_assert_str_eq(get_s(s, "k"), "last");
    /* Delete and put again starts over at 1. */
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(put_s(s, "k", "fresh"), 0);
    ck_assert_int_eq(ekv_stat_key(s, "k", 1, &ki), 0);
    ck_assert_uint_eq(ki.generation, 1);
    ck_assert_int_eq(reopen(&s, sd, 1, 0), 0);
    ck_assert_str_eq(get_s(s, "k"), "fresh");
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

START_TEST(refused_put_of_a_new_key_leaves_no_trace_in_the_index)
{
    /* A brand-new key never hits the limit; check the failure path of a
     * new key instead: ENOSPC must not leave an entry behind. */
    simdev *sd[1] = {NULL};
    ekv_store *s = open_sims(sd, 1, 64, 4, 0);
    uint8_t big[200] = {0};
    ck_assert_int_eq(ekv_put(s, "n", 1, big, sizeof(big)), EKV_EFBIG);
    ck_assert_int_eq(put_s(s, "a", "1"), 0);
    ck_assert_int_eq(put_s(s, "b", "2"), 0);
    ck_assert_int_eq(put_s(s, "c", "3"), 0);
    ck_assert_int_eq(put_s(s, "d", "4"), EKV_ENOSPC);
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "d", 1, &ki), EKV_ENOENT);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 3);
    ekv_close(s);
    sim_free(sd[0]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("generation");
    TCase *tc = tcase_create("generation");
    tcase_add_test(tc, put_refuses_to_wrap_the_generation);
    tcase_add_test(tc, refused_put_of_a_new_key_leaves_no_trace_in_the_index);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
