/*
 * common.h - what the embedkvfs subcommands and the mount share: opening a
 * set of replica images with clear messages, exit codes, and key parsing.
 */
#ifndef EKVFS_COMMON_H
#define EKVFS_COMMON_H

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

/* Flags for images_open. */
#define IMG_RDONLY 0x1u   /* open files read-only; in-memory recovery */
#define IMG_DEGRADED 0x2u /* drop unusable replicas if one is good */
#define IMG_NOSYNC 0x4u   /* no fdatasync */
#define IMG_NOLOCK 0x8u

typedef struct images {
    unsigned n;
    char **paths;
    ekv_device *devs[EKV_MAX_REPLICAS];
    ekv_store *store;
} images;

/*
 * Open paths[0..n) as replicas of one store and open the store. On failure
 * prints one line "embedkvfs: PATH: reason" on stderr and returns the
 * EKV error; everything opened is closed again. With IMG_DEGRADED, images
 * whose header is unusable are opened with the good images' geometry (or
 * left out when even that fails) and dropped replicas get a warning line.
 */
int images_open(images *im, char **paths, unsigned n, unsigned flags);
void images_close(images *im);

/* Map an EKV error to an exit code above. */
int exit_code_for(int err);

/* Print "embedkvfs: CONTEXT: message" for err. */
void print_error(const char *context, int err);

#endif
