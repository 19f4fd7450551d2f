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

/* Long and unaligned runs (the carry-less fold on x86-64 takes 16 bytes
 * a step from any address), and every block size's CRC span. */
START_TEST(crc_matches_bitwise_reference_on_long_unaligned_runs)
{
    static uint8_t buf[4200];
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    static const size_t lens[] = {63, 64, 65, 79, 80, 95, 96, 252, 256,
                                  1020, 1021, 4092, 4096, 4100 - 16};
    for (size_t off = 0; off < 16; off++)
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            size_t len = lens[j];
            uint32_t c = 0xffffffffu;
            for (size_t i = 0; i < len; i++) {
                c ^= buf[off + i];
                for (int k = 0; k < 8; k++)
                    c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
            }
            ck_assert_uint_eq(ekv_crc32(0, buf + off, len), ~c);
            /* Continued from a non-trivial state, as block_crc does. */
            uint32_t a = ekv_crc32(0, buf + off, 37);
            ck_assert_uint_eq(ekv_crc32(a, buf + off + 37, len),
                              ekv_crc32(0, buf + off, len + 37));
        }
    /* block_crc at block sizes with and without whole 16-byte steps. */
    static const uint32_t sizes[] = {64, 80, 100, 256, 1000, 4096};
    for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
        uint32_t bs = sizes[j];
        uint32_t c = 0xffffffffu;
        for (uint32_t i = 0; i < bs; i++) {
            c ^= i < bs - 4 ? buf[i] : 0;
            for (int k = 0; k < 8; k++)
                c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
        ck_assert_uint_eq(block_crc(buf, bs), ~c);
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
    tcase_add_test(tc, crc_matches_bitwise_reference_on_long_unaligned_runs);
    tcase_add_test(tc, block_crc_treats_crc_field_as_zero);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
