/*
 * cli_dump.c - embedkvfs dump: the block map of one image or raw flash
 * dump, one line (or JSON object) per block.
 *
 * The file is read directly, not opened as a store: it may have no valid
 * header, the wrong size, or 0xFF-erased blocks. It is opened read-only
 * and never written; like the other readers it takes a shared lock, so it
 * does not read an image in the middle of a writer's update.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "names.h"
#include "numparse.h"
#include "window.h"

static const char dump_help[] =
    "usage: embedkvfs dump [--json] [--block-size N] [--wait S] IMAGE\n"
    "Print every block of IMAGE (an image or a raw flash dump): index, type\n"
    "(header, descriptor, chunk, free, garbage), whether its CRC is right,\n"
    "and its header fields. Never writes.\n"
    "  -b, --block-size N   block size to use; needed when block 0 holds\n"
    "                   no valid storage header\n"
    "  --json           one JSON object (see embedkvfs(1))\n"
    "  --offset N, --length N   dump the window [N, N+length) of the file\n"
    "                   (length: the header's geometry, else to the end)\n"
    LOCK_WAIT_HELP HELP_HELP "Holes of a sparse file are not read (they are zeros).\n"
    "Exit: 0 ok, 2 usage, 4 no header and no --block-size, 5 I/O error,\n"
    "missing or locked file.\n";

static const char *kind_name(enum ekv_block_kind k)
{
    switch (k) {
    case EKV_BLOCK_FREE: return "free";
    case EKV_BLOCK_HEADER: return "header";
    case EKV_BLOCK_DESCRIPTOR: return "descriptor";
    case EKV_BLOCK_CHUNK: return "chunk";
    default: return "garbage";
    }
}

/* "00" or "ff" for a block filled with that byte, else "mixed" (a free
 * block by the format's rule, but not cleanly erased). */
static const char *fill_of(const uint8_t *b, uint32_t bs)
{
    /* Every byte equals the one before it: one memcmp, not a byte loop
     * (which was most of a dump of a large image). */
    if (bs > 1 && memcmp(b, b + 1, bs - 1) != 0)
        return "mixed";
    return b[0] ? "ff" : "00";
}

static void print_next(const char *label, uint32_t v, int json)
{
    if (v == EKV_BLOCK_NONE)
        printf(json ? ", \"%s\": null" : " %s=none", label);
    else
        printf(json ? ", \"%s\": %" PRIu32 : " %s=%" PRIu32, label, v);
}

static void dump_text(uint64_t idx, const uint8_t *b, uint32_t bs,
                      const ekv_block_info *bi, char *esc)
{
    printf("%" PRIu64 " %s", idx, kind_name(bi->kind));
    switch (bi->kind) {
    case EKV_BLOCK_FREE:
        printf(" crc=- fill=%s\n", fill_of(b, bs));
        return;
    case EKV_BLOCK_GARBAGE:
        printf(" crc=%s type=0x%02x stored=0x%08" PRIx32
               " computed=0x%08" PRIx32 "\n",
               bi->crc_ok ? "ok" : "bad", bi->type_byte, bi->crc_stored,
               bi->crc_computed);
        return;
    case EKV_BLOCK_HEADER:
        printf(" crc=ok version=%u.%u block_size=%" PRIu32
               " block_count=%" PRIu32 " replica_id=%" PRIu32
               " format_seq=%" PRIu32 " flags=0x%08" PRIx32 "\n",
               bi->version_major, bi->version_minor, bi->block_size,
               bi->block_count, bi->replica_id, bi->format_seq, bi->flags);
        return;
    case EKV_BLOCK_DESCRIPTOR:
        printf(" crc=ok header_size=%u generation=%" PRIu32
               " total_size=%" PRIu32 " payload_size=%" PRIu32
               " chunk_count=%" PRIu32,
               bi->header_size, bi->generation, bi->total_size,
               bi->payload_size, bi->chunk_count);
        print_next("next", bi->next_chunk, 0);
        printf(" flags=0x%08" PRIx32 " user_flags=0x%08" PRIx32
               " key_size=%u",
               bi->flags, bi->user_flags, bi->key_size);
        /* The key goes last: its escaped form may contain spaces. */
        if (bi->key) {
            key_escape(bi->key, bi->key_size, esc);
            printf(" key=%s\n", esc);
        } else {
            printf(" key=?\n");
        }
        return;
    case EKV_BLOCK_CHUNK:
        printf(" crc=ok header_size=%u owner=%" PRIu32 " chunk_index=%" PRIu32
               " payload_size=%" PRIu32,
               bi->header_size, bi->owner, bi->chunk_index, bi->payload_size);
        print_next("next", bi->next_chunk, 0);
        printf(" flags=0x%04" PRIx32 "\n", bi->flags);
        return;
    }
}

static void dump_json(uint64_t idx, const uint8_t *b, uint32_t bs,
                      const ekv_block_info *bi, char *esc)
{
    printf("  {\"index\": %" PRIu64 ", \"type\": \"%s\", \"type_byte\": %u, "
           "\"crc_ok\": %s, \"crc_stored\": %" PRIu32
           ", \"crc_computed\": %" PRIu32,
           idx, kind_name(bi->kind), bi->type_byte,
           bi->crc_ok ? "true" : "false", bi->crc_stored, bi->crc_computed);
    switch (bi->kind) {
    case EKV_BLOCK_FREE:
        printf(", \"fill\": \"%s\"", fill_of(b, bs));
        break;
    case EKV_BLOCK_GARBAGE:
        break;
    case EKV_BLOCK_HEADER:
        printf(", \"version_major\": %u, \"version_minor\": %u, "
               "\"block_size\": %" PRIu32 ", \"block_count\": %" PRIu32
               ", \"replica_id\": %" PRIu32 ", \"format_seq\": %" PRIu32
               ", \"flags\": %" PRIu32,
               bi->version_major, bi->version_minor, bi->block_size,
               bi->block_count, bi->replica_id, bi->format_seq, bi->flags);
        break;
    case EKV_BLOCK_DESCRIPTOR:
        printf(", \"header_size\": %u, \"key_size\": %u, \"generation\": %" PRIu32
               ", \"total_size\": %" PRIu32 ", \"payload_size\": %" PRIu32
               ", \"chunk_count\": %" PRIu32,
               bi->header_size, bi->key_size, bi->generation, bi->total_size,
               bi->payload_size, bi->chunk_count);
        print_next("next_chunk", bi->next_chunk, 1);
        printf(", \"flags\": %" PRIu32 ", \"user_flags\": %" PRIu32,
               bi->flags, bi->user_flags);
        if (bi->key) {
            size_t n = key_escape(bi->key, bi->key_size, esc);
            printf(", \"key\": ");
            json_str(stdout, esc, n);
            printf(", \"key_hex\": ");
            json_hex(stdout, bi->key, bi->key_size);
        } else {
            printf(", \"key\": null, \"key_hex\": null");
        }
        break;
    case EKV_BLOCK_CHUNK:
        printf(", \"header_size\": %u, \"owner\": %" PRIu32
               ", \"chunk_index\": %" PRIu32 ", \"payload_size\": %" PRIu32,
               bi->header_size, bi->owner, bi->chunk_index, bi->payload_size);
        print_next("next_chunk", bi->next_chunk, 1);
        printf(", \"flags\": %" PRIu32, bi->flags);
        break;
    }
    printf("}");
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"block-size", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int json = 0, c, w;
    uint32_t bs = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("dump", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'j': json = 1; break;
        case 'b': {
            uint64_t v = 0;
            if (parse_number(optarg, UINT64_MAX, &v) ||
                v < EKV_MIN_BLOCK_SIZE || v > EKV_MAX_BLOCK_SIZE)
                return usage_error("dump", EXIT_USAGE,
                                   "--block-size must be %u..%u, not '%s'",
                                   EKV_MIN_BLOCK_SIZE, EKV_MAX_BLOCK_SIZE,
                                   optarg);
            bs = (uint32_t)v;
            break;
        }
        case 'h': fputs(dump_help, stdout); return EXIT_OK;
        default: return bad_option("dump", EXIT_USAGE, argv, optopt);
        }
    }
    if (argc - optind != 1)
        return usage_error("dump", EXIT_USAGE, "need exactly one IMAGE");
    const char *path = argv[optind];

    char why[160];
    int fd = image_fd_open(path, why, sizeof(why));
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", PROG, path, why);
        return EXIT_IO;
    }
    if (image_fd_lock_shared(fd) == EKV_EBUSY) {
        print_image_error(path, EKV_EBUSY);
        close(fd);
        return EXIT_IO;
    }
    image_probe pr;
    const img_window win = window_for(0);
    image_probe_at(path, win.offset, win.length, &pr);
    if (win.set && win.offset >= pr.file_size && pr.file_size) {
        fprintf(stderr, "%s: %s: window offset %" PRIu64 " is past the end "
                "of the file (%" PRIu64 " bytes)\n",
                PROG, path, win.offset, pr.file_size);
        close(fd);
        return EXIT_USAGE;
    }
    if (pr.err && pr.err != EKV_EBADHDR && pr.err != EKV_EDOM &&
        pr.err != EKV_EVERSION) {
        fprintf(stderr, "%s: %s: %s\n", PROG, path, pr.reason);
        close(fd);
        return EXIT_IO;
    }
    if (pr.file_size == 0) {
        fprintf(stderr, "%s: %s: empty file\n", PROG, path);
        close(fd);
        return EXIT_CORRUPT;
    }
    if (!bs && pr.header_crc_ok)
        bs = pr.block_size;
    if (!bs) {
        if (pr.magic && pr.block_size >= EKV_MIN_BLOCK_SIZE &&
            pr.block_size <= EKV_MAX_BLOCK_SIZE)
            fprintf(stderr,
                    "%s: %s: %s; its block_size field says %u: try "
                    "--block-size %u\n",
                    PROG, path, pr.reason, pr.block_size, pr.block_size);
        else
            fprintf(stderr,
                    "%s: %s: %s; give the block size with --block-size\n",
                    PROG, path, pr.reason);
        close(fd);
        return EXIT_CORRUPT;
    }
    if (pr.header_crc_ok && pr.block_size != bs)
        fprintf(stderr,
                "%s: warning: %s: the storage header says block size %u\n",
                PROG, path, pr.block_size);
    /* The bytes dumped: the window, else the whole file. */
    uint64_t span = pr.file_size - win.offset;
    if (win.length) {
        if (win.length > span) {
            fprintf(stderr, "%s: %s: window [%" PRIu64 ", +%" PRIu64 ") ends "
                    "past the end of the file (%" PRIu64 " bytes)\n",
                    PROG, path, win.offset, win.length, pr.file_size);
            close(fd);
            return EXIT_USAGE;
        }
        span = win.length;
    } else if (win.set && pr.header_crc_ok &&
               (uint64_t)pr.block_size * pr.block_count <= span) {
        span = (uint64_t)pr.block_size * pr.block_count;
    }
    pr.file_size = span;
    if (pr.file_size < bs) {
        fprintf(stderr, "%s: %s: file is %" PRIu64 " bytes, shorter than one "
                "%u-byte block\n",
                PROG, path, pr.file_size, bs);
        close(fd);
        return EXIT_CORRUPT;
    }
    uint64_t count = pr.file_size / bs, tail = pr.file_size % bs;
    if (tail)
        fprintf(stderr,
                "%s: warning: %s: %" PRIu64 " bytes after the last whole "
                "block ignored\n",
                PROG, path, tail);

    uint8_t *blk = malloc(bs);
    char *esc = malloc((size_t)3 * bs + 4);
    if (!blk || !esc) {
        free(blk);
        free(esc);
        close(fd);
        print_error(path, EKV_ENOMEM);
        return EXIT_IO;
    }
    int rc = EXIT_OK;
    if (json) {
        printf("{\"image\": ");
        json_cstr(stdout, path);
        printf(", \"file_size\": %" PRIu64 ", \"block_size\": %u, "
               "\"block_count\": %" PRIu64 ", \"trailing_bytes\": %" PRIu64
               ", \"blocks\": [",
               pr.file_size, bs, count, tail);
    }
    hole_map hm = HOLE_MAP_INIT;
    for (uint64_t b = 0; b < count; b++) {
        size_t done = 0;
        /* Holes are where the file has them: the window's offset counts. */
        if (fd_in_hole(fd, win.offset + b * bs, bs, &hm)) {
            memset(blk, 0, bs); /* a hole reads as zeros: do not read it */
            done = bs;
        }
        while (done < bs) {
            ssize_t got = pread(fd, blk + done, bs - done,
                                (off_t)(win.offset + b * bs + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                fflush(stdout);
                fprintf(stderr, "%s: %s: cannot read block %" PRIu64 ": %s\n",
                        PROG, path, b,
                        got < 0 ? strerror(errno) : "file shrank");
                rc = EXIT_IO;
                goto out;
            }
            done += (size_t)got;
        }
        ekv_block_info bi;
        ekv_block_decode(blk, bs, &bi);
        if (json) {
            printf("%s\n", b ? "," : "");
            dump_json(b, blk, bs, &bi, esc);
        } else {
            dump_text(b, blk, bs, &bi, esc);
        }
    }
    if (json)
        printf("\n]}\n");
    rc = finish_stdout("dump");
out:
    free(blk);
    free(esc);
    close(fd);
    return rc;
}
