/*
 * embedkv_file.h - the POSIX image-file device for libembedkv.
 *
 * A device over a regular file (or a block device node): pread/pwrite of
 * whole blocks, fdatasync() on flush, and an flock() so that two processes
 * never write one image: writers take an exclusive lock, read-only openers a
 * shared one, both without waiting. Not available in freestanding builds.
 *
 * Runs of blocks move in large calls: single-block reads that follow each
 * other are read ahead (up to 256 KiB per pread), and writes of
 * consecutive blocks are gathered into one pwrite of up to 256 KiB (the
 * device lends the core the next place of the run to build a value's
 * chunk in: ekv_device's write_buffer). Gathered writes reach the file
 * before the flush returns (with EKV_FILE_NOSYNC too), before any read of
 * the file that could see them, and at close; the device's own reads see
 * them at once. A gathered write that fails is
 * reported by the call that sent it to the file: the flush (which then
 * fails), or a later write or batch read. Close the device only after a
 * flush if a write error must not go unseen. When a run outgrows the
 * buffer (a large value, written block after block), the full buffer is
 * written and the kernel is asked to start writing it to the disk
 * (sync_file_range, SYNC_FILE_RANGE_WRITE, without waiting; not with
 * EKV_FILE_NOSYNC), so the flush that ends the put finds most of the
 * value on the disk already.
 *
 * Copyright 2026 the embedkv C authors. Licensed under the Apache License 2.0.
 */
#ifndef EMBEDKV_FILE_H
#define EMBEDKV_FILE_H

#include "embedkv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open the file read-only: the device gets no write callback and nothing
 * is ever written (not even by mistake of a caller). Shared lock. */
#define EKV_FILE_RDONLY 0x1u
/* Create the file if missing and size it to block_size * block_count
 * (an existing file of another size is extended or truncated). */
#define EKV_FILE_CREATE 0x2u
/* flush does not call fdatasync(): faster, not crash-safe. */
#define EKV_FILE_NOSYNC 0x4u
/* Do not lock (for tools that know what they do, e.g. tests). */
#define EKV_FILE_NOLOCK 0x8u

/*
 * ekv_file_open - open an image file as a device.
 * @out:   receives a device to free with ekv_device_close().
 * @path:  the image.
 * @flags: EKV_FILE_* flags.
 * @block_size: 0 to read it from the image's storage header (which then
 *         must be an embedkv header), or the geometry to use.
 * @block_count: with EKV_FILE_CREATE, the size of the new image in blocks;
 *         otherwise 0 (derived from the file size) or the count expected.
 * Returns 0; EKV_ENOENT (no such file); EKV_EBUSY (locked by another
 * process); EKV_EBADHDR (block_size 0 and no embedkv header); EKV_EDOM (the
 * file size is not a whole number of blocks, is empty, or differs from
 * block_count); EKV_EROFS (writable open of a file we may not write);
 * EKV_EINVAL; EKV_ENOMEM; or a negated errno.
 */
EKV_API
int ekv_file_open(ekv_device **out, const char *path, uint32_t flags,
                  uint32_t block_size, uint32_t block_count);

/* Options of ekv_file_open_ex(). Zero-initialise and set what you need. */
typedef struct ekv_file_options {
    /* EKV_FILE_* flags. */
    uint32_t flags;
    /* As for ekv_file_open: 0 reads them from the storage header found at
     * `offset` (block_count 0: from the window's length, else the header). */
    uint32_t block_size;
    uint32_t block_count;
    /* The window: the store occupies bytes [offset, offset + length) of the
     * file, block 0 at `offset`. Nothing outside it is ever read for the
     * store's blocks or written, and the file is never resized when either
     * is non-zero (EKV_FILE_CREATE then requires the window to lie inside
     * the existing file). length 0: block_size * block_count (from the
     * arguments, else from the header at offset); with offset 0 and no
     * header either, the whole file as ekv_file_open does. */
    uint64_t offset;
    uint64_t length;
    /* Milliseconds to wait for a lock another process holds before
     * returning EKV_EBUSY (0: do not wait). */
    uint32_t lock_wait_ms;
} ekv_file_options;

/*
 * ekv_file_open_ex - ekv_file_open with a window inside the file and a
 * bounded wait for the lock.
 * Locking: every open takes an flock() on the whole file (exclusive for a
 * writable open of the whole file, shared otherwise) and an open-file-
 * description lock (F_OFD_SETLK) on its window's bytes (write lock when
 * writable, read lock when not). So two writers of one file conflict
 * unless their windows do not overlap, and a reader conflicts with any
 * writer of bytes it reads.
 * The path must name a regular file or a block device: a FIFO, socket,
 * character device or directory is refused at once (-ENODEV, -EISDIR)
 * without blocking in open().
 * Returns what ekv_file_open returns; EKV_EDOM also when the window does
 * not lie inside the file or its length is not a whole number of blocks.
 */
EKV_API
int ekv_file_open_ex(ekv_device **out, const char *path,
                     const ekv_file_options *opt);

/* The window of a file device: its byte offset in the file (0 for any
 * other device). */
EKV_API
uint64_t ekv_file_offset(const ekv_device *dev);

/*
 * ekv_file_error - the errno of the device's last read, write or flush of
 * its file that failed (0: none has since it was opened), and in *op (if
 * not NULL) which it was: "read", "write" or "flush" (NULL when none).
 * For messages: a device's error reaches the caller of an ekv_* call
 * unchanged (a negated errno), and one can equal an EKV_* code of another
 * meaning, such as -ENOSPC from a full file system holding the image,
 * which is EKV_ENOSPC ("not enough free blocks"). A call that failed with
 * a device's error left that device's ekv_file_error set.
 */
EKV_API
int ekv_file_error(const ekv_device *dev, const char **op);

/* The path given to ekv_file_open (for messages). */
EKV_API
const char *ekv_file_path(const ekv_device *dev);

/* Whether the device was opened read-only (1) or not (0). */
EKV_API
int ekv_file_is_rdonly(const ekv_device *dev);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKV_FILE_H */
