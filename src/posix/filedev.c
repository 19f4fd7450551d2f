/*
 * filedev.c - the POSIX image-file device: whole-block pread/pwrite,
 * fdatasync on flush, flock against a second process.
 *
 * Runs of blocks go to the file in large calls both ways: single-block
 * reads that follow each other are read ahead, and writes of consecutive
 * blocks are gathered and written with one pwrite. A gathered write
 * reaches the file before the flush that follows it (fdatasync covers it
 * as before), before any read of the file that could see its blocks, and
 * before the device closes; a read of a gathered block is answered from
 * the gathered copy. The core may build a block in the next place of the
 * run itself (write_buffer), which saves copying it there. Between two
 * flushes a file system may persist writes in any order anyway, so
 * gathering them promises nothing less. A gathered write that fails says
 * so at the call that sent it to the file: a later write, a flush (which
 * then fails: nothing is reported durable), or a read of the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedkv_file.h"

typedef struct file_dev {
    ekv_device dev;
    int fd;
    uint32_t flags;
    off_t base; /* byte offset of block 0 in the file (the window) */
    char *path;
    /* Where the file holds data, as SEEK_DATA/SEEK_HOLE said last (see
     * data_map): no data in [map_lo, map_data), data in [map_data,
     * map_end). Empty (map_end == map_lo) until asked; a write that
     * reaches the file empties it, as it may fill a hole. */
    off_t map_lo, map_data, map_end;
    /* Read-ahead for runs of single-block reads (the chunks of a long
     * value, read one after the other): once a read follows the block
     * read before it, the device reads the next ra_want blocks with one
     * pread into ra (the window, ra_count blocks from ra_first), doubling
     * ra_want while the run goes on. Any write drops the window, and a
     * read that does not follow (a retry of the same block, a jump)
     * reads the file itself. */
    uint8_t *ra;
    uint32_t ra_first, ra_count, ra_want;
    uint32_t last;
    int have_last;
    /* Gathered writes (see the top): wb_count blocks from wb_first, not
     * yet written to the file. */
    uint8_t *wb;
    uint32_t wb_first, wb_count;
    /* Full runs written but whose writeback is not started yet (see
     * fd_write): kick_len bytes from kick_off. */
    off_t kick_off;
    size_t kick_len;
    /* The last read, write or flush of the file that failed: its errno
     * and which it was (ekv_file_error); 0 and NULL until one fails. */
    int os_err;
    const char *os_op;
} file_dev;

#define RA_MIN_BLOCKS 8u
#define RA_MAX_BYTES (256u * 1024u)
#define KICK_BYTES (1024u * 1024u)

static int neg_errno(int e)
{
    return e > 0 ? -e : EKV_EIO;
}

static int read_all(file_dev *f, char *p, size_t len, off_t off);

/* A system call on the file failed with e: remember it, return it. */
static int os_failed(file_dev *f, const char *op, int e)
{
    f->os_err = e;
    f->os_op = op;
    return neg_errno(e);
}

/* pwrite all of p[0, len) at off. */
static int write_all(file_dev *f, const char *p, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, p + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return os_failed(f, "write", errno);
        if (n == 0)
            return EKV_EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Blocks of the gathering buffer and of the read-ahead window: runs of up
 * to RA_MAX_BYTES, never less than one block. */
static uint32_t run_blocks(const ekv_device *d)
{
    uint32_t n = RA_MAX_BYTES / d->block_size;
    return n ? n : 1;
}

/* Write the gathered blocks to the file. 0, or the error of the write
 * (the gathered blocks are dropped either way: their content in the file
 * is then unknown, as after any failed write). */
static int drain(ekv_device *d, file_dev *f)
{
    if (!f->wb_count)
        return 0;
    size_t len = (size_t)f->wb_count * d->block_size;
    off_t off = f->base + (off_t)f->wb_first * d->block_size;
    f->wb_count = 0;
    f->map_lo = f->map_end = 0; /* the write may fill a hole */
    return write_all(f, (const char *)f->wb, len, off);
}

/* Copy the gathered blocks that lie in [first, first + count) over buf,
 * which holds those count blocks as the file has them. */
static void overlay_gathered(const ekv_device *d, const file_dev *f,
                             uint32_t first, uint32_t count, uint8_t *buf)
{
    if (!f->wb_count)
        return;
    uint32_t lo = first > f->wb_first ? first : f->wb_first;
    uint32_t end = first + count, wend = f->wb_first + f->wb_count;
    uint32_t hi = end < wend ? end : wend;
    if (lo >= hi)
        return;
    memcpy(buf + (size_t)(lo - first) * d->block_size,
           f->wb + (size_t)(lo - f->wb_first) * d->block_size,
           (size_t)(hi - lo) * d->block_size);
}

/* Fill the window with the blocks from block on; 0 or an error (the
 * caller then reads the block alone). */
static int read_ahead(ekv_device *d, file_dev *f, uint32_t block)
{
    uint32_t max = run_blocks(d);
    uint32_t want = f->ra_want < RA_MIN_BLOCKS ? RA_MIN_BLOCKS : f->ra_want;
    if (want > max)
        want = max;
    if (want > d->block_count - block)
        want = d->block_count - block;
    if (want < 2)
        return EKV_EINVAL;
    if (!f->ra && !(f->ra = malloc((size_t)max * d->block_size)))
        return EKV_ENOMEM;
    int err = read_all(f, (char *)f->ra, (size_t)want * d->block_size,
                       f->base + (off_t)block * d->block_size);
    if (err)
        return err;
    overlay_gathered(d, f, block, want, f->ra);
    f->ra_first = block;
    f->ra_count = want;
    f->ra_want = want * 2;
    return 0;
}

static int fd_read(ekv_device *d, uint32_t block, void *buf)
{
    file_dev *f = d->ctx;
    off_t off = f->base + (off_t)block * d->block_size;
    if (block >= d->block_count)
        return EKV_EINVAL;
    int follows = f->have_last && block == f->last + 1;
    f->last = block;
    f->have_last = 1;
    if (f->wb_count && block - f->wb_first < f->wb_count) {
        memcpy(buf, f->wb + (size_t)(block - f->wb_first) * d->block_size,
               d->block_size);
        return 0;
    }
    if (follows && f->ra_count && block >= f->ra_first &&
        block - f->ra_first < f->ra_count) {
        memcpy(buf, f->ra + (size_t)(block - f->ra_first) * d->block_size,
               d->block_size);
        return 0;
    }
    f->ra_count = 0;
    if (!follows)
        f->ra_want = 0;
    else if (read_ahead(d, f, block) == 0) {
        memcpy(buf, f->ra, d->block_size);
        return 0;
    }
    return read_all(f, buf, d->block_size, off);
}

/* ---- reading many blocks, and the holes of a sparse file ------------- */

/* Make the map describe byte offset pos of the file: where the next data
 * at or after pos starts and where that data ends. A file system without
 * SEEK_DATA (or any error) is taken as data everywhere: nothing is then
 * skipped, and reading decides. */
static void data_map(file_dev *f, off_t pos)
{
    const off_t far =
        (off_t)(((uint64_t)1 << (sizeof(off_t) * 8 - 1)) - 1);
    if (pos >= f->map_lo && pos < f->map_end)
        return;
    /* Unless the file system says otherwise: data from pos on. */
    f->map_lo = f->map_data = pos;
    f->map_end = far;
    off_t ds = lseek(f->fd, pos, SEEK_DATA);
    if (ds < 0) {
        struct stat st;
        /* ENXIO: no data from pos to the end of the file, which reads as
         * zeros; past the end nothing is promised (the read fails). */
        if (errno == ENXIO && fstat(f->fd, &st) == 0 &&
            S_ISREG(st.st_mode) && pos < st.st_size)
            f->map_data = st.st_size;
        return;
    }
    if (ds < pos)
        return;
    off_t he = lseek(f->fd, ds, SEEK_HOLE);
    f->map_data = ds;
    if (he > ds)
        f->map_end = he;
}

/* Blocks from `first` on (at most count) lying in a hole: they read as
 * zeros, so recovery need not read them. */
static uint32_t fd_zero_run(ekv_device *d, uint32_t first, uint32_t count)
{
    file_dev *f = d->ctx;
    if (first >= d->block_count || count > d->block_count - first)
        return 0;
    if (drain(d, f))
        return 0; /* nothing promised: reading decides */
    off_t pos = f->base + (off_t)first * d->block_size;
    data_map(f, pos);
    if (f->map_data <= pos)
        return 0;
    uint64_t n = (uint64_t)(f->map_data - pos) / d->block_size;
    return n < count ? (uint32_t)n : count;
}

/* pread all of [off, off + len) into p. */
static int read_all(file_dev *f, char *p, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, p + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return os_failed(f, "read", errno);
        if (n == 0)
            return EKV_EIO; /* the file shrank under us */
        done += (size_t)n;
    }
    return 0;
}

/* count blocks from first in large preads; the holes of a sparse file are
 * zero-filled without being read. */
static int fd_read_blocks(ekv_device *d, uint32_t first, uint32_t count,
                          void *buf)
{
    file_dev *f = d->ctx;
    if (first >= d->block_count || count > d->block_count - first)
        return EKV_EINVAL;
    int err = drain(d, f);
    if (err)
        return err;
    off_t pos = f->base + (off_t)first * d->block_size;
    off_t end = pos + (off_t)count * d->block_size;
    char *p = buf;
    while (pos < end) {
        data_map(f, pos);
        off_t stop = end;
        if (f->map_data > pos) {
            /* A hole up to map_data: zeros, no read. */
            if (f->map_data < stop)
                stop = f->map_data;
            memset(p, 0, (size_t)(stop - pos));
        } else {
            if (f->map_end < stop)
                stop = f->map_end;
            err = read_all(f, p, (size_t)(stop - pos), pos);
            if (err)
                return err;
        }
        p += stop - pos;
        pos = stop;
    }
    return 0;
}

/* The place in the gathering buffer where block would go without a
 * drain (it extends the run, which has room), or NULL. */
static uint8_t *next_slot(const ekv_device *d, const file_dev *f,
                          uint32_t block)
{
    if (f->wb_count && block == f->wb_first + f->wb_count &&
        f->wb_count < run_blocks(d))
        return f->wb + (size_t)f->wb_count * d->block_size;
    return NULL;
}

/* Lend the core that place to build the block in (ekv_device's
 * write_buffer): the write() that follows then has nothing to copy. */
static void *fd_write_buffer(ekv_device *d, uint32_t block)
{
    file_dev *f = d->ctx;
    return block < d->block_count ? next_slot(d, f, block) : NULL;
}

static int fd_write(ekv_device *d, uint32_t block, const void *buf)
{
    file_dev *f = d->ctx;
    if (block >= d->block_count)
        return EKV_EINVAL;
    /* What was read ahead stays what the file will hold. */
    if (f->ra_count && block - f->ra_first < f->ra_count)
        memcpy(f->ra + (size_t)(block - f->ra_first) * d->block_size, buf,
               d->block_size);
    uint32_t max = run_blocks(d);
    uint8_t *slot = next_slot(d, f, block);
    if (slot) {
        if (slot != buf) /* else built in place (fd_write_buffer) */
            memcpy(slot, buf, d->block_size);
        f->wb_count++;
        return 0;
    }
    /* A full buffer in the middle of a run: a large value is being
     * written. Start the disk on it once KICK_BYTES of such runs are
     * written (each start costs a doorbell to the disk, dear under a
     * hypervisor), so the flush that ends the put finds most of it
     * written already. */
    bool full = f->wb_count == max && block == f->wb_first + max;
    off_t run_off = f->base + (off_t)f->wb_first * d->block_size;
    size_t run_len = (size_t)f->wb_count * d->block_size;
    int err = drain(d, f);
    if (err)
        return err;
    if (full && !(f->flags & EKV_FILE_NOSYNC)) {
        if (f->kick_len && f->kick_off + (off_t)f->kick_len == run_off) {
            f->kick_len += run_len;
        } else {
            f->kick_off = run_off;
            f->kick_len = run_len;
        }
        if (f->kick_len >= KICK_BYTES) {
            (void)sync_file_range(f->fd, f->kick_off, (off_t)f->kick_len,
                                  SYNC_FILE_RANGE_WRITE);
            f->kick_len = 0;
        }
    }
    if (max > 1 && !f->wb)
        f->wb = malloc((size_t)max * d->block_size);
    if (max > 1 && f->wb) {
        memcpy(f->wb, buf, d->block_size);
        f->wb_first = block;
        f->wb_count = 1;
        return 0;
    }
    /* Blocks too large to gather, or no memory for it: write it now. */
    f->map_lo = f->map_end = 0; /* the write may fill a hole */
    return write_all(f, buf, d->block_size,
                     f->base + (off_t)block * d->block_size);
}

static int fd_flush(ekv_device *d)
{
    file_dev *f = d->ctx;
    int err = drain(d, f);
    f->kick_len = 0; /* the sync below covers it */
    if (err)
        return err;
    if (f->flags & EKV_FILE_NOSYNC)
        return 0;
    while (fdatasync(f->fd) != 0) {
        if (errno == EINTR)
            continue;
        /* A device node or pipe that cannot sync has nothing to sync. */
        if (errno == EINVAL || errno == EROFS)
            return 0;
        return os_failed(f, "flush", errno);
    }
    return 0;
}

static void fd_close(ekv_device *d)
{
    file_dev *f = d->ctx;
    /* Nothing reported durable waits here (every such report follows a
     * flush); what does is written, as a store that closes expects. */
    (void)drain(d, f);
    close(f->fd); /* releases the flock */
    free(f->wb);
    free(f->ra);
    free(f->path);
    free(f);
}

int ekv_file_error(const ekv_device *d, const char **op)
{
    const file_dev *f =
        d && d->close == fd_close ? (const file_dev *)d->ctx : NULL;
    if (op)
        *op = f && f->os_err ? f->os_op : NULL;
    return f ? f->os_err : 0;
}

const char *ekv_file_path(const ekv_device *d)
{
    return d && d->close == fd_close ? ((file_dev *)d->ctx)->path : "";
}

int ekv_file_is_rdonly(const ekv_device *d)
{
    return d && d->close == fd_close &&
           (((file_dev *)d->ctx)->flags & EKV_FILE_RDONLY);
}

/* Block size and count from a header's first bytes at off, 0 if there is
 * no header there. */
static uint32_t header_geometry(int fd, off_t off, uint32_t *count)
{
    uint8_t h[16];
    if (pread(fd, h, sizeof(h), off) != (ssize_t)sizeof(h))
        return 0;
    if (h[0] != 0x01 || memcmp(h + 1, "EKV", 3) != 0)
        return 0;
    *count = (uint32_t)h[12] | ((uint32_t)h[13] << 8) |
             ((uint32_t)h[14] << 16) | ((uint32_t)h[15] << 24);
    return (uint32_t)h[8] | ((uint32_t)h[9] << 8) | ((uint32_t)h[10] << 16) |
           ((uint32_t)h[11] << 24);
}

/* One attempt at both locks (see embedkv_file.h). 0, EKV_EBUSY, or an
 * error. On EKV_EBUSY nothing is held that a retry would trip over: the
 * flock is converted in place and the OFD lock is per description. */
static int try_locks(int fd, int writer, int whole, off_t off, off_t len)
{
    int op = (writer && whole) ? LOCK_EX : LOCK_SH;
    if (flock(fd, op | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? EKV_EBUSY : neg_errno(errno);
    struct flock fl = {
        .l_type = writer ? F_WRLCK : F_RDLCK,
        .l_whence = SEEK_SET,
        .l_start = off,
        .l_len = len,
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        /* File systems without OFD locks still have the flock. */
        if (e == EINVAL || e == ENOLCK || e == EOPNOTSUPP)
            return 0;
        return (e == EAGAIN || e == EACCES) ? EKV_EBUSY : neg_errno(e);
    }
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int take_locks(int fd, int writer, int whole, off_t off, off_t len,
                      uint32_t wait_ms)
{
    uint64_t deadline = now_ms() + wait_ms;
    for (;;) {
        int err = try_locks(fd, writer, whole, off, len);
        if (err != EKV_EBUSY || now_ms() >= deadline)
            return err;
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* Open path without blocking on a FIFO, and refuse what is not a regular
 * file or a block device. */
static int open_image(const char *path, int oflags, int rdonly)
{
    int fd = open(path, oflags | O_NONBLOCK | O_NOCTTY, 0644);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return EKV_ENOENT;
        /* A FIFO opened for writing with no reader says ENXIO. */
        if (e == ENXIO)
            return -ENODEV;
        if (!rdonly && (e == EACCES || e == EROFS || e == EPERM))
            return EKV_EROFS;
        return neg_errno(e);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return neg_errno(e);
    }
    if (S_ISDIR(st.st_mode) || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        close(fd);
        return S_ISDIR(st.st_mode) ? -EISDIR : -ENODEV;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static uint64_t file_size_of(int fd, const struct stat *st)
{
    if (S_ISBLK(st->st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        return end < 0 ? 0 : (uint64_t)end;
    }
    return (uint64_t)st->st_size;
}

int ekv_file_open_ex(ekv_device **out, const char *path,
                     const ekv_file_options *opt)
{
    if (!out || !path || !opt)
        return EKV_EINVAL;
    *out = NULL;
    uint32_t flags = opt->flags;
    uint32_t block_size = opt->block_size, block_count = opt->block_count;
    uint64_t offset = opt->offset, length = opt->length;
    int rdonly = (flags & EKV_FILE_RDONLY) != 0;
    int windowed = offset != 0 || length != 0;
    if (rdonly && (flags & EKV_FILE_CREATE))
        return EKV_EINVAL;
    if ((flags & EKV_FILE_CREATE) && (!block_size || !block_count))
        return EKV_EINVAL;
    if (offset > (uint64_t)INT64_MAX / 2 || length > (uint64_t)INT64_MAX / 2)
        return EKV_EDOM;
    int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if ((flags & EKV_FILE_CREATE) && !windowed)
        oflags |= O_CREAT;
    int fd = open_image(path, oflags, rdonly);
    if (fd < 0)
        return fd;
    int err = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = neg_errno(errno);
        goto fail;
    }
    uint64_t fsize = file_size_of(fd, &st);

    /* The geometry: arguments, else the window, else the header. */
    if (!block_size) {
        uint32_t hc = 0;
        block_size = header_geometry(fd, (off_t)offset, &hc);
        if (!block_size) {
            err = (fsize == 0 || offset >= fsize) ? EKV_EDOM : EKV_EBADHDR;
            goto fail;
        }
        if (!block_count && !length && windowed)
            block_count = hc;
    }
    if (length) {
        if (length % block_size != 0 || length / block_size > 0xffffffffu ||
            (block_count && length / block_size != block_count)) {
            err = EKV_EDOM;
            goto fail;
        }
        block_count = (uint32_t)(length / block_size);
    }
    if ((flags & EKV_FILE_CREATE) && !windowed) {
        off_t want = (off_t)block_size * block_count;
        if (S_ISREG(st.st_mode) && (uint64_t)want != fsize &&
            ftruncate(fd, want) != 0) {
            err = neg_errno(errno);
            goto fail;
        }
        fsize = (uint64_t)want;
    }
    if (!windowed) {
        if (fsize == 0 || fsize % block_size != 0 ||
            fsize / block_size > 0xffffffffu ||
            (block_count && fsize / block_size != block_count)) {
            err = EKV_EDOM;
            goto fail;
        }
        block_count = (uint32_t)(fsize / block_size);
    } else if (!block_count ||
               offset + (uint64_t)block_size * block_count > fsize) {
        err = EKV_EDOM; /* the window does not lie inside the file */
        goto fail;
    }
    uint64_t span = (uint64_t)block_size * block_count;
    if (!(flags & EKV_FILE_NOLOCK)) {
        err = take_locks(fd, !rdonly, !windowed, (off_t)offset, (off_t)span,
                         opt->lock_wait_ms);
        if (err)
            goto fail;
    }

    file_dev *f = calloc(1, sizeof(*f));
    char *p = strdup(path);
    if (!f || !p) {
        free(f);
        free(p);
        err = EKV_ENOMEM;
        goto fail;
    }
    f->fd = fd;
    f->flags = flags;
    f->base = (off_t)offset;
    f->path = p;
    f->dev.block_size = block_size;
    f->dev.block_count = block_count;
    f->dev.read = fd_read;
    f->dev.write_buffer = rdonly ? NULL : fd_write_buffer;
    f->dev.read_blocks = fd_read_blocks;
    f->dev.zero_run = fd_zero_run;
    f->dev.write = rdonly ? NULL : fd_write;
    f->dev.flush = rdonly ? NULL : fd_flush;
    f->dev.close = fd_close;
    f->dev.ctx = f;
    *out = &f->dev;
    return 0;
fail:
    close(fd);
    return err;
}

int ekv_file_open(ekv_device **out, const char *path, uint32_t flags,
                  uint32_t block_size, uint32_t block_count)
{
    ekv_file_options o = {
        .flags = flags,
        .block_size = block_size,
        .block_count = block_count,
    };
    return ekv_file_open_ex(out, path, &o);
}

uint64_t ekv_file_offset(const ekv_device *d)
{
    return d && d->close == fd_close ? (uint64_t)((file_dev *)d->ctx)->base
                                     : 0;
}
