/* common.c - see common.h. */
#include <errno.h>
#include <string.h>

#include "common.h"

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

int images_open(images *im, char **paths, unsigned n, unsigned flags)
{
    memset(im, 0, sizeof(*im));
    if (n == 0 || n > EKV_MAX_REPLICAS) {
        fprintf(stderr, "%s: between 1 and %u images, please\n", PROG,
                EKV_MAX_REPLICAS);
        return EKV_EINVAL;
    }
    im->n = n;
    im->paths = paths;
    uint32_t fflags = file_flags(flags);
    int errs[EKV_MAX_REPLICAS] = {0};
    int first_err = 0;
    uint32_t bs = 0, bc = 0;

    /* First pass: geometry from each image's own header. */
    for (unsigned i = 0; i < n; i++) {
        errs[i] = ekv_file_open(&im->devs[i], paths[i], fflags, 0, 0);
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
        }
        if (errs[i] && !first_err)
            first_err = errs[i];
    }
    for (unsigned i = 0; i < n; i++) {
        if (!errs[i] && (im->devs[i]->block_size != bs ||
                         im->devs[i]->block_count != bc)) {
            fprintf(stderr,
                    "%s: %s: geometry %u x %u differs from %s (%u x %u)\n",
                    PROG, paths[i], im->devs[i]->block_size,
                    im->devs[i]->block_count, paths[0], bs, bc);
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
        if (!errs[i])
            continue;
        if (!(flags & IMG_DEGRADED) || !bs) {
            print_error(paths[i], errs[i]);
            images_close(im);
            return errs[i];
        }
        fprintf(stderr, "%s: warning: %s: %s; replica dropped\n", PROG,
                paths[i], ekv_strerror(errs[i]));
        /* Keep the device (opened with the good geometry) so that repair
         * can rebuild it. */
        if (ekv_file_open(&im->devs[i], paths[i], fflags, bs, bc) != 0) {
            null_devs[i].block_size = bs;
            null_devs[i].block_count = 1;
            null_devs[i].read = null_read;
            im->devs[i] = &null_devs[i];
        }
    }

    ekv_options o = {0};
    o.flags = ((flags & IMG_RDONLY) ? EKV_OPEN_RDONLY : 0) |
              ((flags & IMG_DEGRADED) ? EKV_OPEN_DEGRADED : 0);
    int err = ekv_open(&im->store, im->devs, n, &o);
    if (err) {
        print_error(paths[0], err);
        for (unsigned i = 0; i < n; i++)
            if (im->devs[i] == &null_devs[i])
                im->devs[i] = NULL;
        images_close(im);
        return err;
    }
    (void)first_err;
    return 0;
}
