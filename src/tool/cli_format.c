/*
 * cli_format.c - embedkvfs format: create (or initialise) image files as
 * the replicas of one new, empty store.
 *
 * Everything that can be checked is checked for every image before any of
 * them is touched: a valid embedkv header without --force, a lock held by
 * another process, a name given twice, sizes that disagree, a geometry
 * too large to open. Then every image is opened (a new file created) and
 * locked, then grown and its space reserved, all of which can be undone;
 * only then is any image shrunk or written (format_images).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "bulk.h"
#include "names.h"
#include "numparse.h"
#include "progress.h"
#include "window.h"

#define DEFAULT_BLOCK_SIZE 256u
/* How much of a block device is read to tell "holds data" in a refusal. */
#define DEV_LOOK ((uint64_t)1 << 20)
/* Memory that opening a store takes per block, whatever it holds: while
 * recovery scans a replica, a kind byte and a 16-byte chunk record per
 * block (src/core/mode_index.c, scan_tmp), and for as long as the store is
 * open a free-map bit per block and replica (freemap.c). The key index
 * comes on top, per key (index.c). The allocation is the same on every
 * machine, but whether it succeeds is not (overcommit, ulimit -v), so
 * format sets a fixed bound instead of guessing: at MAX_BLOCKS the
 * per-block part is 1.1 GiB (it opens under ulimit -v 1.25 GiB), and
 * 2000M blocks of 64 bytes would have needed 33 GiB, which an open on a
 * 24 GiB machine could not get. */
#define OPEN_BYTES_PER_BLOCK 17u
#define MAX_BLOCKS ((uint64_t)1 << 26)

static const char format_help[] =
    "usage: embedkvfs format [--block-size N] [--blocks N | --size BYTES]\n"
    "                        [--erase-byte 00|ff | --keep-data] [--force]\n"
    "                        IMAGE...\n"
    "Create IMAGE... (or initialise existing files or block devices) as the\n"
    "replicas of one new, empty store; replica i gets replica_id i.\n"
    "  --block-size N   bytes per block, 64..65536 (default: the block size\n"
    "                   of an existing embedkv image being re-formatted,\n"
    "                   else 256)\n"
    "  --blocks N       blocks per image, header included (2..67108864)\n"
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
    "                   file holding other data, or a block device (in a\n"
    "                   window: any data that is not erased)\n"
    "  --from SOURCE    fill the new store from SOURCE: a directory (one\n"
    "                   file per key, named as ls prints keys), a JSON\n"
    "                   document as export writes it, or a CSV file of\n"
    "                   key,encoding,value rows. Keys are stored in\n"
    "                   ascending byte order: the same SOURCE gives the\n"
    "                   same image bytes every time.\n"
    "  --offset N, --length N   format the window [N, N+length) of an\n"
    "                   existing file (a dump): nothing outside it is\n"
    "                   written and the file keeps its size\n"
    HELP_HELP
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
    uint64_t size;     /* bytes now (0 if new) */
    image_probe probe; /* when it exists */
    dev_t dev;
    ino_t ino;
    int exists;
    int blockdev;
    int blank;         /* an existing regular file of only 0x00 (or only
                          0xFF) bytes: nothing to lose */
    uint8_t blank_byte; /* which of the two */
    char canon[PATH_MAX + 1]; /* a new file's canonical path ("" if
                                 unknown), to spot duplicates */
    /* While it is written (hold_image): */
    int fd;            /* holds the lock; -1 when not open */
    int created;       /* format created the file: removed on failure */
    int changed;       /* shrunk or written: past undoing */
    int erase_all;     /* every data block is written (ekv_format) */
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
    t->fd = -1;
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
        /* Refused as a FIFO is: not a file to format (exit 1). */
        fprintf(stderr, "%s format: %s: is a directory: refused\n", PROG,
                path);
        return EXIT_ERR;
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
    if (!window_given() && locked_by_other(path)) {
        print_error(path, EKV_EBUSY);
        return EXIT_IO;
    }
    return 0;
}

static int format_images(char **paths, int n, uint64_t bs, uint64_t blocks,
                         int have_blocks, int have_size, uint64_t size,
                         int have_erase, uint8_t erase, int keep, int force,
                         const char *from, const bulk_doc *doc);

int cmd_format(int argc, char **argv)
{
    enum { O_BS = 1, O_BLOCKS, O_SIZE, O_ERASE, O_KEEP, O_FORCE, O_FROM };
    static const struct option opts[] = {
        {"block-size", required_argument, NULL, O_BS},
        {"blocks", required_argument, NULL, O_BLOCKS},
        {"size", required_argument, NULL, O_SIZE},
        {"erase-byte", required_argument, NULL, O_ERASE},
        {"keep-data", no_argument, NULL, O_KEEP},
        {"force", no_argument, NULL, O_FORCE},
        {"from", required_argument, NULL, O_FROM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t bs = 0, blocks = 0, size = 0;
    int have_blocks = 0, have_size = 0, have_erase = 0, keep = 0, force = 0;
    uint8_t erase = 0x00;
    const char *from = NULL;
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
                                   "--blocks must be 2..%" PRIu64 ", not "
                                   "'%s'", MAX_BLOCKS, optarg);
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
        case O_FROM: from = optarg; break;
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
    if (keep && from)
        return usage_error("format", EXIT_USAGE,
                           "--from builds a new store: drop --keep-data");

    const int win = window_given();
    if (win && window_check_count("format", (unsigned)n))
        return EXIT_USAGE;
    static bulk_doc doc;
    if (from) {
        int rc = bulk_load("format", from, &doc);
        if (rc)
            return rc;
        if (!bs && doc.block_size) {
            if (doc.block_size < EKV_MIN_BLOCK_SIZE ||
                doc.block_size > EKV_MAX_BLOCK_SIZE) {
                fprintf(stderr, "%s format: %s: block_size %u is not "
                                "supported\n", PROG, from, doc.block_size);
                bulk_free(&doc);
                return EXIT_USAGE;
            }
            bs = doc.block_size;
        }
        if (!have_blocks && !have_size && doc.block_count >= 2 && !win)
            blocks = doc.block_count;
    }
    int rc = format_images(paths, n, bs, blocks, have_blocks, have_size,
                           size, have_erase, erase, keep, force, from, &doc);
    bulk_free(&doc);
    return rc;
}

/* A geometry the tool could not open on a machine of modest memory. */
static int too_many_blocks(uint64_t blocks, uint64_t bs, int n)
{
    uint64_t need = blocks * OPEN_BYTES_PER_BLOCK +
                    (uint64_t)n * ((blocks + 7) / 8);
    fprintf(stderr,
            "%s format: %" PRIu64 " blocks of %" PRIu64 " bytes are too "
            "many: a store has at most %" PRIu64 " blocks (opening one "
            "takes %u bytes of memory per block, %" PRIu64 " MiB for "
            "this one); use larger blocks or fewer\n",
            PROG, blocks, bs, MAX_BLOCKS, OPEN_BYTES_PER_BLOCK,
            (need + (1u << 20) - 1) >> 20);
    return EXIT_USAGE;
}

/* Whether the window [off, off+len) of path is all 0x00 (returns 0x00),
 * all 0xFF (0xff), or anything else (-1; also on a read error). */
static int window_fill(const char *path, uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static uint8_t buf[1 << 16];
    int fill = -2;
    while (len && fill != -1) {
        size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got <= 0) {
            fill = -1;
            break;
        }
        if (fill == -2)
            fill = buf[0] == 0x00 ? 0x00 : buf[0] == 0xff ? 0xff : -1;
        for (ssize_t i = 0; i < got && fill >= 0; i++)
            if (buf[i] != (uint8_t)fill)
                fill = -1;
        off += (uint64_t)got;
        len -= (uint64_t)got;
    }
    close(fd);
    return fill < 0 ? -1 : fill;
}

/* Whether more blocks of the store in the window are erased with 0xFF
 * than with 0x00. */
static int window_mostly_ff(const char *path, uint64_t off, uint64_t bs,
                            uint64_t blocks)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static uint8_t blk[EKV_MAX_BLOCK_SIZE];
    uint64_t ff = 0, zero = 0;
    for (uint64_t b = 1; b < blocks; b++) {
        if (pread(fd, blk, bs, (off_t)(off + b * bs)) != (ssize_t)bs)
            break;
        uint64_t i = 1;
        while (i < bs && blk[i] == blk[0])
            i++;
        if (i == bs && blk[0] == 0xff)
            ff++;
        else if (i == bs && blk[0] == 0x00)
            zero++;
    }
    close(fd);
    return ff > zero;
}

/* Fill the freshly formatted store on devs with the keys of doc, in
 * ascending key order. */
static int fill_store(ekv_device **devs, int n, uint8_t erase,
                      const bulk_doc *doc, char **paths)
{
    ekv_store *s = NULL;
    ekv_options o = {0};
    o.erase_byte = erase;
    int err = ekv_open(&s, devs, (unsigned)n, &o);
    if (err) {
        print_error(paths[0], err);
        return err;
    }
    progress_begin("format", doc->n);
    for (size_t i = 0; i < doc->n && !err; i++) {
        const bulk_item *it = &doc->items[i];
        err = ekv_put(s, it->key, it->klen, it->val, it->vlen);
        if (err) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(it->key, it->klen, name);
            fprintf(stderr, "%s format: %s (%s): %s\n", PROG, name,
                    it->where, ekv_strerror(err));
        }
        progress_step(i + 1);
    }
    progress_end();
    ekv_close(s);
    /* The devices were opened without syncs: make it all durable now. */
    for (int i = 0; i < n && !err; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            err = -errno;
            fprintf(stderr, "%s format: %s: %s\n", PROG, paths[i],
                    strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    return err;
}

/* Take the locks a writer of the image takes (src/posix/filedev.c): an
 * exclusive flock on a whole file, a shared one for a window, and an OFD
 * write lock on the bytes. At once: format does not wait. 0, EKV_EBUSY
 * or a negated errno. */
static int lock_image(int fd, int whole, uint64_t off, uint64_t len)
{
    if (flock(fd, (whole ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? EKV_EBUSY : -errno;
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = whole ? 0 : (off_t)off,
        .l_len = whole ? 0 : (off_t)len,
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        /* File systems without OFD locks still have the flock. */
        if (e == EINVAL || e == ENOLCK || e == EOPNOTSUPP)
            return 0;
        return (e == EAGAIN || e == EACCES) ? EKV_EBUSY : -e;
    }
    return 0;
}

/* Open image t for the write and lock it; a new file is created here
 * (O_EXCL: never one that someone else made since the checks), and an
 * existing one must still be the file the checks saw. The devices format
 * writes through are opened without locks of their own: this descriptor
 * holds the image until release_images. */
static int hold_image(target *t, const img_window *w, int win, uint64_t span)
{
    int oflags = O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (!t->exists)
        oflags |= O_CREAT | O_EXCL;
    int fd = open(t->path, oflags, 0644);
    if (fd < 0) {
        int e = errno;
        /* As the file device says it (filedev.c, open_image). */
        int err = e == ENOENT                                 ? EKV_ENOENT
                  : e == ENXIO                                ? -ENODEV
                  : (e == EACCES || e == EROFS || e == EPERM) ? EKV_EROFS
                                                              : -e;
        print_image_error_at(t->path, w->offset, w->length, err);
        return e == EISDIR || e == ENXIO ? EXIT_ERR : exit_code_for_open(err);
    }
    t->fd = fd;
    t->created = !t->exists;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "%s format: %s: %s\n", PROG, t->path,
                strerror(errno));
        return EXIT_IO;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        fprintf(stderr,
                "%s format: %s: not a regular file or block device (it is "
                "%s): refused\n",
                PROG, t->path, file_kind(st.st_mode));
        return EXIT_ERR;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int err = lock_image(fd, !win, w->offset, span);
    if (err) {
        print_error(t->path, err);
        return EXIT_IO;
    }
    if (t->exists) {
        /* Locked now: what the checks judged may not change any more.
         * Any writer of an image changes its header or size. */
        image_probe p;
        if (win)
            image_probe_at(t->path, w->offset, w->length, &p);
        else
            image_probe_path(t->path, &p);
        if (st.st_dev != t->dev || st.st_ino != t->ino ||
            p.file_size != t->probe.file_size || p.magic != t->probe.magic ||
            p.header_crc_ok != t->probe.header_crc_ok ||
            p.block_size != t->probe.block_size ||
            p.block_count != t->probe.block_count) {
            fprintf(stderr,
                    "%s format: %s: changed while format checked it; "
                    "nothing was written\n",
                    PROG, t->path);
            return EXIT_IO;
        }
    }
    return 0;
}

/* Why a file could not be made `bytes` long (or get its space): the
 * cause in words, not an EKV code's ("value too large for this storage"
 * is EFBIG's number too). */
static int size_failed(const char *path, uint64_t bytes, int e)
{
    struct rlimit rl;
    if (e == EFBIG && getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
        rl.rlim_cur != RLIM_INFINITY && bytes > (uint64_t)rl.rlim_cur)
        fprintf(stderr,
                "%s format: %s: cannot make a file of %" PRIu64 " bytes: "
                "this process may write files of %" PRIu64 " bytes at most "
                "(ulimit -f)\n",
                PROG, path, bytes, (uint64_t)rl.rlim_cur);
    else if (e == EFBIG)
        fprintf(stderr,
                "%s format: %s: the file system cannot hold a file of %"
                PRIu64 " bytes (its largest file is smaller); use fewer "
                "blocks or another file system\n",
                PROG, path, bytes);
    else if (e == ENOSPC || e == EDQUOT)
        fprintf(stderr,
                "%s format: %s: no space on the file system for the %"
                PRIu64 " bytes format writes: %s\n",
                PROG, path, bytes, strerror(e));
    else
        fprintf(stderr, "%s format: %s: cannot make it %" PRIu64
                        " bytes: %s\n",
                PROG, path, bytes, strerror(e));
    return EXIT_IO;
}

/* Grow image t to span bytes and reserve the space of the first `writes`
 * bytes of the store at off (what format writes there), so that neither
 * a too large file nor a full file system shows only when images are
 * written. Changes no byte of the image; release_images undoes the size. */
static int make_room(target *t, int win, uint64_t off, uint64_t span,
                     uint64_t writes)
{
    if (t->blockdev)
        return 0;
    if (!win && t->size < span && ftruncate(t->fd, (off_t)span) != 0)
        return size_failed(t->path, span, errno);
    if (writes > span)
        writes = span;
    int r;
    do
        r = fallocate(t->fd, 0, (off_t)off, (off_t)writes);
    while (r != 0 && errno == EINTR);
    /* Not every file system can reserve: it then fails as it writes. */
    if (r != 0 && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        return size_failed(t->path, writes, errno);
    return 0;
}

/* The end of a format: after a failure, an image format did not shrink or
 * write gets its old size back, and a file format created is removed
 * (the name only if it is still that file); then the locks go. */
static void release_images(target *t, int n, int failed)
{
    for (int i = 0; i < n; i++) {
        if (t[i].fd < 0)
            continue;
        struct stat st, now;
        int ours = fstat(t[i].fd, &st) == 0;
        if (failed && t[i].created) {
            if (ours && stat(t[i].path, &now) == 0 &&
                now.st_dev == st.st_dev && now.st_ino == st.st_ino &&
                unlink(t[i].path) == 0)
                fprintf(stderr, "%s format: %s removed\n", PROG,
                        t[i].path);
        } else if (failed && !t[i].changed && ours && S_ISREG(st.st_mode) &&
                   (uint64_t)st.st_size != t[i].size &&
                   ftruncate(t[i].fd, (off_t)t[i].size) != 0) {
            fprintf(stderr,
                    "%s format: %s: cannot give it its old size back (%"
                    PRIu64 " bytes): %s\n",
                    PROG, t[i].path, t[i].size, strerror(errno));
        }
        close(t[i].fd);
        t[i].fd = -1;
    }
}

/* A failed ekv_format: the file's own error when it has one. */
static void write_failed(const ekv_device *dev, const char *path, int err)
{
    const char *op;
    int e = ekv_file_error(dev, &op);
    if (e == EFBIG)
        size_failed(path, ekv_file_offset(dev) +
                              (uint64_t)dev->block_size * dev->block_count,
                    e);
    else if (e)
        fprintf(stderr, "%s format: cannot %s the image %s: %s\n", PROG, op,
                path, strerror(e));
    else
        print_error(path, err);
}

static int format_images(char **paths, int n, uint64_t bs, uint64_t blocks,
                         int have_blocks, int have_size, uint64_t size,
                         int have_erase, uint8_t erase, int keep, int force,
                         const char *from, const bulk_doc *doc)
{
    const int win = window_given();
    img_window w[EKV_MAX_REPLICAS];
    int fill[EKV_MAX_REPLICAS];
    static target t[EKV_MAX_REPLICAS]; /* big: keep it off the stack */
    uint64_t need = 0; /* blocks the keys of --from take, header included */
    for (int i = 0; i < n; i++) {
        int rc = inspect(&t[i], paths[i]);
        if (rc)
            return rc;
        w[i] = window_for((unsigned)i);
        fill[i] = -1;
        if (win) {
            if (!t[i].exists)
                return usage_error("format", EXIT_USAGE,
                                   "%s: with --offset/--length the file must "
                                   "exist (format never creates or resizes "
                                   "a dump)", paths[i]);
            image_probe_at(paths[i], w[i].offset, w[i].length, &t[i].probe);
            t[i].size = t[i].probe.file_size;
            if (w[i].offset >= t[i].size)
                return usage_error("format", EXIT_USAGE,
                                   "%s: --offset %" PRIu64 " is past the end "
                                   "of the file (%" PRIu64 " bytes)",
                                   paths[i], w[i].offset, t[i].size);
        }
        for (int j = 0; j < i; j++)
            if ((t[i].exists && t[j].exists && t[j].dev == t[i].dev &&
                 t[j].ino == t[i].ino &&
                 (!win || windows_overlap(w[i].offset, w[i].length,
                                          w[j].offset, w[j].length))) ||
                (t[i].canon[0] && !strcmp(t[i].canon, t[j].canon)))
                return usage_error("format", EXIT_USAGE,
                                   win ? "%s and %s: the windows overlap "
                                         "(give each replica its own "
                                         "--length, or windows apart)"
                                       : "%s and %s are the same image",
                                   paths[j], paths[i]);
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
        if (blocks < 2)
            return usage_error("format", EXIT_USAGE,
                               "--size %" PRIu64 " gives %" PRIu64
                               " blocks; 2..%" PRIu64 " needed",
                               size, blocks, MAX_BLOCKS);
    }
    for (int i = 0; win && i < n; i++) {
        uint64_t wb = 0;
        if (w[i].length) {
            if (w[i].length % bs)
                return usage_error("format", EXIT_USAGE,
                                   "--length %" PRIu64 " is not a whole "
                                   "number of %" PRIu64 "-byte blocks",
                                   w[i].length, bs);
            wb = w[i].length / bs;
        } else if (t[i].probe.header_crc_ok &&
                   t[i].probe.block_size == bs) {
            wb = t[i].probe.block_count;
        }
        if (blocks && wb && wb != blocks && (have_blocks || have_size))
            return usage_error("format", EXIT_USAGE,
                               "%s: the window holds %" PRIu64 " blocks but "
                               "%" PRIu64 " were asked for",
                               paths[i], wb, blocks);
        if (!blocks)
            blocks = wb;
    }
    if (win && !blocks)
        return usage_error("format", EXIT_USAGE,
                           "give the window's --length (or --blocks/--size)");
    if (win && blocks < 2)
        return usage_error("format", EXIT_USAGE,
                           "the window must hold 2..%" PRIu64 " blocks",
                           MAX_BLOCKS);
    if (blocks > MAX_BLOCKS)
        return too_many_blocks(blocks, bs, n);
    for (int i = 0; win && i < n; i++) {
        if (w[i].offset + bs * blocks > t[i].size)
            return usage_error("format", EXIT_USAGE,
                               "%s: window [%" PRIu64 ", +%" PRIu64 ") ends "
                               "past the end of the file (%" PRIu64
                               " bytes); format never resizes a dump",
                               paths[i], w[i].offset, bs * blocks, t[i].size);
        for (int j = 0; j < i; j++)
            if (t[j].dev == t[i].dev && t[j].ino == t[i].ino &&
                windows_overlap(w[i].offset, bs * blocks, w[j].offset,
                                bs * blocks))
                return usage_error("format", EXIT_USAGE,
                                   "%s and %s: the windows overlap",
                                   paths[j], paths[i]);
        fill[i] = window_fill(paths[i], w[i].offset, bs * blocks);
        if (fill[i] < 0 && !t[i].probe.header_crc_ok && !force) {
            fprintf(stderr,
                    "%s format: %s: the window [%" PRIu64 ", +%" PRIu64
                    ") holds data (neither erased nor an embedkv store); "
                    "use --force to overwrite it\n",
                    PROG, paths[i], w[i].offset, bs * blocks);
            return EXIT_ERR;
        }
        /* A window of erased NAND stays erased NAND, and a store in a
         * window keeps the erase byte its free blocks hold. */
        if (fill[i] == 0xff && !have_erase && !keep)
            erase = 0xff;
        if (fill[i] < 0 && t[i].probe.header_crc_ok && !have_erase && !keep &&
            window_mostly_ff(paths[i], w[i].offset, bs, blocks))
            erase = 0xff;
    }
    if (from) {
        int rc = bulk_check_keys("format", from, doc, (uint32_t)bs);
        if (rc)
            return rc;
        need = 1;
        for (size_t i = 0; i < doc->n; i++)
            need += bulk_blocks((uint32_t)bs, doc->items[i].klen,
                                doc->items[i].vlen);
        int sized = blocks != 0;
        for (int i = 0; !sized && i < n; i++)
            sized = t[i].exists && t[i].size;
        if (!sized) {
            fprintf(stderr,
                    "%s format: %s: give --blocks or --size: the %zu keys "
                    "need %" PRIu64 " blocks of %" PRIu64 " bytes (header "
                    "included), more to have room for updates\n",
                    PROG, paths[0], doc->n, need, bs);
            return EXIT_USAGE;
        }
        uint64_t have = blocks;
        if (!have)
            for (int i = 0; i < n && !have; i++)
                if (t[i].exists && t[i].size % bs == 0)
                    have = t[i].size / bs;
        if (need > have) {
            fprintf(stderr,
                    "%s format: %s: no space: the %zu keys of %s need %"
                    PRIu64 " blocks of %" PRIu64 " bytes (header included), "
                    "the image has %" PRIu64 "; nothing written\n",
                    PROG, paths[0], doc->n, from, need, bs, have);
            return EXIT_IO;
        }
    }
    if (!blocks) {
        /* Take the size of the existing images. */
        const char *sized_by = NULL;
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
                        PROG, sized_by, paths[i]);
                return EXIT_USAGE;
            }
            blocks = t[i].size / bs;
            sized_by = paths[i];
        }
        if (!blocks)
            return usage_error("format", EXIT_USAGE,
                               "give --blocks or --size for a new image");
        if (blocks > MAX_BLOCKS)
            return too_many_blocks(blocks, bs, n);
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
        /* A window was judged by its own bytes above (window_fill). */
        /* A device is overwritten only with --force, whatever it holds.
         * It is not read whole to see (it may be a disk), so the message
         * claims data only if its first MiB holds some. */
        if (!win && t[i].blockdev && !t[i].probe.header_crc_ok && !force &&
            window_fill(paths[i], 0, t[i].size < DEV_LOOK ? t[i].size
                                                          : DEV_LOOK) >= 0) {
            fprintf(stderr,
                    "%s format: %s: a block device (%" PRIu64 " bytes) with "
                    "no embedkv image; format overwrites a device only with "
                    "--force\n",
                    PROG, paths[i], t[i].size);
            return EXIT_ERR;
        }
        if (!win && t[i].exists && !t[i].probe.header_crc_ok && !t[i].blank &&
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
        if (!win && t[i].blockdev && t[i].size != bs * blocks) {
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

    /* All checked. Now every image is opened (a new file created) and
     * locked, then grown to its new size with the space that format
     * writes into reserved: none of it changes a byte of an image, and
     * release_images undoes it. Only when all of that has worked for
     * every image is an image shrunk or written. */
    const uint64_t span = bs * blocks;
    ekv_device *devs[EKV_MAX_REPLICAS] = {0};
    int rc = EXIT_OK, err = 0, i;
    /* A file size limit (ulimit -f) fails the call that passes it with
     * EFBIG, reported and undone, instead of killing format halfway. */
    signal(SIGXFSZ, SIG_IGN);
    for (i = 0; i < n && !rc; i++)
        rc = hold_image(&t[i], &w[i], win, span);
    for (i = 0; i < n && !rc; i++) {
        /* A new file is zero-filled already; an old one holds records
         * that recovery would bring back unless they are erased. */
        t[i].erase_all =
            !keep && (erase == 0xff || (t[i].exists && t[i].size));
        /* A blank file holds the erase byte already: writing it again
         * would only fill the holes of a sparse file. */
        if (t[i].exists && t[i].blank && t[i].blank_byte == erase)
            t[i].erase_all = 0;
        if (win && fill[i] == erase)
            t[i].erase_all = 0; /* the window is erased already */
        uint64_t writes = t[i].erase_all ? blocks : need > 1 ? need : 1;
        rc = make_room(&t[i], win, w[i].offset, span, writes * bs);
    }
    for (i = 0; i < n && !rc; i++) {
        ekv_file_options fo = {0};
        /* The image's size is not yet final where it shrinks: open the
         * device as the window of the store, which it is. */
        fo.flags = EKV_FILE_NOLOCK | (from ? EKV_FILE_NOSYNC : 0);
        fo.block_size = (uint32_t)bs;
        fo.block_count = (uint32_t)blocks;
        fo.offset = w[i].offset;
        fo.length = span;
        err = ekv_file_open_ex(&devs[i], paths[i], &fo);
        if (err) {
            print_image_error_at(paths[i], w[i].offset, w[i].length, err);
            rc = exit_code_for_open(err);
        }
    }
    if (rc)
        goto out;
    for (i = 0; i < n; i++) {
        t[i].changed = 1;
        if (!win && !t[i].blockdev && t[i].size > span &&
            ftruncate(t[i].fd, (off_t)span) != 0) {
            fprintf(stderr, "%s format: %s: cannot truncate it to %" PRIu64
                            " bytes: %s\n",
                    PROG, paths[i], span, strerror(errno));
            rc = EXIT_IO;
        }
        ekv_format_options fo = {0};
        fo.replica_id_base = (uint32_t)i;
        /* One call per image: name the whole set in every header. */
        fo.participants =
            n > 1 ? (n >= 32 ? 0xffffffffu : (1u << n) - 1) : 0;
        fo.erase_byte = erase;
        fo.erase_data = (uint8_t)t[i].erase_all;
        if (!rc && fo.erase_data) {
            progress_begin("format", blocks);
            progress_hook(&devs[i], 1);
        }
        if (!rc) {
            err = ekv_format(&devs[i], 1, &fo);
            progress_unhook();
            progress_end();
            if (err) {
                write_failed(devs[i], paths[i], err);
                rc = exit_code_for(err);
            }
        }
        if (rc) {
            if (i > 0)
                fprintf(stderr,
                        "%s format: the images before %s were formatted; "
                        "format them all again\n",
                        PROG, paths[i]);
            goto out;
        }
        printf("%s: %" PRIu64 " blocks of %" PRIu64 " bytes (%" PRIu64
               " bytes), replica_id %d%s\n",
               paths[i], blocks, bs, span, i,
               fo.erase_data ? (erase ? ", erased with 0xff" : ", erased")
                             : "");
        if (win)
            printf("%s: at offset %" PRIu64 " (0x%" PRIx64 ")\n", paths[i],
                   w[i].offset, w[i].offset);
    }
    if (from) {
        err = fill_store(devs, n, erase, doc, paths);
        if (err) {
            rc = exit_code_for(err);
            goto out;
        }
        printf("%zu keys from %s\n", doc->n, from);
    }
    rc = finish_stdout("format");
out:
    for (i = 0; i < n; i++)
        ekv_device_close(devs[i]);
    release_images(t, n, rc != EXIT_OK);
    return rc;
}
