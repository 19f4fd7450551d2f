/* common.c - see common.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "window.h"

static uint32_t lock_wait_ms = IMAGE_LOCK_WAIT_MS;

void images_set_lock_wait(uint32_t ms)
{
    lock_wait_ms = ms;
}

uint32_t images_lock_wait(void)
{
    return lock_wait_ms;
}

const char *file_kind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFBLK: return "a block device";
    case S_IFDIR: return "a directory";
    case S_IFCHR: return "a character device";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
    }
}

int image_fd_open(const char *path, char *why, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, cap, "%s", e == ENOENT ? "no such file or directory"
                                             : strerror(e));
        return e == ENOENT ? EKV_ENOENT : -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(why, cap, "%s", strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            snprintf(why, cap, "is a directory");
        else
            snprintf(why, cap,
                     "not a regular file or block device (it is %s)",
                     file_kind(st.st_mode));
        close(fd);
        return S_ISDIR(st.st_mode) ? -EISDIR : -ENODEV;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int image_fd_lock_shared(int fd)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK)
            return -errno;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000u +
                      (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
        if (ms >= lock_wait_ms)
            return EKV_EBUSY;
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

int fd_in_hole(int fd, uint64_t off_, uint32_t len, hole_map *h)
{
    if (h->from < 0 || off_ > (uint64_t)INT64_MAX - len)
        return 0; /* no SEEK_DATA here: read everything */
    int64_t off = (int64_t)off_, end = off + (int64_t)len;
    if (off >= h->data && end <= h->data_end)
        return 0;
    if (!(off >= h->from && off < h->data)) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            d = (off_t)INT64_MAX; /* a hole up to the end */
        } else if (d < 0) {
            h->from = -1;
            return 0;
        }
        h->from = off;
        h->data = (int64_t)d;
        h->data_end = (int64_t)d;
        if (d != (off_t)INT64_MAX) {
            off_t e = lseek(fd, d, SEEK_HOLE);
            h->data_end = e < 0 ? INT64_MAX : (int64_t)e;
        }
    }
    return end <= h->data;
}

int looks_like_image(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
        return 0;
    image_probe pr;
    image_probe_path(path, &pr);
    return pr.magic;
}

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
    if (err == -ENODEV)
        return "not a regular file or block device";
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
    case EKV_ENOTUNIQ: /* images of two stores, or written apart */
    case EKV_ESTALE:
    case EKV_ENXIO:    /* a replica of the set not named */
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
    int fd = image_fd_open(path, p->reason, sizeof(p->reason));
    if (fd < 0) {
        p->err = fd;
        return p->err;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        p->err = -errno;
        snprintf(p->reason, sizeof(p->reason), "%s", strerror(errno));
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

void image_error_text(const char *path, uint64_t woff, uint64_t wlen,
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
    if (err == -ENODEV || err == -EISDIR) {
        /* Not a regular file or block device: say what it is. */
        char why[160];
        int fd = image_fd_open(path, why, sizeof(why));
        if (fd >= 0)
            close(fd);
        else if (fd == err) {
            snprintf(out, cap, "%s", why);
            return;
        }
    }
    if (err == EKV_EBUSY && lock_wait_ms) {
        snprintf(out, cap, "%s; gave up after waiting %u.%01u s",
                 open_strerror(err), lock_wait_ms / 1000,
                 lock_wait_ms % 1000 / 100);
        return;
    }
    if (err == EKV_EROFS) {
        /* A writable open refused: say why, it is rarely a read-only
         * store. */
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0 &&
            (errno == EACCES || errno == EPERM)) {
            snprintf(out, cap, "permission denied (no write permission; "
                               "read-only commands still work)");
            return;
        }
        if (errno == EROFS) {
            snprintf(out, cap, "read-only file system");
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

int device_error_text(const images *im, char *buf, size_t size)
{
    for (unsigned i = 0; i < im->n; i++) {
        const char *op;
        int e = im->devs[i] ? ekv_file_error(im->devs[i], &op) : 0;
        if (e) {
            snprintf(buf, size, "cannot %s the image %s: %s", op,
                     ekv_file_path(im->devs[i]), strerror(e));
            return 1;
        }
    }
    return 0;
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

    /* First pass: geometry from each image's own header. A header whose
     * CRC alone is wrong, in a file of the size it states, may be one an
     * interrupted epoch change left torn: the library judges it (it uses
     * such a header, src/core/replica.c). */
    int maybe_torn[EKV_MAX_REPLICAS] = {0};
    for (unsigned i = 0; i < n; i++) {
        ekv_file_options fo = {0};
        fo.flags = fflags;
        fo.lock_wait_ms = lock_wait_ms;
        fo.offset = win_off[i];
        fo.length = win_len[i];
        errs[i] = ekv_file_open_ex(&im->devs[i], paths[i], &fo);
        if (!errs[i]) {
            errs[i] = ekv_read_header(im->devs[i], NULL);
            image_probe pr;
            if (errs[i] == EKV_EBADHDR &&
                image_probe_path(paths[i], &pr) == EKV_EBADHDR &&
                pr.magic && pr.block_size == im->devs[i]->block_size &&
                pr.block_count &&
                pr.file_size == (uint64_t)pr.block_size * pr.block_count &&
                im->devs[i]->block_count == pr.block_count) {
                maybe_torn[i] = 1;
                errs[i] = 0;
            }
            if (errs[i]) {
                ekv_device_close(im->devs[i]);
                im->devs[i] = NULL;
            }
        }
    }
    /* The geometry most good images share (the library's rule too,
     * src/core/replica.c). The tool refuses a tie even when degraded: with
     * no majority nothing tells which image is the store (the library
     * would take the first one named, and a listing could come out empty
     * while the other image holds the data). */
    unsigned votes_best = 0, nbest = 0;
    for (unsigned i = 0; i < n; i++) {
        if (errs[i])
            continue;
        unsigned votes = 0;
        for (unsigned j = 0; j < n; j++)
            votes += !errs[j] &&
                     im->devs[j]->block_size == im->devs[i]->block_size &&
                     im->devs[j]->block_count == im->devs[i]->block_count;
        if (votes > votes_best) {
            votes_best = votes;
            nbest = 1;
            bs = im->devs[i]->block_size;
            bc = im->devs[i]->block_count;
            good = i;
        } else if (votes == votes_best &&
                   (im->devs[i]->block_size != bs ||
                    im->devs[i]->block_count != bc)) {
            nbest++;
        }
    }
    const int geometry_tie = nbest > 1;
    /* Someone else using an image is not a broken replica, nor is a
     * FIFO, socket, device or directory named by mistake. */
    for (unsigned i = 0; i < n; i++)
        if (errs[i] == EKV_EBUSY || errs[i] == -ENODEV ||
            errs[i] == -EISDIR) {
            int err = errs[i];
            if (!quiet)
                print_image_error(paths[i], err);
            images_close(im);
            return err;
        }
    int told[EKV_MAX_REPLICAS] = {0};
    for (unsigned i = 0; i < n && (!(flags & IMG_DEGRADED) || geometry_tie);
         i++)
        if (!errs[i] && (im->devs[i]->block_size != bs ||
                         im->devs[i]->block_count != bc)) {
            /* Name every image's geometry: none is "the right one". */
            if (!quiet)
                set_explain_refusal(paths, n, EKV_EDOM);
            errs[i] = EKV_EDOM;
            images_close(im);
            return EKV_EDOM;
        }
    for (unsigned i = 0; i < n; i++) {
        if (!errs[i] && (im->devs[i]->block_size != bs ||
                         im->devs[i]->block_count != bc)) {
            if (!quiet)
                fprintf(stderr,
                        "%s: %s%s: geometry %u x %u differs from %s (%u x "
                        "%u, the geometry most images share)%s\n",
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
        fo.lock_wait_ms = lock_wait_ms;
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
    /* A writable open heals (rebuilds stale replicas, reconciles what a
     * crash left behind) and says so below. */
    o.flags = EKV_OPEN_ERASE_AUTO |
              ((flags & IMG_RDONLY) ? EKV_OPEN_RDONLY
               : (flags & IMG_NOHEAL) ? 0 : EKV_OPEN_HEAL) |
              ((flags & IMG_DEGRADED) ? EKV_OPEN_DEGRADED : 0) |
              ((flags & IMG_FORCE) ? EKV_OPEN_FORCE : 0);
    int err = ekv_open(&im->store, im->devs, n, &o);
    if (err) {
        if (!quiet && (err == EKV_ENOTUNIQ || err == EKV_ESTALE ||
                       err == EKV_ENXIO || err == EKV_EDOM))
            set_explain_refusal(paths, n, err);
        else if (!quiet && err == EKV_EBADHDR) {
            for (unsigned i = 0; i < n; i++)
                if (maybe_torn[i])
                    print_image_error(paths[i], err);
        } else if (!quiet)
            print_error(paths[0], err);
        for (unsigned i = 0; i < n; i++)
            if (im->devs[i] == &null_devs[i])
                im->devs[i] = NULL;
        images_close(im);
        return err;
    }
    /* A header the library did not take after all is a dropped replica. */
    for (unsigned i = 0; i < n; i++) {
        ekv_replica_report r;
        if (maybe_torn[i] && ekv_replica_report_get(im->store, i, &r) == 0 &&
            r.status) {
            errs[i] = r.status;
            if (!quiet) {
                char msg[320];
                image_error_text(paths[i], win_off[i], win_len[i], r.status, msg, sizeof(msg));
                fprintf(stderr, "%s: warning: %s: %s; replica dropped\n",
                        PROG, paths[i], msg);
            }
        }
    }
    set_report_open(im, quiet);
    return 0;
}

int value_read(ekv_store *s, const void *key, size_t klen, size_t hint,
               uint8_t **out, size_t *len)
{
    size_t cap = hint;
    for (;;) {
        uint8_t *buf = malloc(cap + 1);
        if (!buf)
            return EKV_ENOMEM;
        int err = ekv_get(s, key, klen, buf, cap, len);
        /* A fall-back copy may be larger than the newest one. */
        if (err == EKV_ERANGE && *len > cap) {
            free(buf);
            cap = *len;
            continue;
        }
        if (err) {
            free(buf);
            return err;
        }
        *out = buf;
        return 0;
    }
}
