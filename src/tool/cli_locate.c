/*
 * cli_locate.c - embedkvfs locate: find the embedkv stores inside a flash
 * dump. Every 64-byte-aligned offset is a candidate; one is reported when
 * it holds a v1 storage header whose CRC is right at the block size it
 * names and whose geometry fits in the file. The file is read in large
 * chunks and scanned for the 4-byte magic first, so only candidates pay
 * for a CRC.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "progress.h"
#include "window.h"

static const char locate_help[] =
    "usage: embedkvfs locate [--json] FILE\n"
    "Scan FILE (a flash dump, a partition, an image) for embedkv stores:\n"
    "valid v1 storage headers at any 64-byte-aligned offset whose geometry\n"
    "fits in the file. One line per store: offset, length, block size,\n"
    "block count, replica_id, format_seq and number of keys (counted by a\n"
    "read-only open; '?' when that fails). Use the offset and length with\n"
    "--offset/--length of the other commands, or mount -o offset=.\n"
    "  --json           a JSON array of objects (offset, length,\n"
    "                   block_size, block_count, replica_id, format_seq,\n"
    "                   keys)\n"
    HELP_HELP
    "Exit: 0 at least one store found, 1 none found, 2 usage, 5 I/O error.\n";

#define ALIGN 64u

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* The number of keys of the store at off, or -1. */
static long count_keys(const char *path, uint64_t off, uint64_t len)
{
    ekv_file_options fo = {0};
    fo.flags = EKV_FILE_RDONLY;
    fo.offset = off;
    fo.length = len;
    ekv_device *dev = NULL;
    if (ekv_file_open_ex(&dev, path, &fo) != 0)
        return -1;
    ekv_store *s = NULL;
    ekv_options o = {0};
    o.flags = EKV_OPEN_RDONLY | EKV_OPEN_ERASE_AUTO;
    long n = -1;
    if (ekv_open(&s, &dev, 1, &o) == 0) {
        ekv_stats st;
        ekv_stats_get(s, &st);
        n = st.records;
        ekv_close(s);
    }
    ekv_device_close(dev);
    return n;
}

/* Print one store found at off. */
static void report(const char *path, int json, unsigned nth, uint64_t off,
                   uint32_t bs, uint32_t bc, const ekv_block_info *bi)
{
    uint64_t len = (uint64_t)bs * bc;
    long keys = count_keys(path, off, len);
    if (json) {
        printf("%s\n {\"offset\": %" PRIu64 ", \"length\": %" PRIu64
               ", \"block_size\": %u, \"block_count\": %u, "
               "\"replica_id\": %u, \"format_seq\": %u, \"keys\": ",
               nth ? "," : "", off, len, bs, bc, bi->replica_id,
               bi->format_seq);
        if (keys < 0)
            printf("null}");
        else
            printf("%ld}", keys);
        return;
    }
    if (!nth)
        printf("%-12s %-12s %6s %10s %7s %10s %6s\n", "OFFSET", "LENGTH",
               "BSIZE", "BLOCKS", "REPLICA", "FORMAT_SEQ", "KEYS");
    printf("0x%010" PRIx64 " %-12" PRIu64 " %6u %10u %7u %10u ", off, len, bs,
           bc, bi->replica_id, bi->format_seq);
    if (keys < 0)
        printf("%6s\n", "?");
    else
        printf("%6ld\n", keys);
}

int cmd_locate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(locate_help, stdout); return EXIT_OK;
        default: return bad_option("locate", EXIT_USAGE, argv, optopt);
        }
    }
    if (window_given())
        return usage_error("locate", EXIT_USAGE,
                           "locate scans the whole FILE: --offset and "
                           "--length do not apply");
    if (argc - optind != 1)
        return usage_error("locate", EXIT_USAGE, "need exactly one FILE");
    const char *path = argv[optind];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "%s locate: %s: %s\n", PROG, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_IO;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        fprintf(stderr, "%s locate: %s: not a regular file or block device\n",
                PROG, path);
        close(fd);
        return EXIT_IO;
    }
    uint64_t size = S_ISBLK(st.st_mode) ? (uint64_t)lseek(fd, 0, SEEK_END)
                                        : (uint64_t)st.st_size;
    /* Big sequential reads; a candidate's header block is read on its
     * own (it may cross the end of a chunk). pread, not mmap: a file
     * that shrinks meanwhile must not kill us. */
    enum { CHUNK = 8 << 20 };
    uint8_t *chunk = malloc(CHUNK), *blk = malloc(EKV_MAX_BLOCK_SIZE);
    if (!chunk || !blk) {
        free(chunk);
        free(blk);
        close(fd);
        print_error("locate", EKV_ENOMEM);
        return EXIT_ERR;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (json)
        printf("[");
    unsigned found = 0;
    int rc = EXIT_OK;
    progress_begin("locate: MiB scanned", size >> 20);
    for (uint64_t base = 0; base < size; base += CHUNK) {
        size_t want = size - base < CHUNK ? (size_t)(size - base) : CHUNK;
        size_t have = 0;
        while (have < want) {
            ssize_t got = pread(fd, chunk + have, want - have,
                                (off_t)(base + have));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                if (got < 0) {
                    fflush(stdout);
                    fprintf(stderr, "%s locate: %s: read at %" PRIu64
                                    ": %s\n",
                            PROG, path, base + have, strerror(errno));
                    rc = EXIT_IO;
                }
                break;
            }
            have += (size_t)got;
        }
        progress_step(base >> 20);
        for (size_t i = 0; i + 28 <= have; i += ALIGN) {
            const uint8_t *h = chunk + i;
            if (h[0] != 0x01 || h[1] != 'E' || h[2] != 'K' || h[3] != 'V')
                continue;
            uint64_t off = base + i;
            uint32_t bs = le32(h + 8), bc = le32(h + 12);
            if (bs < EKV_MIN_BLOCK_SIZE || bs > EKV_MAX_BLOCK_SIZE ||
                bc < 1 || off + (uint64_t)bs * bc > size)
                continue;
            if (pread(fd, blk, bs, (off_t)off) != (ssize_t)bs)
                continue;
            ekv_block_info bi;
            ekv_block_decode(blk, bs, &bi);
            if (!bi.crc_ok || bi.kind != EKV_BLOCK_HEADER ||
                bi.version_major != EKV_FORMAT_VERSION_MAJOR)
                continue;
            report(path, json, found++, off, bs, bc, &bi);
        }
        if (have < want)
            break;
    }
    progress_end();
    free(chunk);
    free(blk);
    close(fd);
    if (json)
        printf("%s]\n", found ? "\n" : "");
    int frc = finish_stdout("locate");
    if (frc)
        return frc;
    if (rc)
        return rc;
    if (!found && !json)
        fprintf(stderr, "%s locate: %s: no embedkv store found\n", PROG, path);
    return found ? EXIT_OK : EXIT_ERR;
}
