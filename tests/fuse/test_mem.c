/*
 * test_mem.c - the mount's memory for contents and values
 * (src/tool/mount_mem.c). No FUSE needed.
 *
 * The daemon copies every large file it is given into a buffer, and
 * fresh memory costs page faults that a large write or read pays for
 * again and again. So the largest buffer let go is kept, its pages
 * mapped, and the next large buffer takes it. This checks that the
 * spare is taken and kept again for every file in turn, not once; that
 * it goes to the largest buffer let go; that small buffers neither take
 * it nor become it; and that contents keep their bytes as they grow,
 * into the spare or past it.
 *
 * usage: test_mem
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mount.h"

#define MIB ((size_t)1 << 20)

static int failures;

/* The sanitizers' runtimes need far more address space than a limit
 * that leaves no room for a mapping's reservation. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* The process's address space in use now, in bytes (0 if unknown). */
static size_t address_space(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * 4096u;
}

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "test_mem.c:%d: %s: ", __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            failures++;                                                    \
        }                                                                  \
    } while (0)

struct content {
    uint8_t *buf;
    size_t len, cap;
    bool mapped;
};

/* Append size bytes of pattern seed to c, growing it as a writer's
 * content grows. */
static int append(struct content *c, size_t size, unsigned seed)
{
    int err = content_grow(&c->buf, &c->cap, &c->mapped, c->len,
                           c->len + size);
    if (err)
        return err;
    for (size_t i = 0; i < size; i++)
        c->buf[c->len + i] = (uint8_t)((c->len + i) * 31u + seed);
    c->len += size;
    return 0;
}

static bool intact(const struct content *c, unsigned seed)
{
    for (size_t i = 0; i < c->len; i++)
        if (c->buf[i] != (uint8_t)(i * 31u + seed))
            return false;
    return true;
}

static void drop(struct content *c)
{
    content_drop(c->buf, c->cap, c->mapped);
    *c = (struct content){0};
}

/* A file written in 1 MiB writes, as cp does through the mount: the room
 * its content had after the first write. Taking a spare of 8 MiB gives it
 * 8 MiB at once; fresh memory grows with the writes. */
static size_t write_file(size_t size, unsigned seed)
{
    struct content c = {0};
    size_t first_cap = 0;
    for (size_t done = 0; done < size; done += MIB) {
        if (append(&c, size - done < MIB ? size - done : MIB, seed)) {
            EXPECT(0, "out of memory at %zu of %zu bytes", done, size);
            break;
        }
        if (!done)
            first_cap = c.cap;
    }
    EXPECT(intact(&c, seed), "a content of %zu bytes lost bytes as it grew",
           size);
    drop(&c);
    return first_cap;
}

int main(void)
{
    /* One large file after another: each takes the buffer the one
     * before it let go, whole. A spare taken once and never kept again
     * (the bug this guards) leaves the third file fresh memory. */
    EXPECT(write_file(8 * MIB, 1) < 8 * MIB, "the first file found a spare");
    for (unsigned i = 2; i <= 5; i++)
        EXPECT(write_file(8 * MIB, i) == 8 * MIB,
               "file %u of 8 MiB got fresh memory, not the spare", i);

    /* A reader's value takes it too, and gives it back. */
    struct value v = {0};
    EXPECT(value_alloc(&v, 5 * MIB) == 0, "no memory for a 5 MiB value");
    EXPECT(v.cap == 8 * MIB && v.len == 0,
           "a 5 MiB value did not take the 8 MiB spare (cap %zu, len %zu)",
           v.cap, v.len);
    memset(v.p, 0xa5, 5 * MIB);
    value_free(&v);
    EXPECT(!v.p && !v.cap && !v.len, "value_free left the value set");
    EXPECT(write_file(8 * MIB, 7) == 8 * MIB,
           "the spare a value gave back was not kept");

    /* Small buffers neither take the spare nor replace it. */
    EXPECT(value_alloc(&v, 100) == 0, "no memory for 100 bytes");
    EXPECT(!v.mapped && v.cap == 100,
           "a 100-byte value took the spare or more than it needs");
    value_free(&v);
    struct content small = {0};
    EXPECT(append(&small, 4000, 3) == 0 && small.cap < MIB,
           "a 4000-byte content took the spare");
    drop(&small);
    EXPECT(write_file(8 * MIB, 8) == 8 * MIB,
           "a small buffer let go replaced the spare");

    /* A content grows past the spare with its bytes, and the larger
     * buffer it then lets go becomes the spare. */
    struct content big = {0};
    int err = append(&big, 8 * MIB, 9);
    EXPECT(!err && big.cap == 8 * MIB, "an 8 MiB content missed the spare");
    err = append(&big, 8 * MIB + 7, 9);
    EXPECT(!err && intact(&big, 9), "growing past the spare lost bytes");
    size_t larger = big.cap;
    drop(&big);
    EXPECT(write_file(16 * MIB, 10) == larger,
           "the larger buffer let go did not become the spare");

    /* Fresh memory grows where it is: a content written front to back
     * opens more of the address space its mapping reserved, and is
     * neither copied nor faulted afresh at each doubling (the cost of
     * which was half of an 8 MiB write's page faults). Past the room,
     * it still grows with its bytes. */
    content_free_spare();
    struct content grown = {0};
    const uint8_t *first = NULL;
    int moves = 0;
    for (size_t done = 0; done < 48 * MIB && !err; done += MIB) {
        err = append(&grown, MIB, 12);
        if (!first && grown.mapped)
            first = grown.buf;
        else if (first && grown.buf != first)
            moves++, first = grown.buf;
    }
    EXPECT(!err && intact(&grown, 12), "a 48 MiB content lost bytes");
    if (sizeof(void *) >= 8 && grown.mapped)
        EXPECT(moves == 0, "a content growing to 48 MiB moved %d time(s)",
               moves);
    err = append(&grown, 40 * MIB + 5, 12);
    EXPECT(!err && intact(&grown, 12), "growing past the room lost bytes");
    drop(&grown);

    /* The spare goes with the mount. */
    content_free_spare();
    EXPECT(write_file(4 * MIB, 11) < 4 * MIB,
           "a spare was left after content_free_spare");
    content_free_spare();

    /* Under an address-space limit that leaves no room for a mapping's
     * reservation (ulimit -v), large contents and values still get
     * memory, from the heap, and keep their bytes. This comes last: the
     * limit stays. */
    size_t used = address_space();
    if (SANITIZED) {
        /* Checked by the plain build of this test, which every run has. */
        printf("test_mem: address-space limit not set under a sanitizer\n");
    } else {
        EXPECT(used > 0, "cannot read /proc/self/statm");
        struct rlimit rl = {.rlim_cur = used + 48 * MIB,
                            .rlim_max = used + 48 * MIB};
        EXPECT(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit failed");
        struct content tight = {0};
        err = 0;
        for (size_t done = 0; done < 16 * MIB && !err; done += MIB)
            err = append(&tight, MIB, 13);
        EXPECT(!err && intact(&tight, 13),
               "a 16 MiB content under a 48 MiB address-space margin: %d",
               err);
        drop(&tight);
        content_free_spare();
        EXPECT(value_alloc(&v, 8 * MIB) == 0,
               "no 8 MiB value under a 48 MiB address-space margin");
        if (v.p) {
            memset(v.p, 0x5a, 8 * MIB);
            value_free(&v);
        }
        content_free_spare();
    }

    if (failures) {
        fprintf(stderr, "test_mem: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_mem: ok\n");
    return 0;
}
