/* Open options that choose behaviour: EKV_OPEN_ERASE_AUTO. */
#include "helpers.h"

/* Format a one-replica store whose data blocks hold `fill`, put and
 * update a key, and return the byte the retired block was erased with. */
static uint8_t erased_with(uint8_t fill, uint8_t given, uint32_t flags)
{
    simdev *sd = sim_new(256, 16, fill);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_options o = {.flags = flags, .erase_byte = given};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_int_eq(put_s(s, "k", "one"), 0);   /* block 1 */
    ck_assert_int_eq(put_s(s, "k", "two"), 0);   /* block 2; erases 1 */
    ck_assert_str_eq(get_s(s, "k"), "two");
    uint8_t *blk = sim_image(sd) + 256;
    for (int i = 1; i < 256; i++)
        ck_assert_uint_eq(blk[i], blk[0]);
    uint8_t b = blk[0];
    ekv_close(s);
    sim_free(sd);
    return b;
}

START_TEST(erase_auto_keeps_an_erased_flash_erased)
{
    ck_assert_uint_eq(erased_with(0xff, 0x00, EKV_OPEN_ERASE_AUTO), 0xff);
}
END_TEST

START_TEST(erase_auto_keeps_a_zero_filled_image_zero)
{
    ck_assert_uint_eq(erased_with(0x00, 0xff, EKV_OPEN_ERASE_AUTO), 0x00);
}
END_TEST

START_TEST(without_erase_auto_the_given_byte_is_used)
{
    ck_assert_uint_eq(erased_with(0xff, 0x00, 0), 0x00);
    ck_assert_uint_eq(erased_with(0x00, 0xff, 0), 0xff);
}
END_TEST

START_TEST(erase_auto_on_a_full_store_falls_back_to_the_given_byte)
{
    /* No free block to learn from: the caller's byte stands. */
    simdev *sd = sim_new(64, 2, 0xff);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0); /* the only data block */
    ekv_close(s);
    ekv_options o = {.flags = EKV_OPEN_ERASE_AUTO, .erase_byte = 0x00};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_uint_eq(sim_image(sd)[64], 0x00);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("erase_auto");
    tcase_add_test(tc, erase_auto_keeps_an_erased_flash_erased);
    tcase_add_test(tc, erase_auto_keeps_a_zero_filled_image_zero);
    tcase_add_test(tc, without_erase_auto_the_given_byte_is_used);
    tcase_add_test(tc, erase_auto_on_a_full_store_falls_back_to_the_given_byte);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
