/* CRC-32 must be zlib's crc32(): the format's checksums depend on it. */
#include "helpers.h"

START_TEST(crc_of_check_string_is_standard)
{
    ck_assert_uint_eq(ekv_crc32(0, "123456789", 9), 0xCBF43926u);
}
END_TEST

START_TEST(crc_of_nothing_is_zero)
{
    ck_assert_uint_eq(ekv_crc32(0, "", 0), 0);
}
END_TEST

START_TEST(crc_continues_across_calls)
{
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t whole = ekv_crc32(0, s, strlen(s));
    for (size_t cut = 0; cut <= strlen(s); cut++)
        ck_assert_uint_eq(ekv_crc32(ekv_crc32(0, s, cut), s + cut,
                                    strlen(s) - cut), whole);
    ck_assert_uint_eq(whole, 0x414FA339u);
}
END_TEST

START_TEST(crc_matches_bitwise_reference_at_every_length)
{
    uint8_t buf[300];
    for (int i = 0; i < 300; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(buf); len++) {
        uint32_t c = 0xffffffffu;
        for (size_t i = 0; i < len; i++) {
            c ^= buf[i];
            for (int k = 0; k < 8; k++)
                c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
        ck_assert_uint_eq(ekv_crc32(0, buf, len), ~c);
    }
}
END_TEST

START_TEST(block_crc_treats_crc_field_as_zero)
{
    uint8_t blk[64];
    memset(blk, 0xAB, sizeof(blk));
    block_seal(blk, sizeof(blk));
    ck_assert(block_crc_ok(blk, sizeof(blk)));
    uint8_t copy[64];
    memcpy(copy, blk, sizeof(copy));
    memset(copy + 60, 0, 4);
    ck_assert_uint_eq(get_le32(blk + 60), ekv_crc32(0, copy, 64));
    blk[5] ^= 1;
    ck_assert(!block_crc_ok(blk, sizeof(blk)));
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("crc");
    TCase *tc = tcase_create("crc");
    tcase_add_test(tc, crc_of_check_string_is_standard);
    tcase_add_test(tc, crc_of_nothing_is_zero);
    tcase_add_test(tc, crc_continues_across_calls);
    tcase_add_test(tc, crc_matches_bitwise_reference_at_every_length);
    tcase_add_test(tc, block_crc_treats_crc_field_as_zero);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
