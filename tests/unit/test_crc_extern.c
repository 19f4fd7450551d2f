/*
 * A core built with EKV_CRC_EXTERN computes every block's CRC through the
 * platform's ekv_crc32 (tests/support/platform_crc.c): the store works,
 * every CRC it writes or checks goes through that function, and a flipped
 * byte is still caught. The compat, store and recovery suites run against
 * the same build (tests/meson.build).
 */
#include "helpers.h"

#ifndef EKV_CRC_EXTERN
#error "build this test with -DEKV_CRC_EXTERN"
#endif

extern unsigned long platform_crc_calls;

START_TEST(store_runs_on_the_platform_crc)
{
    static uint8_t mem[16 * 128];
    ekv_device dev, *d = &dev;
    ck_assert_int_eq(ekv_mem_device_init(&dev, mem, 128, 16), 0);
    unsigned long before = platform_crc_calls;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ck_assert_uint_gt(platform_crc_calls, before);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    static uint8_t val[300], got[300];
    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (uint8_t)(i * 13 + 1);
    before = platform_crc_calls;
    ck_assert_int_eq(ekv_put(s, "key", 3, val, sizeof(val)), 0);
    ck_assert_uint_gt(platform_crc_calls, before);
    size_t len = 0;
    ck_assert_int_eq(ekv_get(s, "key", 3, got, sizeof(got), &len), 0);
    ck_assert_uint_eq(len, sizeof(val));
    ck_assert_mem_eq(got, val, sizeof(val));
    /* The descriptor's CRC is the platform's: the reference decoder
     * agrees, and a flipped value byte makes the record corrupt. */
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "key", 3, &ki), 0);
    for (uint32_t b = 1; b < 16; b++) {
        ekv_block_info bi;
        ekv_block_decode(mem + b * 128, 128, &bi);
        if (bi.kind == EKV_BLOCK_DESCRIPTOR) {
            ck_assert(bi.crc_ok);
            mem[b * 128 + 40] ^= 0x01;
        }
    }
    ck_assert_int_eq(ekv_get(s, "key", 3, got, sizeof(got), &len),
                     EKV_ECORRUPT);
    ekv_close(s);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("crc-extern");
    TCase *tc = tcase_create("platform");
    tcase_add_test(tc, store_runs_on_the_platform_crc);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
