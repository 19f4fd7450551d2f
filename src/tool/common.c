/* common.c - see common.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "window.h"

void print_error(const char *context, int err)
{
    const char *msg = ekv_strerror(err);
    if (strcmp(msg, "unknown error") == 0 && err < 0)
        msg = strerror(-err);
    if (context && *context)
        fprintf(stderr, "%s: %s: %s\n", PROG, context, msg);
    else
        fprintf(stderr, "%s: %s\n", PROG, msg);
}

const char *open_strerror(int err)
{
    /* ekv_file_open reports a missing file as EKV_ENOENT, whose library
     * message is about keys. */
    if (err == EKV_ENOENT)
        return "no such file or directory";
    const char *msg = ekv_strerror(err);
    if (strcmp(msg, "unknown error") == 0 && err < 0)
        msg = strerror(-err);
    return msg;
}

int exit_code_for(int err)
{
    switch (err) {
    case 0:
        return EXIT_OK;
    case EKV_ENOENT:
        return EXIT_NOKEY;
    case EKV_EBADHDR:
    case EKV_EVERSION:
    case EKV_EDOM:
    case EKV_ECORRUPT:
        return EXIT_CORRUPT;
    case EKV_EINVAL:
    case EKV_ENAMETOOLONG:
        return EXIT_USAGE;
    default:
        return err == EKV_EIO || err == EKV_EBUSY || err == EKV_ENOSPC ||
                       err == EKV_EROFS || err == EKV_EFBIG || err < 0
                   ? EXIT_IO
                   : EXIT_ERR;
    }
}

int exit_code_for_open(int err)
{
    return err == EKV_ENOENT ? EXIT_IO : exit_code_for(err);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Describe a block 0 that does not start with the header magic. */
static void describe_no_magic(const uint8_t *b, size_t n, char *out,
                              size_t cap)
{
    size_t zeros = 0, ones = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += b[i] == 0x00;
        ones += b[i] == 0xff;
    }
    if (zeros == n)
        snprintf(out, cap, "no storage header (block 0 is zero-filled)");
    else if (ones == n)
        snprintf(out, cap, "no storage header (block 0 is erased, 0xFF)");
    else
        snprintf(out, cap,
                 "no storage header (block 0 starts %02x %02x %02x %02x, "
                 "not 01 'EKV')",
                 b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
}

int image_probe_path(const char *path, image_probe *p)
{
    return image_probe_at(path, 0, 0, p);
}

int image_probe_at(const char *path, uint64_t woff, uint64_t wlen,
                   image_probe *p)
{
    const int windowed = woff || wlen;
    memset(p, 0, sizeof(*p));
    uint8_t *blk = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        p->err = errno == ENOENT ? EKV_ENOENT : -errno;
        snprintf(p->reason, sizeof(p->reason), "%s", strerror(errno));
        return p->err;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        p->err = -errno;
        snprintf(p->reason, sizeof(p->reason), "%s", strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        p->err = -EISDIR;
        snprintf(p->reason, sizeof(p->reason), "is a directory");
        goto out;
    }
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        p->file_size = end < 0 ? 0 : (uint64_t)end;
    } else {
        p->file_size = (uint64_t)st.st_size;
    }
    if (p->file_size == 0) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason), "empty file");
        goto out;
    }
    if (windowed && woff >= p->file_size) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason),
                 "window offset %llu is past the end of the file (%llu "
                 "bytes)",
                 (unsigned long long)woff, (unsigned long long)p->file_size);
        goto out;
    }
    uint8_t head[64];
    uint64_t avail = p->file_size - woff;
    size_t want = avail < sizeof(head) ? (size_t)avail : sizeof(head);
    ssize_t got = pread(fd, head, want, (off_t)woff);
    if (got < 0) {
        p->err = errno == EIO ? EKV_EIO : -errno;
        snprintf(p->reason, sizeof(p->reason), "cannot read block 0: %s",
                 strerror(errno));
        goto out;
    }
    if (head[0] != 0x01 || got < 28 || memcmp(head + 1, "EKV", 3) != 0) {
        p->err = EKV_EBADHDR;
        if (got < 28 && got >= 4 && head[0] == 0x01 &&
            memcmp(head + 1, "EKV", 3) == 0)
            snprintf(p->reason, sizeof(p->reason),
                     "file too short for a storage header (%zd bytes)", got);
        else
            describe_no_magic(head, (size_t)got, p->reason,
                              sizeof(p->reason));
        if (windowed) {
            char r[sizeof(p->reason)];
            snprintf(r, sizeof(r), "%s", p->reason);
            snprintf(p->reason, sizeof(p->reason), "at offset %llu: %.150s",
                     (unsigned long long)woff, r);
        }
        goto out;
    }
    p->magic = 1;
    p->block_size = le32(head + 8);
    p->block_count = le32(head + 12);
    uint32_t bs = p->block_size;
    if (bs < EKV_MIN_BLOCK_SIZE || bs > EKV_MAX_BLOCK_SIZE) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason),
                 "header block size %u is not supported (%u..%u)", bs,
                 EKV_MIN_BLOCK_SIZE, EKV_MAX_BLOCK_SIZE);
        goto out;
    }
    if (avail < bs) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason),
                 "file is %llu bytes, shorter than one %u-byte block",
                 (unsigned long long)p->file_size, bs);
        goto out;
    }
    blk = malloc(bs);
    if (!blk) {
        p->err = EKV_ENOMEM;
        snprintf(p->reason, sizeof(p->reason), "out of memory");
        goto out;
    }
    got = pread(fd, blk, bs, (off_t)woff);
    if (got != (ssize_t)bs) {
        p->err = EKV_EIO;
        snprintf(p->reason, sizeof(p->reason), "cannot read block 0: %s",
                 got < 0 ? strerror(errno) : "short read");
        goto out;
    }
    ekv_block_info bi;
    ekv_block_decode(blk, bs, &bi);
    if (!bi.crc_ok) {
        p->err = EKV_EBADHDR;
        snprintf(p->reason, sizeof(p->reason),
                 "header CRC mismatch (stored 0x%08x, computed 0x%08x)",
                 bi.crc_stored, bi.crc_computed);
        goto out;
    }
    p->header_crc_ok = 1;
    p->hdr = bi;
    if (bi.version_major != EKV_FORMAT_VERSION_MAJOR) {
        p->err = EKV_EVERSION;
        snprintf(p->reason, sizeof(p->reason),
                 "format version %u.%u (only %u.x is supported)",
                 bi.version_major, bi.version_minor,
                 (unsigned)EKV_FORMAT_VERSION_MAJOR);
        goto out;
    }
    if (p->block_count == 0) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason), "header block count is 0");
        goto out;
    }
    uint64_t expect = (uint64_t)bs * p->block_count;
    if (windowed) {
        if (wlen && wlen != expect) {
            p->err = EKV_EDOM;
            snprintf(p->reason, sizeof(p->reason),
                     "window length %llu but the header at offset %llu says "
                     "%u blocks of %u bytes (%llu bytes)",
                     (unsigned long long)wlen, (unsigned long long)woff,
                     p->block_count, bs, (unsigned long long)expect);
        } else if (woff + expect > p->file_size) {
            p->err = EKV_EDOM;
            snprintf(p->reason, sizeof(p->reason),
                     "the store at offset %llu (%u blocks of %u bytes) ends "
                     "past the end of the file (%llu bytes)",
                     (unsigned long long)woff, p->block_count, bs,
                     (unsigned long long)p->file_size);
        }
        goto out;
    }
    if (p->file_size != expect) {
        p->err = EKV_EDOM;
        snprintf(p->reason, sizeof(p->reason),
                 "file is %llu bytes but its header says %u blocks of %u "
                 "bytes (%llu bytes)",
                 (unsigned long long)p->file_size, p->block_count, bs,
                 (unsigned long long)expect);
        goto out;
    }
out:
    free(blk);
    close(fd);
    return p->err;
}

/* The one-phrase message for an error opening image path. */
static void image_error_text(const char *path, uint64_t woff, uint64_t wlen,
                             int err, char *out, size_t cap)
{
    if (err == EKV_EBADHDR || err == EKV_EDOM || err == EKV_EVERSION) {
        image_probe pr;
        if (image_probe_at(path, woff, wlen, &pr) == err && pr.reason[0]) {
            const char *what = err == EKV_EBADHDR ? "not an embedkv image"
                               : err == EKV_EDOM
                                   ? "unsupported or mismatched geometry"
                                   : "unsupported embedkv format version";
            snprintf(out, cap, "%s: %s", what, pr.reason);
            return;
        }
    }
    snprintf(out, cap, "%s", open_strerror(err));
}

void print_image_error(const char *path, int err)
{
    print_image_error_at(path, 0, 0, err);
}

void print_image_error_at(const char *path, uint64_t woff, uint64_t wlen,
                          int err)
{
    char msg[320];
    image_error_text(path, woff, wlen, err, msg, sizeof(msg));
    fprintf(stderr, "%s: %s: %s\n", PROG, path, msg);
}

static uint32_t file_flags(unsigned flags)
{
    uint32_t f = 0;
    if (flags & IMG_RDONLY)
        f |= EKV_FILE_RDONLY;
    if (flags & IMG_NOSYNC)
        f |= EKV_FILE_NOSYNC;
    if (flags & IMG_NOLOCK)
        f |= EKV_FILE_NOLOCK;
    return f;
}

void images_close(images *im)
{
    ekv_close(im->store);
    im->store = NULL;
    for (unsigned i = 0; i < im->n; i++) {
        ekv_device_close(im->devs[i]);
        im->devs[i] = NULL;
    }
}

/* A stand-in for an image that cannot be opened at all in a degraded set:
 * a device with no blocks, which the store drops. */
static int null_read(ekv_device *d, uint32_t b, void *buf)
{
    (void)d, (void)b, (void)buf;
    return EKV_EIO;
}
static ekv_device null_devs[EKV_MAX_REPLICAS];

/* The window of image i with its length resolved: given, else from the
 * header at the offset (0 when there is none: the open says why). */
static void resolve_window(const char *path, unsigned i, uint64_t *off,
                           uint64_t *len)
{
    img_window w = window_for(i);
    *off = w.offset;
    *len = w.length;
    if (!w.set || w.length)
        return;
    image_probe pr;
    image_probe_at(path, w.offset, 0, &pr);
    if (pr.magic && pr.block_size >= EKV_MIN_BLOCK_SIZE &&
        pr.block_size <= EKV_MAX_BLOCK_SIZE && pr.block_count)
        *len = (uint64_t)pr.block_size * pr.block_count;
}

/* Two names of one file would make one device two replicas (and the
 * second writable open would fail as "locked"), unless they name windows
 * that do not overlap. */
static int find_duplicate(char **paths, unsigned n, const uint64_t *off,
                          const uint64_t *len, unsigned *a, unsigned *b)
{
    struct stat st[EKV_MAX_REPLICAS];
    int ok[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++) {
        ok[i] = stat(paths[i], &st[i]) == 0;
        for (unsigned j = 0; ok[i] && j < i; j++)
            if (ok[j] && st[j].st_dev == st[i].st_dev &&
                st[j].st_ino == st[i].st_ino &&
                (!window_for(i).set ||
                 windows_overlap(off[i], len[i], off[j], len[j]))) {
                *a = j;
                *b = i;
                return 1;
            }
    }
    return 0;
}

int images_open(images *im, char **paths, unsigned n, unsigned flags)
{
    const int quiet = (flags & IMG_QUIET) != 0;
    memset(im, 0, sizeof(*im));
    if (n == 0 || n > EKV_MAX_REPLICAS) {
        if (!quiet)
            fprintf(stderr, "%s: between 1 and %u images, please\n", PROG,
                    EKV_MAX_REPLICAS);
        return EKV_EINVAL;
    }
    if (window_check_count("", n))
        return EKV_EINVAL;
    uint64_t win_off[EKV_MAX_REPLICAS], win_len[EKV_MAX_REPLICAS];
    uint64_t any_len = 0, cmp_len[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++) {
        resolve_window(paths[i], i, &win_off[i], &win_len[i]);
        if (win_len[i] && !any_len)
            any_len = win_len[i];
    }
    /* A replica whose header is gone has the length of the others (they
     * share the geometry): so it does not seem to overlap them. */
    for (unsigned i = 0; i < n; i++)
        cmp_len[i] = win_len[i] ? win_len[i] : any_len;
    unsigned da, db;
    if (find_duplicate(paths, n, win_off, cmp_len, &da, &db)) {
        if (!quiet && window_for(db).set)
            fprintf(stderr,
                    "%s: %s: window [%llu, +%llu) overlaps the window "
                    "[%llu, +%llu) of the same file named before\n",
                    PROG, paths[db], (unsigned long long)win_off[db],
                    (unsigned long long)cmp_len[db],
                    (unsigned long long)win_off[da],
                    (unsigned long long)cmp_len[da]);
        else if (!quiet)
            fprintf(stderr, "%s: %s: same image as %s\n", PROG, paths[db],
                    paths[da]);
        im->open_err[db] = EKV_EINVAL;
        return EKV_EINVAL;
    }
    im->n = n;
    im->paths = paths;
    uint32_t fflags = file_flags(flags);
    int *errs = im->open_err;
    uint32_t bs = 0, bc = 0;
    unsigned good = 0;

    /* First pass: geometry from each image's own header. */
    for (unsigned i = 0; i < n; i++) {
        ekv_file_options fo = {0};
        fo.flags = fflags;
        fo.offset = win_off[i];
        fo.length = win_len[i];
        errs[i] = ekv_file_open_ex(&im->devs[i], paths[i], &fo);
        if (!errs[i]) {
            errs[i] = ekv_read_header(im->devs[i], NULL);
            if (errs[i]) {
                ekv_device_close(im->devs[i]);
                im->devs[i] = NULL;
            }
        }
        if (!errs[i] && !bs) {
            bs = im->devs[i]->block_size;
            bc = im->devs[i]->block_count;
            good = i;
        }
    }
    /* Someone else using an image is not a broken replica. */
    for (unsigned i = 0; i < n; i++)
        if (errs[i] == EKV_EBUSY) {
            if (!quiet)
                print_error(paths[i], errs[i]);
            images_close(im);
            return EKV_EBUSY;
        }
    int told[EKV_MAX_REPLICAS] = {0};
    for (unsigned i = 0; i < n; i++) {
        if (!errs[i] && (im->devs[i]->block_size != bs ||
                         im->devs[i]->block_count != bc)) {
            if (!quiet)
                fprintf(stderr,
                        "%s: %s%s: geometry %u x %u differs from %s (%u x "
                        "%u)%s\n",
                        PROG, (flags & IMG_DEGRADED) ? "warning: " : "",
                        paths[i], im->devs[i]->block_size,
                        im->devs[i]->block_count, paths[good], bs, bc,
                        (flags & IMG_DEGRADED) ? "; replica dropped" : "");
            told[i] = 1;
            errs[i] = EKV_EDOM;
            if (!(flags & IMG_DEGRADED)) {
                images_close(im);
                return EKV_EDOM;
            }
            ekv_device_close(im->devs[i]);
            im->devs[i] = NULL;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!errs[i] || im->devs[i])
            continue;
        if (!(flags & IMG_DEGRADED) || !bs) {
            if (!quiet)
                print_image_error_at(paths[i], win_off[i], win_len[i],
                                     errs[i]);
            int err = errs[i];
            images_close(im);
            return err;
        }
        if (!quiet && !told[i]) {
            char msg[320];
            image_error_text(paths[i], win_off[i], win_len[i], errs[i], msg,
                             sizeof(msg));
            fprintf(stderr, "%s: warning: %s: %s; replica dropped\n", PROG,
                    paths[i], msg);
        }
        /* Keep the device (opened with the good geometry) so that repair
         * can rebuild it. */
        ekv_file_options fo = {0};
        fo.flags = fflags;
        fo.block_size = bs;
        fo.block_count = bc;
        fo.offset = win_off[i];
        fo.length = window_for(i).set ? (uint64_t)bs * bc : 0;
        if (ekv_file_open_ex(&im->devs[i], paths[i], &fo) != 0) {
            null_devs[i].block_size = bs;
            null_devs[i].block_count = 1;
            null_devs[i].read = null_read;
            im->devs[i] = &null_devs[i];
        }
    }

    ekv_options o = {0};
    /* Erase with what the image's free blocks hold: 0xFF on a flash dump
     * or an image formatted with --erase-byte ff, 0x00 otherwise. */
    o.flags = EKV_OPEN_ERASE_AUTO |
              ((flags & IMG_RDONLY) ? EKV_OPEN_RDONLY : 0) |
              ((flags & IMG_DEGRADED) ? EKV_OPEN_DEGRADED : 0);
    int err = ekv_open(&im->store, im->devs, n, &o);
    if (err) {
        if (!quiet)
            print_error(paths[0], err);
        for (unsigned i = 0; i < n; i++)
            if (im->devs[i] == &null_devs[i])
                im->devs[i] = NULL;
        images_close(im);
        return err;
    }
    return 0;
}
