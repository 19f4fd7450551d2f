/*
 * common.h - what the embedkvfs subcommands and the mount share: opening a
 * set of replica images with clear messages, exit codes, and key parsing.
 */
#ifndef EKVFS_COMMON_H
#define EKVFS_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "embedkv.h"
#include "embedkv_file.h"

#define PROG "embedkvfs"

/* Exit codes of the subcommands other than check (documented in
 * embedkvfs(1)). check uses fsck(8) codes. */
enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,       /* any other failure */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_NOKEY = 3,     /* the key does not exist */
    EXIT_CORRUPT = 4,   /* not an image, bad geometry/version, corrupt */
    EXIT_IO = 5,        /* I/O error, image busy, no space, read-only */
};

/* How long every open of an image waits for a lock another process
 * holds (the daemon of a mount that is just ending, another command)
 * before it fails with EKV_EBUSY. Default IMAGE_LOCK_WAIT_MS; the
 * commands' --wait SECONDS and --no-wait set it. */
#define IMAGE_LOCK_WAIT_MS 5000u
void images_set_lock_wait(uint32_t ms);
uint32_t images_lock_wait(void);

/* Flags for images_open. */
#define IMG_RDONLY 0x1u   /* open files read-only; in-memory recovery */
#define IMG_DEGRADED 0x2u /* drop unusable replicas if one is good */
#define IMG_NOSYNC 0x4u   /* no fdatasync */
#define IMG_NOLOCK 0x8u
#define IMG_QUIET 0x10u   /* print nothing; the caller reports open_err */
#define IMG_FORCE 0x20u   /* EKV_OPEN_FORCE: for repair --force only */
#define IMG_NOHEAL 0x40u  /* writable, but leave diverged replicas as they
                             are (mount -o noheal) */

typedef struct images {
    unsigned n;
    char **paths;
    ekv_device *devs[EKV_MAX_REPLICAS];
    ekv_store *store;
    /* Why image i could not be used as it is (0: it could): the file's
     * open error, its header's error, or EKV_EDOM for a geometry that
     * differs from the first good image's. In a degraded set the image is
     * then a dropped replica. */
    int open_err[EKV_MAX_REPLICAS];
} images;

/*
 * Open paths[0..n) as replicas of one store and open the store. On failure
 * prints one line "embedkvfs: PATH: reason" on stderr and returns the
 * EKV error; everything opened is closed again. With IMG_DEGRADED, images
 * whose header is unusable are opened with the good images' geometry (or
 * left out when even that fails) and dropped replicas get a warning line.
 * An image locked by another process (EKV_EBUSY) or named twice (EKV_EINVAL)
 * always fails the open, degraded or not: another user of the store is not
 * a broken replica; so does a path that is not a regular file or block
 * device (-ENODEV, -EISDIR). A missing file is returned as EKV_ENOENT: map it with
 * exit_code_for_open(), not exit_code_for() (which means "no such key").
 * Image i is the store in window_for(i) of its file (window.h); one file
 * may be named again for another replica in a window that does not
 * overlap (EKV_EINVAL if it does).
 */
int images_open(images *im, char **paths, unsigned n, unsigned flags);
void images_close(images *im);
/* If a read, write or flush of an image's file failed (ekv_file_error),
 * put "cannot write the image PATH: No space left on device" into buf and
 * return 1: that is the cause of the store call's error, whatever code it
 * came back as (a full file system's ENOSPC is EKV_ENOSPC). Else 0. */
int device_error_text(const images *im, char *buf, size_t size);
#define DEVICE_ERROR_MAX 4352 /* room for that text: a path and a reason */

/* Read a key's whole value into a malloc'd buffer (*out, one spare byte
 * allocated past *len). hint: the expected size (ekv_key_info.value_size);
 * a fall-back copy larger than that is read too, with the length the read
 * returned. 0 or an EKV error. */
int value_read(ekv_store *s, const void *key, size_t klen, size_t hint,
               uint8_t **out, size_t *len);

/* Map an EKV error to an exit code above. */
int exit_code_for(int err);

/* The same for an error of images_open() or ekv_file_open(), where
 * EKV_ENOENT means a missing file (EXIT_IO), not a missing key. */
int exit_code_for_open(int err);

/* Print "embedkvfs: CONTEXT: message" for err. */
void print_error(const char *context, int err);

/* The message for an error of opening a file (EKV_ENOENT is "no such file
 * or directory" here). Never NULL. */
const char *open_strerror(int err);

/* What is in an image file's first block, read with plain reads (no lock,
 * never a write): enough to say precisely why it is not a usable image. */
typedef struct image_probe {
    int err;              /* 0: valid header and file size; else the EKV
                             error ekv_file_open/ekv_read_header give, or
                             a negated errno (EKV_ENOENT: no file) */
    char reason[192];     /* why not, one phrase ("" when err is 0) */
    uint64_t file_size;   /* bytes (a block device's size) */
    int magic;            /* block 0 starts with 0x01 "EKV" */
    int header_crc_ok;    /* ... and its CRC is right at its block size */
    uint32_t block_size;  /* the header's fields, when magic is set */
    uint32_t block_count;
    ekv_block_info hdr;   /* block 0 decoded, when header_crc_ok */
} image_probe;

/* Fill *p for path. Returns p->err. Never blocks on a FIFO and reads no
 * more than block 0 (no hole of a sparse image is read). */
int image_probe_path(const char *path, image_probe *p);

/* "a FIFO", "a socket", "a character device", "a directory", ... for a
 * file that is not a regular file or block device. */
const char *file_kind(unsigned mode);

/*
 * Open an image file read-only for reading it directly (dump, probes):
 * without blocking on a FIFO, refusing what is not a regular file or a
 * block device (-ENODEV, -EISDIR) with the reason in why. Returns the fd
 * (blocking again) or a negative EKV error / negated errno.
 */
int image_fd_open(const char *path, char *why, size_t cap);

/* Take a shared flock on fd, waiting images_lock_wait(). 0 or EKV_EBUSY
 * (or a negated errno). */
int image_fd_lock_shared(int fd);

/* What lseek(SEEK_DATA/SEEK_HOLE) said last about a file, so that the
 * holes of a sparse image are not read (a 4 GiB image with one key is
 * mostly hole) and its data is not asked about block by block. */
typedef struct hole_map {
    int64_t from;     /* [from, data) is a hole (from < 0: no SEEK_DATA) */
    int64_t data;
    int64_t data_end; /* [data, data_end) is data */
} hole_map;
#define HOLE_MAP_INIT {0, 0, 0}

/* Whether bytes [off, off + len) of fd (offsets in the file, not in a
 * window) lie wholly in a hole (they read as
 * zeros without reading). 0 when unknown. */
int fd_in_hole(int fd, uint64_t off, uint32_t len, hole_map *h);

/* Whether path names an existing file with an embedkv storage header (the
 * magic at block 0): used to tell an IMAGE given where a KEY belongs. */
int looks_like_image(const char *path);

/* The same for the store in the window [offset, offset + length) of the
 * file (length 0: what the header there says); both 0 is the whole file. */
int image_probe_at(const char *path, uint64_t offset, uint64_t length,
                   image_probe *p);

/* "embedkvfs: PATH: message" for an open error of image path, with the
 * probe's precise reason for a header or geometry error. */
void print_image_error(const char *path, int err);
void print_image_error_at(const char *path, uint64_t offset, uint64_t length,
                          int err);
/* The same message as one phrase in out[cap], without "embedkvfs: PATH: ",
 * for the image at the window [woff, +wlen) (0, 0: the whole file). */
void image_error_text(const char *path, uint64_t woff, uint64_t wlen,
                      int err, char *out, size_t cap);

/* replica_msg.c: the replica set in words. Why ekv_open refused the set
 * (EKV_ENOTUNIQ, EKV_ESTALE, EKV_ENXIO, EKV_EDOM), read from the images'
 * headers, on stderr. */
void set_explain_refusal(char **paths, unsigned n, int err);
/* After an open: what heal did, stale and absent replicas (stderr). */
void set_report_open(const images *im, int quiet);
/* After images_open: how many blocks every replica in use failed to read
 * at open (0: none), so that commands that show the store (ls, export,
 * extract, a get that finds no key) fail with EXIT_IO rather than pass a
 * partial view for a whole one. */
uint32_t view_lacks_blocks(void);
/* Replica i's state in words ("in use", "stale", "dropped", "not a replica
 * of this store") for its status; *why gets details (may be ""). */
const char *set_state_text(const images *im, unsigned i, int status,
                           char *why, size_t cap);

#endif
