/*
 * Compatibility with the Go/Rust implementation: their images read back
 * with the documented content, recovery leaves what theirs leaves, and the
 * images libembedkv builds for the same operations are byte-identical.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "helpers.h"

static simdev *load(const char *dir, const char *name)
{
    char path[4096];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    uint8_t *img = read_file(path, &len);
    ck_assert_msg(img != NULL, "cannot read %s", path);
    ck_assert_uint_eq(len % 256, 0);
    simdev *sd = sim_from(img, 256, (uint32_t)(len / 256));
    free(img);
    return sd;
}

static ekv_store *open_one(simdev *sd, uint32_t flags)
{
    ekv_device *d = &sd->dev;
    ekv_store *s = NULL;
    ekv_options o = {.flags = flags};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    return s;
}

static int shared_present(void)
{
    struct stat st;
    return stat(SHARED_COMPAT_DIR, &st) == 0;
}

static const char *dirs[2] = {TESTDATA_DIR, SHARED_COMPAT_DIR};

static void check_contents(const char *dir)
{
    simdev *sd = load(dir, "small_value.bin");
    ekv_store *s = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_str_eq(get_s(s, "hello"), "world");
    ekv_key_info ki;
    ck_assert_int_eq(ekv_stat_key(s, "hello", 5, &ki), 0);
    ck_assert_uint_eq(ki.generation, 1);
    ekv_close(s);
    sim_free(sd);

    sd = load(dir, "large_value.bin");
    s = open_one(sd, EKV_OPEN_RDONLY);
    uint8_t v[600];
    size_t len = 0;
    ck_assert_int_eq(ekv_get(s, "bigkey", 6, v, sizeof(v), &len), 0);
    ck_assert_uint_eq(len, 500);
    for (int i = 0; i < 500; i++)
        ck_assert_uint_eq(v[i], i % 256);
    ekv_close(s);
    sim_free(sd);

    sd = load(dir, "multi_key.bin");
    s = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_str_eq(get_s(s, "alpha"), "value-alpha");
    ck_assert_str_eq(get_s(s, "beta"), "value-beta");
    ck_assert_str_eq(get_s(s, "gamma"), "value-gamma");
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.records, 3);
    ekv_close(s);
    sim_free(sd);
}

START_TEST(fixture_contents_read_back)
{
    if (_i == 1 && !shared_present()) {
        ck_assert_msg(getenv("CI") == NULL || strcmp(getenv("CI"), "true") != 0,
                      "../shared/compat is missing under CI");
        printf("SKIP: %s not present\n", SHARED_COMPAT_DIR);
        return;
    }
    check_contents(dirs[_i]);
}
END_TEST

START_TEST(partial_write_recovers_to_generation_one)
{
    if (_i == 1 && !shared_present())
        return;
    simdev *sd = load(dirs[_i], "recovery/partial_write.bin");
    uint8_t before[4096];
    memcpy(before, sim_image(sd), sizeof(before));

    /* Read-only: the right value, and not a byte written. */
    ekv_store *s = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_str_eq(get_s(s, "power"), "gen1-data");
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_mem_eq(sim_image(sd), before, sizeof(before));
    ekv_close(s);

    s = open_one(sd, 0);
    ck_assert_str_eq(get_s(s, "power"), "gen1-data");
    uint8_t zero[256] = {0};
    ck_assert_mem_eq(sim_image(sd) + 2 * 256, zero, 256);
    ck_assert_mem_eq(sim_image(sd) + 3 * 256, zero, 256);
    ck_assert_mem_eq(sim_image(sd) + 256, before + 256, 256);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(partial_erase_recovers_and_frees_orphan)
{
    if (_i == 1 && !shared_present())
        return;
    simdev *sd = load(dirs[_i], "recovery/partial_erase.bin");
    ekv_store *s = open_one(sd, 0);
    ck_assert_str_eq(get_s(s, "power"), "gen2-data");
    uint8_t zero[256] = {0};
    ck_assert_mem_eq(sim_image(sd) + 256, zero, 256);
    ekv_replica_report rep;
    ekv_replica_report_get(s, 0, &rep);
    ck_assert_uint_eq(rep.erased_blocks, 1);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(built_images_equal_go_images)
{
    if (!shared_present()) {
        ck_assert_msg(getenv("CI") == NULL || strcmp(getenv("CI"), "true") != 0,
                      "../shared/compat is missing under CI");
        printf("SKIP: %s not present\n", SHARED_COMPAT_DIR);
        return;
    }
    for (size_t i = 0; i < fixture_count; i++) {
        char path[4096];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", SHARED_COMPAT_DIR,
                 fixtures[i].path);
        uint8_t *ref = read_file(path, &len);
        uint8_t *img = fixture_build(i);
        ck_assert_ptr_nonnull(ref);
        ck_assert_ptr_nonnull(img);
        ck_assert_uint_eq(len, fixtures[i].block_count * 256u);
        ck_assert_msg(memcmp(ref, img, len) == 0, "%s differs",
                      fixtures[i].path);
        free(ref);
        free(img);
    }
}
END_TEST

START_TEST(recovery_of_go_image_matches_go_recovery_twice)
{
    /* Recovering an already-recovered image changes nothing. */
    simdev *sd = load(TESTDATA_DIR, "recovery/partial_write.bin");
    ekv_store *s = open_one(sd, 0);
    ekv_close(s);
    uint8_t once[4096];
    memcpy(once, sim_image(sd), sizeof(once));
    sim_reset_faults(sd);
    s = open_one(sd, 0);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_mem_eq(sim_image(sd), once, sizeof(once));
    ekv_close(s);
    sim_free(sd);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("compat");
    TCase *tc = tcase_create("compat");
    tcase_add_loop_test(tc, fixture_contents_read_back, 0, 2);
    tcase_add_loop_test(tc, partial_write_recovers_to_generation_one, 0, 2);
    tcase_add_loop_test(tc, partial_erase_recovers_and_frees_orphan, 0, 2);
    tcase_add_test(tc, built_images_equal_go_images);
    tcase_add_test(tc, recovery_of_go_image_matches_go_recovery_twice);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
