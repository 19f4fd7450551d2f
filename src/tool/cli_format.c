/*
 * cli_format.c - embedkvfs format: create (or initialise) image files as
 * the replicas of one new, empty store.
 *
 * Everything that can be checked is checked for every image before any of
 * them is touched: a valid embedkv header without --force, a lock held by
 * another process, a name given twice, sizes that disagree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "numparse.h"

#define DEFAULT_BLOCK_SIZE 256u

static const char format_help[] =
    "usage: embedkvfs format [--block-size N] [--blocks N | --size BYTES]\n"
    "                        [--erase-byte 00|ff | --keep-data] [--force]\n"
    "                        IMAGE...\n"
    "Create IMAGE... (or initialise existing files or block devices) as the\n"
    "replicas of one new, empty store; replica i gets replica_id i.\n"
    "  --block-size N   bytes per block, 64..65536 (default: the block size\n"
    "                   of an existing embedkv image being re-formatted,\n"
    "                   else 256)\n"
    "  --blocks N       blocks per image, header included (at least 2)\n"
    "  --size BYTES     image size; a whole number of blocks; K, M, G\n"
    "                   suffixes (powers of 1024) are accepted\n"
    "                   Without --blocks and --size, existing images keep\n"
    "                   their size; new ones need one of them.\n"
    "  --erase-byte B   fill for erased blocks: 00 (default) or ff (erased\n"
    "                   NAND); with ff every data block is written\n"
    "  --keep-data      write the headers only: records already in the data\n"
    "                   area survive and recovery judges them (Go/Rust\n"
    "                   behaviour); by default existing data is erased\n"
    "  --force          overwrite (and resize) an existing embedkv image, a\n"
    "                   file holding other data, or a block device\n"
    "Without --force only new files and blank files (all 0x00, e.g. made by\n"
    "truncate -s, or all 0xFF) are written. FIFOs, sockets, character\n"
    "devices and dangling symbolic links are refused, even with --force.\n"
    "Exit: 0 ok, 1 refused (existing data without --force, not a file),\n"
    "2 usage, 5 I/O error or locked image. See embedkvfs(1).\n";

/* Every number goes through the tool's one parser (numparse.h). */
static int parse_size(const char *s, int suffixes, uint64_t *out)
{
    (void)suffixes;
    return parse_number(s, UINT64_MAX, out) ? -1 : 0;
}

static int parse_erase_byte(const char *s, uint8_t *out)
{
    if (!strcasecmp(s, "00") || !strcmp(s, "0") || !strcasecmp(s, "0x00")) {
        *out = 0x00;
        return 0;
    }
    if (!strcasecmp(s, "ff") || !strcasecmp(s, "0xff")) {
        *out = 0xff;
        return 0;
    }
    return -1;
}

/* What we know about one image before formatting it. */
typedef struct target {
    const char *path;
    char canon[PATH_MAX + 1]; /* a new file's canonical path ("" if
                                 unknown), to spot duplicates */
    int exists;
    int blockdev;
    uint64_t size;     /* bytes now (0 if new) */
    image_probe probe; /* when it exists */
    dev_t dev;
    ino_t ino;
    int blank;         /* an existing regular file of only 0x00 (or only
                          0xFF) bytes: nothing to lose */
    uint8_t blank_byte; /* which of the two */
} target;

/* Whether the regular file at path holds nothing but 0x00 bytes (holes
 * included) or nothing but 0xFF bytes. Reads only its data extents, and
 * stops at the first other byte. */
static int file_is_blank(const char *path, uint64_t size, uint8_t *byte)
{
    char why[160];
    int fd = image_fd_open(path, why, sizeof(why));
    if (fd < 0)
        return 0;
    static uint8_t buf[65536];
    int zero = 0, ff = 0, blank = 1;
    uint64_t pos = 0;
    while (blank && pos < size) {
        off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            zero = 1; /* a hole up to the end */
            break;
        }
        off_t h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
        if (d < 0 || h < 0) { /* no SEEK_DATA: read it all */
            d = (off_t)pos;
            h = (off_t)size;
        }
        if ((uint64_t)d > pos)
            zero = 1;
        for (off_t at = d; blank && at < h;) {
            size_t want = (uint64_t)(h - at) < sizeof(buf) ? (size_t)(h - at)
                                                           : sizeof(buf);
            ssize_t got = pread(fd, buf, want, at);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                blank = 0;
                break;
            }
            for (ssize_t i = 0; i < got; i++) {
                zero |= buf[i] == 0x00;
                ff |= buf[i] == 0xff;
                if ((buf[i] != 0x00 && buf[i] != 0xff) || (zero && ff)) {
                    blank = 0;
                    break;
                }
            }
            at += got;
        }
        pos = (uint64_t)h;
    }
    close(fd);
    *byte = ff ? 0xff : 0x00;
    return blank && !(zero && ff);
}

/* Whether another process holds a lock on path (the library's flock). */
static int locked_by_other(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

static int inspect(target *t, const char *path)
{
    struct stat st;
    memset(t, 0, sizeof(*t));
    t->path = path;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0 &&
        errno == ENOENT) {
        /* Creating the link's target somewhere else is rarely meant. */
        char to[PATH_MAX];
        ssize_t n = readlink(path, to, sizeof(to) - 1);
        to[n < 0 ? 0 : n] = 0;
        fprintf(stderr,
                "%s format: %s: a symbolic link to '%s', which does not "
                "exist: refused (format the target path itself)\n",
                PROG, path, to);
        return EXIT_ERR;
    }
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            /* Two names of one new file: compare their directories. */
            char *dup = strdup(path);
            char *slash = dup ? strrchr(dup, '/') : NULL;
            const char *base = slash ? slash + 1 : path;
            char *dir = dup ? (slash ? (slash == dup ? "/" : dup) : ".") : NULL;
            if (slash && slash != dup)
                *slash = 0;
            char *real = dir ? realpath(dir, NULL) : NULL;
            if (real)
                snprintf(t->canon, sizeof(t->canon), "%s/%s", real, base);
            free(real);
            free(dup);
            return 0;
        }
        fprintf(stderr, "%s format: %s: %s\n", PROG, path, strerror(errno));
        return EXIT_IO;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s format: %s: is a directory\n", PROG, path);
        return EXIT_IO;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        /* A FIFO would block, a character device (/dev/null) swallows
         * the store: never, not even with --force. */
        fprintf(stderr,
                "%s format: %s: not a regular file or block device (it is "
                "%s): refused\n",
                PROG, path, file_kind(st.st_mode));
        return EXIT_ERR;
    }
    t->exists = 1;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->blockdev = S_ISBLK(st.st_mode);
    image_probe_path(path, &t->probe);
    t->size = t->probe.file_size;
    t->blank = !t->blockdev &&
               (t->size == 0 || file_is_blank(path, t->size, &t->blank_byte));
    if (locked_by_other(path)) {
        print_error(path, EKV_EBUSY);
        return EXIT_IO;
    }
    return 0;
}

int cmd_format(int argc, char **argv)
{
    enum { O_BS = 1, O_BLOCKS, O_SIZE, O_ERASE, O_KEEP, O_FORCE };
    static const struct option opts[] = {
        {"block-size", required_argument, NULL, O_BS},
        {"blocks", required_argument, NULL, O_BLOCKS},
        {"size", required_argument, NULL, O_SIZE},
        {"erase-byte", required_argument, NULL, O_ERASE},
        {"keep-data", no_argument, NULL, O_KEEP},
        {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t bs = 0, blocks = 0, size = 0;
    int have_blocks = 0, have_size = 0, have_erase = 0, keep = 0, force = 0;
    uint8_t erase = 0x00;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_BS:
            if (parse_size(optarg, 0, &bs) || bs < EKV_MIN_BLOCK_SIZE ||
                bs > EKV_MAX_BLOCK_SIZE)
                return usage_error("format", EXIT_USAGE,
                                   "--block-size must be %u..%u, not '%s'",
                                   EKV_MIN_BLOCK_SIZE, EKV_MAX_BLOCK_SIZE,
                                   optarg);
            break;
        case O_BLOCKS:
            if (parse_size(optarg, 0, &blocks) || blocks < 2 ||
                blocks > 0xffffffffu)
                return usage_error("format", EXIT_USAGE,
                                   "--blocks must be 2..4294967295, not '%s'",
                                   optarg);
            have_blocks = 1;
            break;
        case O_SIZE:
            if (parse_size(optarg, 1, &size) || size == 0)
                return usage_error("format", EXIT_USAGE,
                                   "--size must be a byte count (K, M, G "
                                   "suffixes allowed), not '%s'",
                                   optarg);
            have_size = 1;
            break;
        case O_ERASE:
            if (parse_erase_byte(optarg, &erase))
                return usage_error("format", EXIT_USAGE,
                                   "--erase-byte must be 00 or ff, not '%s'",
                                   optarg);
            have_erase = 1;
            break;
        case O_KEEP: keep = 1; break;
        case O_FORCE: force = 1; break;
        case 'h': fputs(format_help, stdout); return EXIT_OK;
        default: return bad_option("format", EXIT_USAGE, argv, optopt);
        }
    }
    int n = argc - optind;
    char **paths = argv + optind;
    if (n < 1)
        return usage_error("format", EXIT_USAGE, "no IMAGE given");
    if (n > (int)EKV_MAX_REPLICAS)
        return usage_error("format", EXIT_USAGE, "at most %u images",
                           EKV_MAX_REPLICAS);
    if (have_blocks && have_size)
        return usage_error("format", EXIT_USAGE,
                           "give --blocks or --size, not both");
    if (keep && have_erase)
        return usage_error("format", EXIT_USAGE,
                           "--keep-data erases nothing: drop --erase-byte");

    static target t[EKV_MAX_REPLICAS]; /* big: keep it off the stack */
    for (int i = 0; i < n; i++) {
        int rc = inspect(&t[i], paths[i]);
        if (rc)
            return rc;
        for (int j = 0; j < i; j++)
            if ((t[i].exists && t[j].exists && t[j].dev == t[i].dev &&
                 t[j].ino == t[i].ino) ||
                (t[i].canon[0] && !strcmp(t[i].canon, t[j].canon)))
                return usage_error("format", EXIT_USAGE,
                                   "%s and %s are the same image", paths[j],
                                   paths[i]);
    }
    /* Re-formatting keeps the block size unless told otherwise. */
    if (!bs)
        for (int i = 0; i < n && !bs; i++)
            if (t[i].exists && t[i].probe.header_crc_ok &&
                t[i].probe.block_size >= EKV_MIN_BLOCK_SIZE &&
                t[i].probe.block_size <= EKV_MAX_BLOCK_SIZE)
                bs = t[i].probe.block_size;
    if (!bs)
        bs = DEFAULT_BLOCK_SIZE;
    if (have_size) {
        if (size % bs)
            return usage_error("format", EXIT_USAGE,
                               "--size %" PRIu64 " is not a whole number of "
                               "%" PRIu64 "-byte blocks",
                               size, bs);
        blocks = size / bs;
        if (blocks < 2 || blocks > 0xffffffffu)
            return usage_error("format", EXIT_USAGE,
                               "--size %" PRIu64 " gives %" PRIu64
                               " blocks; 2..4294967295 needed",
                               size, blocks);
    }
    if (!blocks) {
        /* Take the size of the existing images. */
        const char *from = NULL;
        for (int i = 0; i < n; i++) {
            if (!t[i].exists || !t[i].size)
                continue;
            if (t[i].size % bs || t[i].size / bs < 2 ||
                t[i].size / bs > 0xffffffffu) {
                fprintf(stderr,
                        "%s format: %s: its size (%" PRIu64 " bytes) is not "
                        "2 or more whole %" PRIu64 "-byte blocks; give "
                        "--blocks or --size\n",
                        PROG, paths[i], t[i].size, bs);
                return EXIT_USAGE;
            }
            if (blocks && t[i].size / bs != blocks) {
                fprintf(stderr,
                        "%s format: %s and %s differ in size; give --blocks "
                        "or --size\n",
                        PROG, from, paths[i]);
                return EXIT_USAGE;
            }
            blocks = t[i].size / bs;
            from = paths[i];
        }
        if (!blocks)
            return usage_error("format", EXIT_USAGE,
                               "give --blocks or --size for a new image");
    }
    for (int i = 0; i < n; i++) {
        if (t[i].exists && t[i].probe.header_crc_ok && !force) {
            fprintf(stderr,
                    "%s format: %s: already an embedkv image (%u blocks of %u "
                    "bytes); use --force to overwrite it\n",
                    PROG, paths[i], t[i].probe.block_count,
                    t[i].probe.block_size);
            return EXIT_ERR;
        }
        if (t[i].exists && !t[i].probe.header_crc_ok && !t[i].blank &&
            !force) {
            fprintf(stderr,
                    "%s format: %s: %s holding data that is not an embedkv "
                    "image (%" PRIu64 " bytes); use --force to overwrite it"
                    "%s\n",
                    PROG, paths[i],
                    t[i].blockdev ? "a block device" : "a file", t[i].size,
                    !t[i].blockdev && t[i].size > bs * blocks
                        ? " (it would be truncated)"
                        : "");
            return EXIT_ERR;
        }
        if (t[i].blockdev && t[i].size != bs * blocks) {
            /* A device cannot be resized, and an image must fill it (its
             * size is the header's blocks): a smaller store on it could
             * never be opened. */
            fprintf(stderr,
                    "%s format: %s: the device has %" PRIu64 " bytes, the "
                    "image would have %" PRIu64 "; an image fills its "
                    "device (omit --size and --blocks)\n",
                    PROG, paths[i], t[i].size, bs * blocks);
            return EXIT_USAGE;
        }
    }

    /* All checked: now write. The devices lock their files. */
    ekv_device *devs[EKV_MAX_REPLICAS] = {0};
    int rc = EXIT_OK, err = 0, i;
    for (i = 0; i < n; i++) {
        err = ekv_file_open(&devs[i], paths[i], EKV_FILE_CREATE, (uint32_t)bs,
                            (uint32_t)blocks);
        if (err) {
            print_image_error(paths[i], err);
            rc = exit_code_for_open(err);
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        ekv_format_options fo = {0};
        fo.replica_id_base = (uint32_t)i;
        /* One call per image: name the whole set in every header. */
        fo.participants =
            n > 1 ? (n >= 32 ? 0xffffffffu : (1u << n) - 1) : 0;
        fo.erase_byte = erase;
        /* A new file is zero-filled already; an old one holds records that
         * recovery would bring back unless they are erased. */
        fo.erase_data = !keep && (erase == 0xff || (t[i].exists && t[i].size));
        /* A blank file holds the erase byte already: writing it again
         * would only fill the holes of a sparse file. */
        if (t[i].exists && t[i].blank && t[i].blank_byte == erase)
            fo.erase_data = 0;
        err = ekv_format(&devs[i], 1, &fo);
        if (err) {
            print_error(paths[i], err);
            rc = exit_code_for(err);
            if (i > 0)
                fprintf(stderr,
                        "%s format: the images before %s were formatted; "
                        "format them all again\n",
                        PROG, paths[i]);
            goto out;
        }
        printf("%s: %" PRIu64 " blocks of %" PRIu64 " bytes (%" PRIu64
               " bytes), replica_id %d%s\n",
               paths[i], blocks, bs, blocks * bs, i,
               fo.erase_data ? (erase ? ", erased with 0xff" : ", erased")
                             : "");
    }
    rc = finish_stdout("format");
out:
    for (i = 0; i < n; i++)
        ekv_device_close(devs[i]);
    return rc;
}
