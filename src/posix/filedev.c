/*
 * filedev.c - the POSIX image-file device: whole-block pread/pwrite,
 * fdatasync on flush, flock against a second process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
    char *path;
} file_dev;

static int neg_errno(int e)
{
    return e > 0 ? -e : EKV_EIO;
}

static int fd_read(ekv_device *d, uint32_t block, void *buf)
{
    file_dev *f = d->ctx;
    off_t off = (off_t)block * d->block_size;
    size_t done = 0;
    if (block >= d->block_count)
        return EKV_EINVAL;
    while (done < d->block_size) {
        ssize_t n = pread(f->fd, (char *)buf + done, d->block_size - done,
                          off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return neg_errno(errno);
        if (n == 0)
            return EKV_EIO; /* the file shrank under us */
        done += (size_t)n;
    }
    return 0;
}

static int fd_write(ekv_device *d, uint32_t block, const void *buf)
{
    file_dev *f = d->ctx;
    off_t off = (off_t)block * d->block_size;
    size_t done = 0;
    if (block >= d->block_count)
        return EKV_EINVAL;
    while (done < d->block_size) {
        ssize_t n = pwrite(f->fd, (const char *)buf + done,
                           d->block_size - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return neg_errno(errno);
        done += (size_t)n;
    }
    return 0;
}

static int fd_flush(ekv_device *d)
{
    file_dev *f = d->ctx;
    if (f->flags & EKV_FILE_NOSYNC)
        return 0;
    while (fdatasync(f->fd) != 0) {
        if (errno == EINTR)
            continue;
        /* A device node or pipe that cannot sync has nothing to sync. */
        if (errno == EINVAL || errno == EROFS)
            return 0;
        return neg_errno(errno);
    }
    return 0;
}

static void fd_close(ekv_device *d)
{
    file_dev *f = d->ctx;
    close(f->fd); /* releases the flock */
    free(f->path);
    free(f);
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

/* Block size from a header's first bytes, 0 if there is no header. */
static uint32_t header_block_size(int fd)
{
    uint8_t h[12];
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return 0;
    if (h[0] != 0x01 || memcmp(h + 1, "EKV", 3) != 0)
        return 0;
    return (uint32_t)h[8] | ((uint32_t)h[9] << 8) | ((uint32_t)h[10] << 16) |
           ((uint32_t)h[11] << 24);
}

int ekv_file_open(ekv_device **out, const char *path, uint32_t flags,
                  uint32_t block_size, uint32_t block_count)
{
    if (!out || !path)
        return EKV_EINVAL;
    *out = NULL;
    int rdonly = (flags & EKV_FILE_RDONLY) != 0;
    if (rdonly && (flags & EKV_FILE_CREATE))
        return EKV_EINVAL;
    if ((flags & EKV_FILE_CREATE) && (!block_size || !block_count))
        return EKV_EINVAL;
    int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (flags & EKV_FILE_CREATE)
        oflags |= O_CREAT;
    int fd = open(path, oflags, 0644);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return EKV_ENOENT;
        if (!rdonly && (e == EACCES || e == EROFS || e == EPERM))
            return EKV_EROFS;
        return neg_errno(e);
    }
    int err = 0;
    struct stat st;
    if (!(flags & EKV_FILE_NOLOCK) &&
        flock(fd, (rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? EKV_EBUSY : neg_errno(errno);
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        err = neg_errno(errno);
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        err = -EISDIR;
        goto fail;
    }
    if (flags & EKV_FILE_CREATE) {
        off_t want = (off_t)block_size * block_count;
        if (S_ISREG(st.st_mode) && st.st_size != want &&
            ftruncate(fd, want) != 0) {
            err = neg_errno(errno);
            goto fail;
        }
        st.st_size = want;
    } else {
        if (!block_size)
            block_size = header_block_size(fd);
        if (!block_size) {
            err = st.st_size == 0 ? EKV_EDOM : EKV_EBADHDR;
            goto fail;
        }
        if (S_ISBLK(st.st_mode)) {
            off_t end = lseek(fd, 0, SEEK_END);
            st.st_size = end < 0 ? 0 : end;
        }
        if (st.st_size == 0 || st.st_size % block_size != 0 ||
            (uint64_t)st.st_size / block_size > 0xffffffffu ||
            (block_count && (uint64_t)st.st_size / block_size != block_count)) {
            err = EKV_EDOM;
            goto fail;
        }
        block_count = (uint32_t)((uint64_t)st.st_size / block_size);
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
    f->path = p;
    f->dev.block_size = block_size;
    f->dev.block_count = block_count;
    f->dev.read = fd_read;
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
