/*
 * The window of the file device (ekv_file_open_ex with offset/length): a
 * store inside a larger file (a flash dump). Geometry from the header at
 * the offset, windows that do not fit, no byte outside the window ever
 * written, the file never resized, and byte-range locks that keep two
 * writers of one window apart while two windows of one file coexist.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedkv_file.h"
#include "helpers.h"

#define BS 256u
#define BC 16u
#define OFF 4096u
#define FILESZ (OFF + 2 * BS * BC + 1024u)

static char dir[64];
static char path[128];
static uint8_t orig[FILESZ];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ekv-window-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/dump", dir);
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 7 + 3);
    memset(orig + OFF, 0xff, 2 * BS * BC); /* two erased partitions */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, orig, sizeof(orig)), (ssize_t)sizeof(orig));
    close(fd);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static void read_file(uint8_t *buf)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, buf, FILESZ), (ssize_t)FILESZ);
    close(fd);
}

/* Everything outside [off, off+len) is as setup wrote it. */
static void outside_unchanged(uint64_t off, uint64_t len)
{
    static uint8_t now[FILESZ];
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, FILESZ);
    read_file(now);
    ck_assert(memcmp(now, orig, off) == 0);
    ck_assert(memcmp(now + off + len, orig + off + len,
                     FILESZ - off - len) == 0);
}

static ekv_device *open_win(uint64_t off, uint64_t len, uint32_t bs,
                            uint32_t bc, uint32_t flags, int *err)
{
    ekv_file_options o = {0};
    o.flags = flags;
    o.offset = off;
    o.length = len;
    o.block_size = bs;
    o.block_count = bc;
    ekv_device *d = NULL;
    *err = ekv_file_open_ex(&d, path, &o);
    return d;
}

START_TEST(format_put_delete_stay_in_the_window)
{
    int err;
    ekv_device *d = open_win(OFF, BS * BC, BS, 0, 0, &err);
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(d->block_count, BC);
    ck_assert_uint_eq(ekv_file_offset(d), OFF);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_store *s = NULL;
    ekv_options o = {0};
    o.flags = EKV_OPEN_ERASE_AUTO;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ck_assert_int_eq(put_s(s, "k", "v2"), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(put_s(s, "j", "w"), 0);
    ekv_close(s);
    ekv_device_close(d);
    outside_unchanged(OFF, BS * BC);

    /* Reopen with the geometry from the header at the offset. */
    d = open_win(OFF, 0, 0, 0, EKV_FILE_RDONLY, &err);
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(d->block_size, BS);
    ck_assert_uint_eq(d->block_count, BC);
    o.flags = EKV_OPEN_RDONLY;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_str_eq(get_s(s, "j"), "w");
    ekv_close(s);
    ekv_device_close(d);
}
END_TEST

START_TEST(windows_that_do_not_fit_are_edom)
{
    int err;
    ekv_device *d = open_win(FILESZ, BS * 2, BS, 0, 0, &err);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(err, EKV_EDOM); /* past the end */
    d = open_win(FILESZ - BS, BS * 4, BS, 0, 0, &err);
    ck_assert_int_eq(err, EKV_EDOM); /* ends past the end */
    d = open_win(OFF, BS * 2 + 1, BS, 0, 0, &err);
    ck_assert_int_eq(err, EKV_EDOM); /* not whole blocks */
    d = open_win(OFF, 0, 0, 0, 0, &err);
    ck_assert_int_eq(err, EKV_EBADHDR); /* erased: no header there */
    d = open_win(OFF, BS * BC, BS, BC,
                 EKV_FILE_CREATE, &err); /* create inside: allowed */
    ck_assert_int_eq(err, 0);
    ekv_device_close(d);
    outside_unchanged(OFF, BS * BC);
}
END_TEST

START_TEST(device_never_writes_past_its_window)
{
    int err;
    ekv_device *d = open_win(OFF, BS * BC, BS, 0, 0, &err);
    ck_assert_int_eq(err, 0);
    uint8_t blk[BS];
    memset(blk, 0x5a, sizeof(blk));
    ck_assert_int_eq(d->write(d, BC, blk), EKV_EINVAL);
    ck_assert_int_eq(d->write(d, BC - 1, blk), 0);
    ekv_device_close(d);
    outside_unchanged(OFF, BS * BC);
}
END_TEST

START_TEST(two_windows_of_one_file_coexist_one_window_has_one_writer)
{
    int err, err2;
    ekv_device *a = open_win(OFF, BS * BC, BS, 0, 0, &err);
    ck_assert_int_eq(err, 0);
    ekv_device *b = open_win(OFF + BS * BC, BS * BC, BS, 0, 0, &err2);
    ck_assert_int_eq(err2, 0);
    ekv_device *c = open_win(OFF + BS, BS * 2, BS, 0, 0, &err);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err, EKV_EBUSY); /* overlaps a's window */
    c = open_win(OFF, BS * BC, BS, 0, EKV_FILE_RDONLY, &err);
    ck_assert_int_eq(err, EKV_EBUSY); /* a reader of a writer's bytes */
    /* The two replicas in one file form one store. */
    ekv_device *devs[2] = {a, b};
    ck_assert_int_eq(ekv_format(devs, 2, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, devs, 2, NULL), 0);
    ck_assert_int_eq(put_s(s, "k", "both"), 0);
    ekv_close(s);
    ekv_device_close(a);
    ekv_device_close(b);
    outside_unchanged(OFF, 2 * BS * BC);
    /* A whole-file writer is kept out while a window is in use. */
    a = open_win(OFF, BS * BC, BS, 0, EKV_FILE_RDONLY, &err);
    ck_assert_int_eq(err, 0);
    ekv_device *w = NULL;
    ck_assert_int_eq(ekv_file_open(&w, path, 0, BS, 0), EKV_EBUSY);
    ekv_device_close(a);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("filewindow");
    TCase *tc = tcase_create("filewindow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, format_put_delete_stay_in_the_window);
    tcase_add_test(tc, windows_that_do_not_fit_are_edom);
    tcase_add_test(tc, device_never_writes_past_its_window);
    tcase_add_test(tc, two_windows_of_one_file_coexist_one_window_has_one_writer);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
