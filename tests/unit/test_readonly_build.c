/*
 * The read-only firmware build (EKV_READONLY + EKV_NO_INDEX, no malloc:
 * a bump arena): the reference images read back, recovery happens in
 * memory only, and the device's write callback is never called, even
 * though the device offers one. Built twice: as above, and in the
 * smallest configuration (EKV_CRC_SMALL, EKV_MAX_REPLICAS=1) that
 * tests/firmware.sh measures (readonly-build-min).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkv.h"

#ifndef EKV_READONLY
#error "build this test with -DEKV_READONLY"
#endif

static uint8_t image[16 * 256];
static unsigned writes;

static int mem_write_counting(ekv_device *d, uint32_t b, const void *buf)
{
    (void)d, (void)b, (void)buf;
    writes++;
    return 0;
}

static ekv_store *open_fixture(const char *name, ekv_device *dev,
                               ekv_allocator *al, ekv_bump *bump,
                               uint8_t *arena, size_t arena_size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", TESTDATA_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(image, 1, sizeof(image), f);
    fclose(f);
    ck_assert_uint_eq(n % 256, 0);
    ck_assert_int_eq(ekv_mem_device_init(dev, image, 256, (uint32_t)(n / 256)), 0);
    dev->write = mem_write_counting;
    ekv_bump_init(al, bump, arena, arena_size);
    ekv_options o = {0};
    o.allocator = al;
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &dev, 1, &o), 0);
    return s;
}

START_TEST(fixtures_read_back_from_a_static_arena)
{
    static uint8_t arena[EKV_STORE_MEMORY(256, 1)];
    ekv_device dev;
    ekv_allocator al;
    ekv_bump bump;
    char buf[600];
    size_t len = 0;
    writes = 0;
    ekv_store *s = open_fixture("multi_key.bin", &dev, &al, &bump, arena,
                                sizeof(arena));
    ck_assert_int_eq(ekv_get(s, "beta", 4, buf, sizeof(buf), &len), 0);
    ck_assert_mem_eq(buf, "value-beta", 10);
    ck_assert_uint_eq(len, 10);
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.records, 3);
    ck_assert_uint_eq(st.read_only, 1);
    ekv_close(s);
    ck_assert_uint_eq(bump.used, 0); /* everything given back */

    s = open_fixture("large_value.bin", &dev, &al, &bump, arena,
                     sizeof(arena));
    ck_assert_int_eq(ekv_get(s, "bigkey", 6, buf, sizeof(buf), &len), 0);
    ck_assert_uint_eq(len, 500);
    for (int i = 0; i < 500; i++)
        ck_assert_uint_eq((uint8_t)buf[i], i % 256);
    ekv_close(s);
    ck_assert_uint_eq(writes, 0);
}
END_TEST

START_TEST(crashed_update_recovers_in_memory_without_a_write)
{
    static uint8_t arena[EKV_STORE_MEMORY(256, 1)];
    ekv_device dev;
    ekv_allocator al;
    ekv_bump bump;
    char buf[64];
    size_t len = 0;
    writes = 0;
    ekv_store *s = open_fixture("recovery/partial_write.bin", &dev, &al,
                                &bump, arena, sizeof(arena));
    uint8_t before[sizeof(image)];
    memcpy(before, image, sizeof(image));
    ck_assert_int_eq(ekv_get(s, "power", 5, buf, sizeof(buf), &len), 0);
    ck_assert_mem_eq(buf, "gen1-data", 9);
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_eq(rep.incomplete_records, 1);
    ck_assert_uint_eq(rep.erased_blocks, 0);
    ck_assert_uint_gt(rep.erasable_blocks, 0);
    ekv_close(s);
    ck_assert_uint_eq(writes, 0);
    ck_assert_mem_eq(image, before, sizeof(image));
}
END_TEST

START_TEST(an_arena_one_byte_short_fails_cleanly)
{
    static uint8_t arena[EKV_STORE_MEMORY(256, 1)];
    ekv_device dev;
    ekv_allocator al;
    ekv_bump bump;
    char path[4096];
    snprintf(path, sizeof(path), "%s/small_value.bin", TESTDATA_DIR);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(image, 1, sizeof(image), f);
    fclose(f);
    ekv_mem_device_init(&dev, image, 256, (uint32_t)(n / 256));
    ekv_device *d = &dev;
    size_t need = ekv_store_memory(256, 1);
    ck_assert_uint_le(need, sizeof(arena));
    ekv_bump_init(&al, &bump, arena, 3 * 256);
    ekv_options o = {0};
    o.allocator = &al;
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_ENOMEM);
    ck_assert_ptr_null(s);
}
END_TEST

static unsigned reads;
static int (*plain_read)(ekv_device *, uint32_t, void *);

static int mem_read_counting(ekv_device *d, uint32_t b, void *buf)
{
    reads++;
    return plain_read(d, b, buf);
}

/* Opening a read-only scanning store reads the header only: lookups
 * verify what they read, so there is no recovery pass to run at boot.
 * The replica report, which needs one, is computed when first asked for,
 * and says what a recovery finds (here: the torn update). */
START_TEST(open_reads_the_header_only_and_the_report_comes_on_demand)
{
    static uint8_t arena[EKV_STORE_MEMORY(256, 1)];
    ekv_device dev;
    ekv_allocator al;
    ekv_bump bump;
    char buf[64];
    size_t len = 0;
    writes = 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/recovery/partial_write.bin",
             TESTDATA_DIR);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(image, 1, sizeof(image), f);
    fclose(f);
    ck_assert_int_eq(ekv_mem_device_init(&dev, image, 256,
                                         (uint32_t)(n / 256)), 0);
    plain_read = dev.read;
    dev.read = mem_read_counting;
    dev.write = mem_write_counting;
    ekv_bump_init(&al, &bump, arena, sizeof(arena));
    ekv_options o = {0};
    o.allocator = &al;
    ekv_device *d = &dev;
    ekv_store *s = NULL;
    reads = 0;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_uint_eq(reads, 1);
    /* The torn generation 2 is skipped, generation 1 read. */
    ck_assert_int_eq(ekv_get(s, "power", 5, buf, sizeof(buf), &len), 0);
    ck_assert_mem_eq(buf, "gen1-data", 9);
    unsigned before = reads;
    ekv_replica_report rep;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep), 0);
    ck_assert_uint_gt(reads, before);
    ck_assert_uint_eq(rep.incomplete_records, 1);
    ck_assert_uint_eq(rep.complete_records, 1);
    ck_assert_uint_eq(rep.keys, 1);
    ck_assert_uint_eq(rep.erased_blocks, 0);
    ck_assert_uint_gt(rep.erasable_blocks, 0);
    /* Computed once: a second ask reads nothing. */
    before = reads;
    ekv_replica_report rep2;
    ck_assert_int_eq(ekv_replica_report_get(s, 0, &rep2), 0);
    ck_assert_uint_eq(reads, before);
    ck_assert_mem_eq(&rep, &rep2, sizeof(rep));
    ekv_close(s);
    ck_assert_uint_eq(writes, 0);
    ck_assert_uint_eq(bump.used, 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("readonly-build");
    TCase *tc = tcase_create("readonly-build");
    tcase_add_test(tc, fixtures_read_back_from_a_static_arena);
    tcase_add_test(tc, crashed_update_recovers_in_memory_without_a_write);
    tcase_add_test(tc, an_arena_one_byte_short_fails_cleanly);
    tcase_add_test(tc, open_reads_the_header_only_and_the_report_comes_on_demand);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
