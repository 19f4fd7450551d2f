/*
 * The POSIX image-file device (include/embedkv_file.h): creating and
 * opening images, geometry from the header, the errors for files that are
 * not images, locking against a second opener, read-only devices that
 * cannot write, and persistence across close and reopen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embedkv_file.h"
#include "helpers.h"

#define BS 256u
#define BC 32u

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ekv-filedev-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/img", dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static void write_bytes(const char *p, const void *buf, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static off_t file_size(const char *p)
{
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_size;
}

static uint32_t file_crc(const char *p)
{
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    uint8_t buf[4096];
    uint32_t c = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        c = ekv_crc32(c, buf, (size_t)n);
    close(fd);
    return c;
}

/* Create a formatted image holding "k" -> "v". */
static void make_image(void)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    ekv_device_close(d);
}

START_TEST(create_makes_a_file_of_the_given_geometry)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_uint_eq(d->block_size, BS);
    ck_assert_uint_eq(d->block_count, BC);
    ck_assert_ptr_nonnull(d->write);
    ck_assert_str_eq(ekv_file_path(d), path);
    ck_assert_int_eq(ekv_file_is_rdonly(d), 0);
    ck_assert_int_eq(file_size(path), BS * BC);
    ekv_device_close(d);
}
END_TEST

START_TEST(create_over_a_file_of_another_size_resizes_it)
{
    uint8_t junk[100] = {0};
    write_bytes(path, junk, sizeof(junk));
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_int_eq(file_size(path), BS * BC);
    ekv_device_close(d);
}
END_TEST

START_TEST(create_needs_geometry_and_a_writable_open)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, 0, BC),
                     EKV_EINVAL);
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, 0),
                     EKV_EINVAL);
    ck_assert_int_eq(ekv_file_open(&d, path,
                                   EKV_FILE_CREATE | EKV_FILE_RDONLY, BS, BC),
                     EKV_EINVAL);
    ck_assert_int_eq(ekv_file_open(NULL, path, 0, 0, 0), EKV_EINVAL);
    ck_assert_int_eq(ekv_file_open(&d, NULL, 0, 0, 0), EKV_EINVAL);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(open_takes_block_size_from_header_and_count_from_size)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, 512, 10), 0);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_device_close(d);
    d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    ck_assert_uint_eq(d->block_size, 512);
    ck_assert_uint_eq(d->block_count, 10);
    ekv_device_close(d);
    /* An expected count that matches is fine, another is not. */
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 10), 0);
    ekv_device_close(d);
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 11), EKV_EDOM);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(missing_file_is_enoent)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), EKV_ENOENT);
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0),
                     EKV_ENOENT);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(file_that_is_not_an_image_is_ebadhdr)
{
    char text[BS * 4];
    memset(text, 'x', sizeof(text));
    write_bytes(path, text, sizeof(text));
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), EKV_EBADHDR);
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0),
                     EKV_EBADHDR);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(image_with_a_damaged_header_opens_but_store_open_is_ebadhdr)
{
    /* The device only needs the block size; the store judges the rest. */
    make_image();
    int fd = open(path, O_RDWR);
    uint8_t b = 0x77;
    ck_assert_int_eq(pwrite(fd, &b, 1, 40), 1);
    close(fd);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), EKV_EBADHDR);
    ekv_device_close(d);
}
END_TEST

START_TEST(size_that_is_not_whole_blocks_is_edom)
{
    make_image();
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "tail", 4), 4);
    close(fd);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), EKV_EDOM);
    ck_assert_int_eq(ekv_file_open(&d, path, 0, BS, 0), EKV_EDOM);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(empty_file_is_edom)
{
    write_bytes(path, "", 0);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), EKV_EDOM);
    ck_assert_int_eq(ekv_file_open(&d, path, 0, BS, 0), EKV_EDOM);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(image_shorter_than_its_header_says_fails_store_open_edom)
{
    make_image();
    ck_assert_int_eq(truncate(path, BS * (BC - 4)), 0);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    ck_assert_uint_eq(d->block_count, BC - 4);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), EKV_EDOM);
    ekv_device_close(d);
}
END_TEST

START_TEST(directory_is_refused)
{
    ekv_device *d = NULL;
    int rc = ekv_file_open(&d, dir, EKV_FILE_RDONLY, BS, 0);
    ck_assert_int_eq(rc, -EISDIR);
    ck_assert_ptr_null(d);
    ck_assert_str_ne(ekv_strerror(rc), "unknown error");
}
END_TEST

START_TEST(second_writable_open_is_ebusy)
{
    make_image();
    ekv_device *a = NULL, *b = NULL;
    ck_assert_int_eq(ekv_file_open(&a, path, 0, 0, 0), 0);
    /* flock belongs to the open file description: a second open in this
     * very process conflicts like another process would. */
    ck_assert_int_eq(ekv_file_open(&b, path, 0, 0, 0), EKV_EBUSY);
    ck_assert_int_eq(ekv_file_open(&b, path, EKV_FILE_RDONLY, 0, 0),
                     EKV_EBUSY);
    ck_assert_ptr_null(b);
    ekv_device_close(a);
    /* Released on close. */
    ck_assert_int_eq(ekv_file_open(&b, path, 0, 0, 0), 0);
    ekv_device_close(b);
}
END_TEST

START_TEST(readers_share_and_keep_writers_out)
{
    make_image();
    ekv_device *a = NULL, *b = NULL, *w = NULL;
    ck_assert_int_eq(ekv_file_open(&a, path, EKV_FILE_RDONLY, 0, 0), 0);
    ck_assert_int_eq(ekv_file_open(&b, path, EKV_FILE_RDONLY, 0, 0), 0);
    ck_assert_int_eq(ekv_file_open(&w, path, 0, 0, 0), EKV_EBUSY);
    ekv_device_close(a);
    ekv_device_close(b);
    ck_assert_int_eq(ekv_file_open(&w, path, 0, 0, 0), 0);
    ekv_device_close(w);
}
END_TEST

START_TEST(nolock_opens_a_locked_image)
{
    make_image();
    ekv_device *a = NULL, *b = NULL;
    ck_assert_int_eq(ekv_file_open(&a, path, 0, 0, 0), 0);
    ck_assert_int_eq(ekv_file_open(&b, path, EKV_FILE_NOLOCK, 0, 0), 0);
    ekv_device_close(b);
    ekv_device_close(a);
}
END_TEST

START_TEST(lock_holds_against_another_process)
{
    make_image();
    ekv_device *a = NULL;
    ck_assert_int_eq(ekv_file_open(&a, path, 0, 0, 0), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ekv_device *b = NULL;
        _exit(ekv_file_open(&b, path, EKV_FILE_RDONLY, 0, 0) == EKV_EBUSY
                  ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ekv_device_close(a);
}
END_TEST

START_TEST(read_only_device_has_no_write_and_store_never_writes)
{
    make_image();
    const uint32_t before = file_crc(path);
    struct stat st0;
    ck_assert_int_eq(stat(path, &st0), 0);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0), 0);
    ck_assert_ptr_null(d->write);
    ck_assert_int_eq(ekv_file_is_rdonly(d), 1);
    /* A writable store cannot be opened over it... */
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), EKV_EROFS);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), EKV_EROFS);
    /* ...a read-only one can, and reads. */
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ck_assert_int_eq(put_s(s, "k", "w"), EKV_EROFS);
    ck_assert_int_eq(ekv_delete(s, "k", 1), EKV_EROFS);
    ekv_close(s);
    ekv_device_close(d);
    ck_assert_uint_eq(file_crc(path), before);
    struct stat st1;
    ck_assert_int_eq(stat(path, &st1), 0);
    ck_assert(st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
              st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
}
END_TEST

START_TEST(read_only_recovery_of_a_file_writes_nothing)
{
    make_image();
    /* Garbage for a writable recovery to erase. */
    int fd = open(path, O_RDWR);
    uint8_t junk[BS];
    memset(junk, 0x42, BS);
    ck_assert_int_eq(pwrite(fd, junk, BS, (off_t)BS * 9), (ssize_t)BS);
    close(fd);
    const uint32_t before = file_crc(path);
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0), 0);
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ekv_close(s);
    ekv_device_close(d);
    ck_assert_uint_eq(file_crc(path), before);
}
END_TEST

START_TEST(data_persists_across_close_and_reopen)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    uint8_t v[1000];
    fill_pattern(v, sizeof(v), 5);
    ck_assert_int_eq(ekv_put(s, "big", 3, v, sizeof(v)), 0);
    ck_assert_int_eq(put_s(s, "small", "s"), 0);
    ck_assert_int_eq(put_s(s, "gone", "g"), 0);
    ck_assert_int_eq(ekv_delete(s, "gone", 4), 0);
    ekv_close(s);
    ekv_device_close(d);

    d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    assert_value(s, "big", 3, v, sizeof(v));
    ck_assert_str_eq(get_s(s, "small"), "s");
    ck_assert_ptr_null(get_s(s, "gone"));
    ekv_close(s);
    ekv_device_close(d);
}
END_TEST

START_TEST(nosync_device_still_reads_back_what_it_wrote)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path,
                                   EKV_FILE_CREATE | EKV_FILE_NOSYNC, BS, BC),
                     0);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    ekv_close(s);
    ekv_device_close(d);
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0), 0);
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_str_eq(get_s(s, "k"), "v");
    ekv_close(s);
    ekv_device_close(d);
}
END_TEST

START_TEST(device_refuses_blocks_past_the_end)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    uint8_t buf[BS] = {0};
    ck_assert_int_eq(d->read(d, BC, buf), EKV_EINVAL);
    ck_assert_int_eq(d->write(d, BC, buf), EKV_EINVAL);
    ck_assert_int_eq(d->read(d, BC - 1, buf), 0);
    ck_assert_int_eq(d->write(d, BC - 1, buf), 0);
    ck_assert_int_eq(d->flush(d), 0);
    ck_assert_int_eq(file_size(path), BS * BC);
    ekv_device_close(d);
}
END_TEST

/* The checks of a mode 0444 file, run by a user the mode applies to. */
static int check_read_only_file(void)
{
    ekv_device *d = NULL;
    if (ekv_file_open(&d, path, 0, 0, 0) != EKV_EROFS || d)
        return 1;
    if (ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0) != 0)
        return 2;
    ekv_device_close(d);
    return 0;
}

START_TEST(writable_open_of_a_read_only_file_is_erofs)
{
    make_image();
    ck_assert_int_eq(chmod(path, 0444), 0);
    if (geteuid() != 0) {
        ck_assert_int_eq(check_read_only_file(), 0);
        return;
    }
    /* Root may write a 0444 file anyway: check as "nobody" in a child. */
    ck_assert_int_eq(chmod(dir, 0755), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(77);
        _exit(check_read_only_file());
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        printf("SKIP writable_open_of_a_read_only_file_is_erofs: running as "
               "root and cannot drop to uid 65534 to test the file mode\n");
        return;
    }
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(file_replicas_work_as_replicas)
{
    char path2[160];
    snprintf(path2, sizeof(path2), "%s/img2", dir);
    ekv_device *d[2] = {NULL, NULL};
    ck_assert_int_eq(ekv_file_open(&d[0], path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_int_eq(ekv_file_open(&d[1], path2, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_int_eq(ekv_format(d, 2, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, d, 2, NULL), 0);
    ck_assert_int_eq(put_s(s, "k", "both"), 0);
    ekv_close(s);
    ekv_device_close(d[0]);
    ekv_device_close(d[1]);
    /* Each file alone holds the key. */
    ck_assert_int_eq(ekv_file_open(&d[0], path2, EKV_FILE_RDONLY, 0, 0), 0);
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    ck_assert_int_eq(ekv_open(&s, d, 1, &o), 0);
    ck_assert_str_eq(get_s(s, "k"), "both");
    ekv_close(s);
    ekv_device_close(d[0]);
    unlink(path2);
}
END_TEST

/* ---- multi-block reads and holes ------------------------------------- */

START_TEST(read_blocks_gives_what_block_reads_give)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, BC), 0);
    ck_assert_ptr_nonnull(d->read_blocks);
    uint8_t blk[BS], all[BS * BC], one[BS];
    for (uint32_t b = 0; b < BC; b += 3) {
        memset(blk, (int)(b * 7 + 1), sizeof(blk));
        ck_assert_int_eq(d->write(d, b, blk), 0);
    }
    ck_assert_int_eq(d->read_blocks(d, 0, BC, all), 0);
    for (uint32_t b = 0; b < BC; b++) {
        ck_assert_int_eq(d->read(d, b, one), 0);
        ck_assert_mem_eq(all + (size_t)b * BS, one, BS);
    }
    ck_assert_int_eq(d->read_blocks(d, 5, 7, all), 0);
    ck_assert_mem_eq(all, all + 0, BS); /* filled, and: */
    ck_assert_int_eq(d->read(d, 6, one), 0);
    ck_assert_mem_eq(all + BS, one, BS);
    /* Past the end, or wrapping around: refused, nothing read. */
    ck_assert_int_eq(d->read_blocks(d, BC - 2, 3, all), EKV_EINVAL);
    ck_assert_int_eq(d->read_blocks(d, 1, 0xffffffffu, all), EKV_EINVAL);
    ck_assert_int_eq(d->read_blocks(d, BC, 1, all), EKV_EINVAL);
    ekv_device_close(d);
}
END_TEST

/* The device's own preads, counted by a link-time wrapper (tests/
 * meson.build links this test with --wrap for both names glibc may use).
 * The process's read count in /proc/self/io would also count what a
 * wrapper such as valgrind reads for itself. */
static uint64_t preads, pread_bytes;

/* One wrapper for each name: glibc calls pread64 where off_t is 64-bit
 * by _FILE_OFFSET_BITS, pread elsewhere. */
#define COUNTING_PREAD(name, off_type)                                   \
    ssize_t __real_##name(int fd, void *buf, size_t len, off_type off);  \
    ssize_t __wrap_##name(int fd, void *buf, size_t len, off_type off);  \
    ssize_t __wrap_##name(int fd, void *buf, size_t len, off_type off)   \
    {                                                                    \
        ssize_t n = __real_##name(fd, buf, len, off);                    \
        preads++;                                                        \
        pread_bytes += n > 0 ? (uint64_t)n : 0;                          \
        return n;                                                        \
    }
COUNTING_PREAD(pread, off_t)
COUNTING_PREAD(pread64, off64_t)

/* Bytes the device has read with pread so far. */
static uint64_t bytes_read(void)
{
    return pread_bytes;
}

/* Whether this file system reports holes (SEEK_HOLE before the end of a
 * file with a hole). */
static int has_holes(const char *p)
{
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return 0;
    off_t h = lseek(fd, 0, SEEK_HOLE);
    off_t end = lseek(fd, 0, SEEK_END);
    close(fd);
    return h >= 0 && h < end;
}

static int skip_without_holes(const char *test)
{
    if (has_holes(path))
        return 0;
    ck_assert_msg(!getenv("CI") || strcmp(getenv("CI"), "true") != 0,
                  "%s: the file system of /tmp reports no holes", test);
    printf("SKIP %s: the file system of /tmp reports no holes "
           "(SEEK_HOLE)\n", test);
    return 1;
}

/* A 1 MiB sparse image: data in block 0 and blocks 2048..2063 only. */
#define SP_BC 4096u
static ekv_device *sparse_image(void)
{
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, SP_BC), 0);
    uint8_t blk[BS];
    memset(blk, 0x11, sizeof(blk));
    ck_assert_int_eq(d->write(d, 0, blk), 0);
    for (uint32_t b = 2048; b < 2064; b++)
        ck_assert_int_eq(d->write(d, b, blk), 0);
    ck_assert_int_eq(d->flush(d), 0);
    return d;
}

START_TEST(holes_read_as_zeros_and_zero_run_names_them)
{
    ekv_device *d = sparse_image();
    if (skip_without_holes("holes_read_as_zeros_and_zero_run_names_them")) {
        ekv_device_close(d);
        return;
    }
    ck_assert_ptr_nonnull(d->zero_run);
    /* File systems map holes in pages: block 0's page holds data. */
    uint32_t z = d->zero_run(d, 64, SP_BC - 64);
    ck_assert_uint_eq(z, 2048 - 64);
    ck_assert_uint_eq(d->zero_run(d, 64, 10), 10);
    ck_assert_uint_eq(d->zero_run(d, 2048, SP_BC - 2048), 0);
    ck_assert_uint_eq(d->zero_run(d, 2064, SP_BC - 2064), SP_BC - 2064);
    ck_assert_uint_eq(d->zero_run(d, 0, SP_BC), 0);
    /* A batch across hole and data: zeros, then the data. */
    static uint8_t buf[BS * 64];
    memset(buf, 0xee, sizeof(buf));
    uint64_t before = bytes_read();
    ck_assert_int_eq(d->read_blocks(d, 2048 - 32, 64, buf), 0);
    /* Only the 16 data blocks were read. */
    ck_assert_uint_eq(bytes_read() - before, 16 * BS);
    for (size_t i = 0; i < 32 * BS; i++)
        ck_assert_uint_eq(buf[i], 0);
    for (size_t i = 32 * BS; i < 48 * BS; i++)
        ck_assert_uint_eq(buf[i], 0x11);
    for (size_t i = 48 * BS; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0);
    ekv_device_close(d);
}
END_TEST

/* The device remembers where the data is; a write into a hole must make
 * it forget, or a later recovery would take the new block as free. */
START_TEST(write_into_a_hole_is_seen_by_later_batches)
{
    ekv_device *d = sparse_image();
    if (skip_without_holes("write_into_a_hole_is_seen_by_later_batches")) {
        ekv_device_close(d);
        return;
    }
    ck_assert_uint_eq(d->zero_run(d, 100, SP_BC - 100), 2048 - 100);
    uint8_t blk[BS], buf[BS * 4];
    memset(blk, 0x22, sizeof(blk));
    ck_assert_int_eq(d->write(d, 1000, blk), 0);
    /* The hole now ends at the file system block holding block 1000. */
    uint32_t z = d->zero_run(d, 100, SP_BC - 100);
    ck_assert_uint_le(z, 1000 - 100);
    ck_assert_uint_ge(z, 1000 - 100 - 256);
    ck_assert_uint_eq(d->zero_run(d, 1000, 4), 0);
    ck_assert_int_eq(d->read_blocks(d, 999, 4, buf), 0);
    ck_assert_mem_eq(buf + BS, blk, BS);
    ekv_device_close(d);
}
END_TEST

/* A window inside a sparse file: holes are found relative to the window,
 * and data outside it never counts. */
START_TEST(holes_are_found_inside_a_window)
{
    ekv_device *d = sparse_image(); /* data: blocks 0..15, 2048..2063 */
    ekv_device_close(d);
    if (skip_without_holes("holes_are_found_inside_a_window"))
        return;
    ekv_file_options o = {.block_size = BS, .offset = 1024 * BS,
                          .length = 2048 * BS};
    ck_assert_int_eq(ekv_file_open_ex(&d, path, &o), 0);
    ck_assert_uint_eq(d->block_count, 2048);
    /* Window blocks 0..1023 are file blocks 1024..2047: a hole. */
    ck_assert_uint_eq(d->zero_run(d, 0, 2048), 1024);
    ck_assert_uint_eq(d->zero_run(d, 1024, 1024), 0);
    ck_assert_uint_eq(d->zero_run(d, 1040, 1008), 1008);
    static uint8_t buf[BS * 32];
    ck_assert_int_eq(d->read_blocks(d, 1008, 32, buf), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], i < 16 * BS ? 0 : 0x11);
    ekv_device_close(d);
}
END_TEST

/* A 4 GiB image of 256-byte blocks holding one key: opening it reads the
 * data blocks only, not the 16M blocks of holes. The verdict is the
 * bytes read, never the time. */
START_TEST(sparse_4gib_image_opens_reading_only_its_data)
{
    const uint32_t bc = 16u * 1024 * 1024;
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ekv_device_close(d);
    if (skip_without_holes("sparse_4gib_image_opens_reading_only_its_data"))
        return;
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    ck_assert_int_eq(put_s(s, "only", "one key"), 0);
    ekv_close(s);
    ekv_device_close(d);

    uint64_t before = bytes_read();
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, 0, 0), 0);
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    uint64_t after = bytes_read();
    ck_assert_str_eq(get_s(s, "only"), "one key");
    ekv_stats st;
    ck_assert_int_eq(ekv_stats_get(s, &st), 0);
    ck_assert_uint_eq(st.records, 1);
    ck_assert_uint_eq(st.free_blocks, bc - 2);
    ekv_close(s);
    ekv_device_close(d);
    /* The header, the record's page: a few KiB, not 4 GiB. */
    ck_assert_msg(after - before < 1024 * 1024,
                  "open read %" PRIu64 " bytes", after - before);

    /* A writable open and recovery: the same, and it writes nothing. */
    before = bytes_read();
    ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), 0);
    after = bytes_read();
    ck_assert_str_eq(get_s(s, "only"), "one key");
    ekv_close(s);
    ekv_device_close(d);
    ck_assert_msg(after > before && after - before < 1024 * 1024,
                  "open read %" PRIu64 " bytes", after - before);
}
END_TEST

/* And its pwrites; fail_pwrite, when set, makes them fail with that
 * errno. */
static uint64_t pwrites;
static int fail_pwrite;
static uint64_t fail_after = UINT64_MAX; /* pwrites fail (EIO) past this */

/* As for pread. */
#define COUNTING_PWRITE(name, off_type)                                      \
    ssize_t __real_##name(int fd, const void *buf, size_t len, off_type off); \
    ssize_t __wrap_##name(int fd, const void *buf, size_t len, off_type off); \
    ssize_t __wrap_##name(int fd, const void *buf, size_t len, off_type off)  \
    {                                                                        \
        if (++pwrites > fail_after && !fail_pwrite)                          \
            fail_pwrite = EIO;                                               \
        if (fail_pwrite) {                                                   \
            errno = fail_pwrite;                                             \
            return -1;                                                       \
        }                                                                    \
        return __real_##name(fd, buf, len, off);                             \
    }
COUNTING_PWRITE(pwrite, off_t)
COUNTING_PWRITE(pwrite64, off64_t)

/* And the ranges it asks the kernel to start writing out. */
static uint64_t syncs, synced_bytes;
int __real_sync_file_range(int fd, off64_t off, off64_t len, unsigned flags);
int __wrap_sync_file_range(int fd, off64_t off, off64_t len, unsigned flags);
int __wrap_sync_file_range(int fd, off64_t off, off64_t len, unsigned flags)
{
    syncs++;
    synced_bytes += (uint64_t)len;
    ck_assert_uint_eq(flags, SYNC_FILE_RANGE_WRITE); /* never waits */
    return __real_sync_file_range(fd, off, len, flags);
}

static uint64_t read_calls(void)
{
    return preads;
}

static void pattern(uint8_t *b, uint32_t block, uint8_t salt)
{
    for (uint32_t i = 0; i < BS; i++)
        b[i] = (uint8_t)(block * 7 + i + salt);
}

/* A run of single-block reads (a long value's chunks) is read ahead in
 * large preads: far fewer read calls than blocks, the same bytes, and a
 * write between two reads of the run is seen by the next one; a repeated
 * read of a block (a retry) reads the file again. */
START_TEST(runs_of_block_reads_are_read_ahead_and_see_writes)
{
    const uint32_t bc = 600;
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
    uint8_t b[BS], want[BS];
    for (uint32_t i = 0; i < bc; i++) {
        pattern(b, i, 0);
        ck_assert_int_eq(d->write(d, i, b), 0);
    }
    ck_assert_int_eq(d->flush(d), 0);
    uint64_t before = read_calls();
    for (uint32_t i = 1; i < bc; i++) {
        ck_assert_int_eq(d->read(d, i, b), 0);
        pattern(want, i, 0);
        ck_assert_mem_eq(b, want, BS);
    }
    uint64_t calls = read_calls() - before;
    ck_assert_msg(calls > 0 && calls < 60,
                  "%" PRIu64 " read calls for %u blocks", calls, bc - 1);

    /* A write inside the window between two reads of a run. */
    ck_assert_int_eq(d->read(d, 100, b), 0);
    ck_assert_int_eq(d->read(d, 101, b), 0);
    pattern(want, 105, 9);
    ck_assert_int_eq(d->write(d, 105, want), 0);
    for (uint32_t i = 102; i <= 110; i++) {
        ck_assert_int_eq(d->read(d, i, b), 0);
        pattern(want, i, i == 105 ? 9 : 0);
        ck_assert_mem_eq(b, want, BS);
    }
    /* The file changed behind the device (as a flaky read would look):
     * a second read of the same block goes to the file. */
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    pattern(want, 111, 5);
    ck_assert_int_eq(d->read(d, 111, b), 0);
    ck_assert_int_eq(pwrite(fd, want, BS, (off_t)111 * BS), (ssize_t)BS);
    close(fd);
    ck_assert_int_eq(d->read(d, 111, b), 0);
    ck_assert_mem_eq(b, want, BS);
    ekv_device_close(d);
}
END_TEST

/* A run of writes longer than the gathering buffer (a large value) has
 * its full buffers handed to the disk without waiting, 1 MiB at a time
 * (four buffers of 256 KiB: one doorbell per MiB); short runs, what a
 * flush already covered, and a device opened with EKV_FILE_NOSYNC never
 * start one. */
static void file_block(uint32_t bl, uint8_t *out);

static void write_run(ekv_device *d, uint32_t first, uint32_t n)
{
    uint8_t b[BS];
    for (uint32_t i = first; i < first + n; i++) {
        pattern(b, i, 1);
        ck_assert_int_eq(d->write(d, i, b), 0);
    }
}

START_TEST(long_write_runs_start_writeback_early)
{
    const uint32_t run = 256u * 1024u / BS, bc = 9 * run + 10;
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
    uint64_t s0 = syncs, b0 = synced_bytes;
    write_run(d, 1, run); /* one full buffer: written at the flush */
    ck_assert_int_eq(d->flush(d), 0);
    ck_assert_uint_eq(syncs, s0);
    /* Nine full buffers, then a tail: the first eight go in two starts
     * of four buffers; the ninth and the tail wait for the flush. */
    write_run(d, 1, 9 * run + 5);
    ck_assert_uint_eq(syncs - s0, 2);
    ck_assert_uint_eq(synced_bytes - b0, 8ull * run * BS);
    ck_assert_int_eq(d->flush(d), 0);
    ck_assert_uint_eq(syncs - s0, 2);
    /* Three buffers, a flush, two more right after them: the flush
     * covered the three, so the two alone are not worth a start. */
    write_run(d, 1, 3 * run + 1);
    ck_assert_int_eq(d->flush(d), 0);
    write_run(d, 3 * run + 1, 2 * run + 1);
    ck_assert_int_eq(d->flush(d), 0);
    ck_assert_uint_eq(syncs - s0, 2);
    /* What was handed over is what the file holds. */
    uint8_t b[BS], want[BS];
    for (uint32_t i = 1; i < 9 * run + 6; i += 97) {
        file_block(i, b);
        pattern(want, i, 1);
        ck_assert_mem_eq(b, want, BS);
    }
    ekv_device_close(d);

    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_NOSYNC, BS, bc), 0);
    s0 = syncs;
    write_run(d, 1, 9 * run + 5);
    ck_assert_int_eq(d->flush(d), 0);
    ck_assert_uint_eq(syncs, s0);
    ekv_device_close(d);
}
END_TEST

/* Block bl of the file as it is now (not as the device sees it). */
static void file_block(uint32_t bl, uint8_t *out)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, out, BS, (off_t)bl * BS), (ssize_t)BS);
    close(fd);
}

/* Writes of consecutive blocks are gathered into large pwrites: they
 * reach the file at the flush (or when the run breaks, or at close), the
 * device reads them back before that, and a gathered write that fails
 * makes the flush fail. */
START_TEST(consecutive_writes_are_gathered_and_reach_the_file_by_the_flush)
{
    const uint32_t bc = 2100; /* more than one run of 256 KiB */
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
    uint8_t b[BS], want[BS], zero[BS] = {0};
    uint64_t w0 = pwrites;
    for (uint32_t i = 1; i < bc; i++) {
        pattern(b, i, 3);
        ck_assert_int_eq(d->write(d, i, b), 0);
    }
    /* Seen by the device's reads, batches and hole map at once. */
    ck_assert_int_eq(d->read(d, bc - 1, b), 0);
    pattern(want, bc - 1, 3);
    ck_assert_mem_eq(b, want, BS);
    ck_assert_uint_eq(d->zero_run(d, bc - 10, 10), 0);
    static uint8_t batch[BS * 8];
    ck_assert_int_eq(d->read_blocks(d, bc - 8, 8, batch), 0);
    for (uint32_t i = 0; i < 8; i++) {
        pattern(want, bc - 8 + i, 3);
        ck_assert_mem_eq(batch + (size_t)i * BS, want, BS);
    }
    ck_assert_int_eq(d->flush(d), 0);
    uint64_t calls = pwrites - w0;
    ck_assert_msg(calls >= 3 && calls <= 4,
                  "%" PRIu64 " pwrites for %u blocks", calls, bc - 1);
    for (uint32_t i = 1; i < bc; i += 97) {
        file_block(i, b);
        pattern(want, i, 3);
        ck_assert_mem_eq(b, want, BS);
    }

    /* A write elsewhere ends the run: the run reaches the file. */
    pattern(b, 10, 4);
    ck_assert_int_eq(d->write(d, 10, b), 0);
    file_block(10, want);
    pattern(b, 10, 3);
    ck_assert_mem_eq(want, b, BS); /* still gathered */
    ck_assert_int_eq(d->write(d, 20, zero), 0);
    file_block(10, want);
    pattern(b, 10, 4);
    ck_assert_mem_eq(want, b, BS);
    /* A read ahead over a gathered block sees the gathered copy. */
    for (uint32_t i = 15; i < 30; i++) {
        ck_assert_int_eq(d->read(d, i, b), 0);
        if (i == 20)
            ck_assert_mem_eq(b, zero, BS);
        else {
            pattern(want, i, 3);
            ck_assert_mem_eq(b, want, BS);
        }
    }

    /* A gathered write that fails: the flush says so, nothing stays
     * gathered, and the next flush has nothing left to fail on. */
    pattern(b, 40, 5);
    ck_assert_int_eq(d->write(d, 40, b), 0);
    ck_assert_int_eq(d->write(d, 41, b), 0);
    fail_pwrite = EIO;
    ck_assert_int_eq(d->flush(d), -EIO);
    fail_pwrite = 0;
    ck_assert_int_eq(d->flush(d), 0);
    /* ENOSPC of a gathered write comes back from the next write. */
    ck_assert_int_eq(d->write(d, 50, b), 0);
    fail_pwrite = ENOSPC;
    ck_assert_int_eq(d->write(d, 60, b), -ENOSPC);
    fail_pwrite = 0;

    /* Close writes what is still gathered. */
    pattern(b, 70, 6);
    ck_assert_int_eq(d->write(d, 70, b), 0);
    ekv_device_close(d);
    file_block(70, want);
    ck_assert_mem_eq(want, b, BS);
}
END_TEST

/* The device lends the next place of its gathered run (write_buffer), and
 * a block built there reaches the file as a copied one does: nothing is
 * lent for a block that does not extend the run, for a full run, nor by a
 * read-only device. */
START_TEST(blocks_built_in_lent_places_reach_the_file)
{
    const uint32_t run = 256u * 1024u / BS, bc = 2 * run + 10;
    ekv_device *d = NULL;
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
    ck_assert_ptr_nonnull(d->write_buffer);
    uint8_t b[BS], want[BS];
    ck_assert_ptr_null(d->write_buffer(d, 1)); /* no run yet */
    pattern(b, 1, 7);
    ck_assert_int_eq(d->write(d, 1, b), 0);
    ck_assert_ptr_null(d->write_buffer(d, 5)); /* not the next block */
    ck_assert_ptr_null(d->write_buffer(d, bc)); /* past the device */
    uint64_t w0 = pwrites;
    uint32_t lent = 0;
    for (uint32_t i = 2; i < 2 * run; i++) {
        uint8_t *p = d->write_buffer(d, i);
        if (p)
            lent++;
        else
            p = b; /* the run is full: the next write starts another */
        pattern(p, i, 7);
        ck_assert_int_eq(d->write(d, i, p), 0);
    }
    ck_assert_uint_eq(lent, 2 * run - 2 - 1); /* all but a new run's first */
    ck_assert_uint_eq(pwrites - w0, 1);       /* the first full run */
    /* The device's own reads see them before the flush. */
    ck_assert_int_eq(d->read(d, 2 * run - 1, b), 0);
    pattern(want, 2 * run - 1, 7);
    ck_assert_mem_eq(b, want, BS);
    ck_assert_int_eq(d->flush(d), 0);
    for (uint32_t i = 1; i < 2 * run; i++) {
        file_block(i, b);
        pattern(want, i, 7);
        ck_assert_mem_eq(b, want, BS);
    }
    ekv_device_close(d);
    ck_assert_int_eq(ekv_file_open(&d, path, EKV_FILE_RDONLY, BS, bc), 0);
    ck_assert_ptr_null(d->write_buffer);
    ekv_device_close(d);
}
END_TEST

/* A streamed put and a plain put of a long value leave an image of the
 * file device byte for byte as they leave one in memory, where nothing is
 * lent. */
START_TEST(lent_places_leave_the_image_a_memory_device_gets)
{
    const uint32_t bc = 2048;
    static uint8_t mem[(size_t)BS * 2048], img[(size_t)BS * 2048];
    static uint8_t v[300 * 1024];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)(i * 7 + (i >> 9));
    ekv_device md, *fd = NULL, *m = &md;
    ck_assert_int_eq(ekv_mem_device_init(&md, mem, BS, bc), 0);
    ck_assert_int_eq(ekv_file_open(&fd, path, EKV_FILE_CREATE, BS, bc), 0);
    ekv_device *devs[2] = {m, fd};
    for (int i = 0; i < 2; i++) {
        ekv_store *s = NULL;
        ck_assert_int_eq(ekv_format(&devs[i], 1, NULL), 0);
        ck_assert_int_eq(ekv_open(&s, &devs[i], 1, NULL), 0);
        ck_assert_int_eq(ekv_put(s, "plain", 5, v, 100 * 1024), 0);
        ekv_stream *w = NULL;
        ck_assert_int_eq(ekv_stream_open(s, &w, "streamed", 8, 0), 0);
        for (size_t off = 0; off < sizeof(v); off += 10000) {
            size_t n = sizeof(v) - off < 10000 ? sizeof(v) - off : 10000;
            ck_assert_int_eq(ekv_stream_write(w, v + off, n), 0);
        }
        ck_assert_int_eq(ekv_stream_commit(w), 0);
        ekv_close(s);
    }
    ekv_device_close(fd);
    for (uint32_t i = 0; i < bc; i++)
        file_block(i, img + (size_t)i * BS);
    ck_assert_mem_eq(img, mem, sizeof(mem));
}
END_TEST

/* Fill v with the value of version ver (len bytes). */
static void long_value(uint8_t *v, size_t len, uint8_t ver)
{
    for (size_t i = 0; i < len; i++)
        v[i] = (uint8_t)(i * 13 + (i >> 8) + ver);
}

/* The file device fails for good from some pwrite on, during a put of a
 * value that takes two gathered runs: for every point of failure, a put
 * that reports success left the new value, and one that reports failure
 * left the old one (a complete value either way, and the other key
 * untouched) once the device works again and the store is reopened. */
START_TEST(failed_gathered_writes_fail_the_put_and_keep_the_old_value)
{
    const uint32_t bc = 4096;
    const size_t len = 300 * 1024; /* over 1024 blocks of 256 bytes */
    static uint8_t v1[300 * 1024], v2[300 * 1024], got[300 * 1024];
    long_value(v1, len, 1);
    long_value(v2, len, 2);
    int failed = 0, succeeded = 0;
    for (uint64_t n = 0; n < 8; n++) {
        ekv_device *d = NULL;
        ekv_store *st = NULL;
        ck_assert_int_eq(
            ekv_file_open(&d, path, EKV_FILE_CREATE, BS, bc), 0);
        ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
        ck_assert_int_eq(ekv_open(&st, &d, 1, NULL), 0);
        ck_assert_int_eq(put_s(st, "other", "stays"), 0);
        ck_assert_int_eq(ekv_put(st, "big", 3, v1, len), 0);
        fail_after = pwrites + n;
        int err = ekv_put(st, "big", 3, v2, len);
        if (err)
            failed++;
        else
            succeeded++;
        ekv_close(st);
        fail_pwrite = 0;
        fail_after = UINT64_MAX;
        ekv_device_close(d);

        ck_assert_int_eq(ekv_file_open(&d, path, 0, 0, 0), 0);
        ck_assert_int_eq(ekv_open(&st, &d, 1, NULL), 0);
        size_t glen = 0;
        ck_assert_int_eq(ekv_get(st, "big", 3, got, sizeof(got), &glen), 0);
        ck_assert_uint_eq(glen, len);
        ck_assert_msg(memcmp(got, err ? v1 : v2, len) == 0,
                      "failure after %" PRIu64 " pwrites: put said %d, "
                      "the value read back is not the %s one", n, err,
                      err ? "old" : "new");
        ck_assert_str_eq(get_s(st, "other"), "stays");
        ekv_close(st);
        ekv_device_close(d);
        unlink(path);
    }
    /* Both outcomes were seen: the failure hit the new record's runs
     * (early) and only the old record's erasure (late). */
    ck_assert_int_gt(failed, 0);
    ck_assert_int_gt(succeeded, 0);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("filedev");
    TCase *tc = tcase_create("filedev");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_makes_a_file_of_the_given_geometry);
    tcase_add_test(tc, create_over_a_file_of_another_size_resizes_it);
    tcase_add_test(tc, create_needs_geometry_and_a_writable_open);
    tcase_add_test(tc, open_takes_block_size_from_header_and_count_from_size);
    tcase_add_test(tc, missing_file_is_enoent);
    tcase_add_test(tc, file_that_is_not_an_image_is_ebadhdr);
    tcase_add_test(tc, image_with_a_damaged_header_opens_but_store_open_is_ebadhdr);
    tcase_add_test(tc, size_that_is_not_whole_blocks_is_edom);
    tcase_add_test(tc, empty_file_is_edom);
    tcase_add_test(tc, image_shorter_than_its_header_says_fails_store_open_edom);
    tcase_add_test(tc, directory_is_refused);
    tcase_add_test(tc, second_writable_open_is_ebusy);
    tcase_add_test(tc, readers_share_and_keep_writers_out);
    tcase_add_test(tc, nolock_opens_a_locked_image);
    tcase_add_test(tc, lock_holds_against_another_process);
    tcase_add_test(tc, read_only_device_has_no_write_and_store_never_writes);
    tcase_add_test(tc, read_only_recovery_of_a_file_writes_nothing);
    tcase_add_test(tc, data_persists_across_close_and_reopen);
    tcase_add_test(tc, nosync_device_still_reads_back_what_it_wrote);
    tcase_add_test(tc, device_refuses_blocks_past_the_end);
    tcase_add_test(tc, writable_open_of_a_read_only_file_is_erofs);
    tcase_add_test(tc, file_replicas_work_as_replicas);
    tcase_add_test(tc, read_blocks_gives_what_block_reads_give);
    tcase_add_test(tc, holes_read_as_zeros_and_zero_run_names_them);
    tcase_add_test(tc, write_into_a_hole_is_seen_by_later_batches);
    tcase_add_test(tc, sparse_4gib_image_opens_reading_only_its_data);
    tcase_add_test(tc, holes_are_found_inside_a_window);
    tcase_add_test(tc, runs_of_block_reads_are_read_ahead_and_see_writes);
    tcase_add_test(tc, consecutive_writes_are_gathered_and_reach_the_file_by_the_flush);
    tcase_add_test(tc, failed_gathered_writes_fail_the_put_and_keep_the_old_value);
    tcase_add_test(tc, long_write_runs_start_writeback_early);
    tcase_add_test(tc, blocks_built_in_lent_places_reach_the_file);
    tcase_add_test(tc, lent_places_leave_the_image_a_memory_device_gets);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
