/*
 * cli_check.c - embedkvfs check (repair is in cli_repair.c).
 *
 * check opens the images read-only and degraded (recovery runs in memory
 * only, so nothing is ever written) and reports, per replica, what the
 * recovery scan found, and then every key whose replicas disagree. How a
 * key's copy on replica r is judged, against G, the key's newest complete
 * generation on any replica:
 *   current  r's newest complete copy is G, re-reads and verifies
 *            (ekv_get_replica) and holds the same bytes as the first
 *            replica that has G (the copy reads and repair take);
 *   conflict r's copy of G verifies but holds other bytes: replicas that
 *            were changed apart (each opened alone) can reach one
 *            generation with two values;
 *   corrupt  r holds a copy of generation G that does not verify: a
 *            descriptor of G whose record is incomplete (found by a raw
 *            scan of r's blocks with ekv_block_decode), or a complete copy
 *            that fails when re-read;
 *   older    r's newest complete copy is older than G;
 *   missing  r holds no copy of the key at all.
 * A descriptor newer than G that never completed anywhere is an interrupted
 * put: recovery erases it and the key keeps G, so it is not a difference.
 *
 * The exit status is fsck(8)'s, a sum of: 1 recovery would erase blocks
 * (interrupted writes: no complete record at risk), 4 errors left (an
 * unusable replica, keys that differ), 8 operational error (an image that
 * cannot be opened or read), 16 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_check.h"
#include "window.h"
#include "commands.h"
#include "names.h"

enum {
    CHECK_CLEAN = 0,
    CHECK_RECOVERABLE = 1,
    CHECK_ERRORS = 4,
    CHECK_OPERATIONAL = 8,
    CHECK_USAGE = 16
};

static const char check_help[] =
    "usage: embedkvfs check [--json] [--wait S] IMAGE...\n"
    "Report on the store on IMAGE... (replicas) without changing anything:\n"
    "per replica its header, geometry, block and record counts and what\n"
    "recovery would erase; then the keys whose replicas differ (missing,\n"
    "older generation, corrupt copy).\n"
    "  --json           one JSON object (see embedkvfs(1))\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP
    "Exit status (fsck(8) style, a sum of): 0 clean; 1 recovery would erase\n"
    "blocks of interrupted writes (no data at risk); 4 errors left (unusable\n"
    "replica, keys that differ: run 'embedkvfs repair'); 8 operational error\n"
    "(an image cannot be opened or read); 16 usage error. With no usable\n"
    "replica at all (e.g. not an embedkv image) the status is 4 and repair\n"
    "cannot help: format makes a new store.\n";

/* A CRC-valid descriptor found by the raw scan: (key, generation). */
typedef struct raw_desc {
    uint8_t *key;
    uint16_t len;
    uint32_t gen;
} raw_desc;

typedef struct raw_scan {
    int done;
    uint32_t free, desc, chunk, garbage, unreadable;
    raw_desc *d;
    size_t nd, cap;
} raw_scan;

typedef struct replica_result {
    const char *path;
    image_probe probe;
    int open_err;    /* images_open's verdict on this image */
    int usable;      /* in use by the store */
    int status;      /* why the store dropped it */
    ekv_replica_report rep;
    raw_scan raw;
} replica_result;

static int cmp_raw(const void *a, const void *b)
{
    const raw_desc *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return (x->gen > y->gen) - (x->gen < y->gen);
}

static void raw_free(raw_scan *r)
{
    for (size_t i = 0; i < r->nd; i++)
        free(r->d[i].key);
    free(r->d);
    memset(r, 0, sizeof(*r));
}

/* Read every data block of dev once; count kinds and collect descriptors.
 * Returns 0 or EKV_ENOMEM. */
static int raw_scan_dev(ekv_device *dev, raw_scan *r)
{
    uint8_t *blk = malloc(dev->block_size);
    if (!blk)
        return EKV_ENOMEM;
    for (uint32_t b = 1; b < dev->block_count; b++) {
        /* The holes of a sparse image read as zeros: free, not read. */
        uint32_t z = dev->zero_run && dev->read_blocks
                         ? dev->zero_run(dev, b, dev->block_count - b)
                         : 0;
        if (z && z <= dev->block_count - b) {
            r->free += z;
            b += z - 1;
            continue;
        }
        if (dev->read(dev, b, blk) != 0) {
            r->unreadable++;
            continue;
        }
        ekv_block_info bi;
        ekv_block_decode(blk, dev->block_size, &bi);
        switch (bi.kind) {
        case EKV_BLOCK_FREE: r->free++; break;
        case EKV_BLOCK_CHUNK: r->chunk++; break;
        case EKV_BLOCK_DESCRIPTOR: r->desc++; break;
        default: r->garbage++; break;
        }
        /* A descriptor with a bad CRC whose key field still reads sanely
         * is most likely a damaged copy of that key: collect it too, so
         * the key is called corrupt there rather than missing. */
        uint16_t klen = bi.key_size;
        uint32_t gen = bi.generation;
        const uint8_t *key = bi.key;
        if (bi.kind == EKV_BLOCK_GARBAGE && blk[0] == 0x02 &&
            blk[1] == EKV_DESCRIPTOR_HEADER_SIZE) {
            klen = (uint16_t)(blk[2] | blk[3] << 8);
            gen = (uint32_t)blk[4] | (uint32_t)blk[5] << 8 |
                  (uint32_t)blk[6] << 16 | (uint32_t)blk[7] << 24;
            key = klen <= EKV_MAX_KEY_SIZE(dev->block_size)
                      ? blk + EKV_DESCRIPTOR_HEADER_SIZE
                      : NULL;
        } else if (bi.kind != EKV_BLOCK_DESCRIPTOR) {
            continue;
        }
        if (!key)
            continue;
        if (r->nd == r->cap) {
            size_t ncap = r->cap ? r->cap * 2 : 64;
            raw_desc *nd = realloc(r->d, ncap * sizeof(*nd));
            if (!nd) {
                free(blk);
                return EKV_ENOMEM;
            }
            r->d = nd;
            r->cap = ncap;
        }
        raw_desc *d = &r->d[r->nd];
        d->key = malloc((size_t)klen + 1);
        if (!d->key) {
            free(blk);
            return EKV_ENOMEM;
        }
        memcpy(d->key, key, klen);
        d->len = klen;
        d->gen = gen;
        r->nd++;
    }
    free(blk);
    if (r->nd)
        qsort(r->d, r->nd, sizeof(*r->d), cmp_raw);
    r->done = 1;
    return 0;
}

static int raw_has(const raw_scan *r, const uint8_t *key, size_t len,
                   uint32_t gen)
{
    if (!r->nd)
        return 0;
    raw_desc probe = {(uint8_t *)key, (uint16_t)len, gen};
    return bsearch(&probe, r->d, r->nd, sizeof(*r->d), cmp_raw) != NULL;
}

static const char *error_word(int err)
{
    switch (err) {
    case 0: return NULL;
    case EKV_EBADHDR: return "header";
    case EKV_EVERSION: return "version";
    case EKV_EDOM: return "geometry";
    case EKV_ESTALE: return "stale";
    case EKV_ENOTUNIQ: return "identity";
    default: return "open";
    }
}

/* The reason an unusable replica was dropped, one phrase. */
static void drop_reason(const replica_result *rr, const images *im,
                        char *out, size_t cap)
{
    int err = rr->open_err ? rr->open_err : rr->status;
    if ((is_content_error(err) || err == -ENODEV || err == -EISDIR) &&
        rr->probe.err == err && rr->probe.reason[0])
        snprintf(out, cap, "%s", rr->probe.reason);
    else if (err == EKV_EDOM && rr->probe.err == 0 && im->store) {
        ekv_stats st;
        ekv_stats_get(im->store, &st);
        snprintf(out, cap,
                 "%u blocks of %u bytes, but the store has %u blocks of %u "
                 "bytes",
                 rr->probe.block_count, rr->probe.block_size, st.block_count,
                 st.block_size);
    } else if (err == EKV_EDOM && rr->probe.err == 0) {
        snprintf(out, cap,
                 "%u blocks of %u bytes, and no geometry is shared by most "
                 "of the images",
                 rr->probe.block_count, rr->probe.block_size);
    } else {
        snprintf(out, cap, "%s", open_strerror(err));
    }
}

/* The state of key it on usable replica r (see the file comment). */
enum kstate { K_CURRENT, K_OLDER, K_MISSING, K_CORRUPT, K_UNREADABLE,
              K_CONFLICT };
static const char *const kstate_word[] = {"current", "older", "missing",
                                          "corrupt", "unreadable",
                                          "conflict"};

/* A value read back, in a buffer that grows. */
typedef struct vbuf {
    uint8_t *p;
    size_t cap, len;
} vbuf;

/* Read (and so verify) replica r's newest complete copy of it into b. */
static int read_copy(ekv_store *s, unsigned r, const key_item *it, vbuf *b,
                     uint32_t *gen)
{
    for (;;) {
        if (!b->p && !(b->p = malloc(b->cap + 1)))
            return EKV_ENOMEM;
        /* buf is never NULL here: NULL would only verify. */
        int err = ekv_get_replica(s, r, it->key, it->len, b->p, b->cap,
                                  &b->len, gen);
        if (err != EKV_ERANGE)
            return err;
        free(b->p);
        b->p = NULL;
        b->cap = b->len;
    }
}

static enum kstate key_state(ekv_store *s, unsigned r, const key_item *it,
                             const raw_scan *raw, uint32_t *gen, vbuf *b)
{
    *gen = 0;
    if (it->replicas & (1u << r)) {
        int err = read_copy(s, r, it, b, gen);
        if (err == 0)
            return K_CURRENT;
        return err == EKV_ECORRUPT ? K_CORRUPT : K_UNREADABLE;
    }
    ekv_get_replica(s, r, it->key, it->len, NULL, 0, NULL, gen);
    if (raw_has(raw, it->key, it->len, it->generation))
        return K_CORRUPT;
    if (it->stale & (1u << r))
        return K_OLDER;
    *gen = 0;
    return K_MISSING;
}

static void json_replica(const replica_result *rr, unsigned i,
                         const images *im)
{
    char reason[256];
    printf("  {\"replica\": %u, \"image\": ", i);
    json_cstr(stdout, rr->path);
    printf(", \"usable\": %s", rr->usable ? "true" : "false");
    {
        char why[256];
        int st = rr->usable ? 0 : rr->open_err ? rr->open_err : rr->status;
        json_state(set_state_text(im, i, st, why, sizeof(why)), why);
        if (im->store && (st == 0 || st == EKV_ESTALE))
            printf(", \"epoch\": %u, \"participants\": %u",
                   rr->rep.format_seq, rr->rep.participants);
        else
            printf(", \"epoch\": null, \"participants\": null");
    }
    if (rr->usable) {
        printf(", \"error\": null, \"reason\": null");
    } else {
        int err = rr->open_err ? rr->open_err : rr->status;
        drop_reason(rr, im, reason, sizeof(reason));
        printf(", \"error\": \"%s\", \"reason\": ", error_word(err));
        json_cstr(stdout, reason);
    }
    if (rr->probe.err == EKV_ENOENT || (rr->probe.err && !rr->probe.file_size))
        printf(", \"file_size\": null");
    else
        printf(", \"file_size\": %" PRIu64, rr->probe.file_size);
    const ekv_replica_report *p = &rr->rep;
    if (rr->usable)
        printf(", \"header\": {\"valid\": true, \"version\": \"%u.%u\", "
               "\"replica_id\": %u, \"format_seq\": %u, \"block_size\": %u, "
               "\"block_count\": %u}",
               p->version_major, p->version_minor, p->replica_id,
               p->format_seq, p->block_size, p->block_count);
    else if (rr->probe.header_crc_ok)
        printf(", \"header\": {\"valid\": %s, \"version\": \"%u.%u\", "
               "\"replica_id\": %u, \"format_seq\": %u, \"block_size\": %u, "
               "\"block_count\": %u}",
               rr->probe.err == 0 ? "true" : "false",
               rr->probe.hdr.version_major, rr->probe.hdr.version_minor,
               rr->probe.hdr.replica_id, rr->probe.hdr.format_seq,
               rr->probe.hdr.block_size, rr->probe.hdr.block_count);
    else
        printf(", \"header\": {\"valid\": false}");
    if (rr->usable) {
        printf(",\n   \"blocks\": {\"free\": %u, \"descriptor\": %u, "
               "\"chunk\": %u, \"garbage\": %u, \"unreadable\": %u, "
               "\"erasable\": %u},\n   \"records\": {\"complete\": %u, "
               "\"incomplete\": %u, \"stale\": %u}, \"keys\": %u}",
               p->free_blocks, p->descriptor_blocks, p->chunk_blocks,
               p->garbage_blocks, p->unreadable_blocks, p->erasable_blocks,
               p->complete_records, p->incomplete_records, p->stale_records,
               p->keys);
    } else if (rr->raw.done) {
        printf(",\n   \"blocks\": {\"free\": %u, \"descriptor\": %u, "
               "\"chunk\": %u, \"garbage\": %u, \"unreadable\": %u, "
               "\"erasable\": null}, \"records\": null, \"keys\": null}",
               rr->raw.free, rr->raw.desc, rr->raw.chunk, rr->raw.garbage,
               rr->raw.unreadable);
    } else {
        printf(", \"blocks\": null, \"records\": null, \"keys\": null}");
    }
}

static void text_replica(const replica_result *rr, unsigned i,
                         const images *im)
{
    char reason[256];
    const ekv_replica_report *p = &rr->rep;
    printf("replica %u: %s\n", i, rr->path);
    {
        char why[256];
        int st = rr->usable ? 0 : rr->open_err ? rr->open_err : rr->status;
        const char *word = set_state_text(im, i, st, why, sizeof(why));
        if (st && !why[0]) {
            drop_reason(rr, im, reason, sizeof(reason));
            printf("  state:    %s because %s\n", word, reason);
        } else {
            printf("  state:    %s%s%s\n", word, why[0] ? ": " : "", why);
        }
    }
    if (!rr->usable) {
        int err = rr->open_err ? rr->open_err : rr->status;
        drop_reason(rr, im, reason, sizeof(reason));
        if (err == EKV_ESTALE || err == EKV_ENOTUNIQ)
            printf("  header:   ok, replica_id %u, format_seq %u, "
                   "participants 0x%x\n",
                   rr->probe.hdr.replica_id, rr->probe.hdr.format_seq,
                   rr->probe.hdr.flags);
        else if (err == EKV_EBADHDR)
            printf("  header:   INVALID: %s\n", reason);
        else if (err == EKV_EVERSION)
            printf("  header:   UNSUPPORTED: %s\n", reason);
        else if (err == EKV_EDOM)
            printf("  geometry: MISMATCH: %s\n", reason);
        else
            printf("  error:    cannot open: %s\n", reason);
        if (rr->raw.done)
            printf("  blocks:   %u free, %u descriptor, %u chunk, %u garbage, "
                   "%u unreadable (raw scan)\n",
                   rr->raw.free, rr->raw.desc, rr->raw.chunk, rr->raw.garbage,
                   rr->raw.unreadable);
        if (err == EKV_EBADHDR && rr->raw.done)
            printf("  repair would empty it, write a fresh header and copy "
                   "every key to it\n");
        return;
    }
    printf("  header:   ok, format %u.%u, replica_id %u, format_seq %u\n",
           p->version_major, p->version_minor, p->replica_id, p->format_seq);
    printf("  geometry: %u blocks of %u bytes\n", p->block_count,
           p->block_size);
    printf("  blocks:   %u free, %u descriptor, %u chunk, %u garbage, %u "
           "unreadable\n",
           p->free_blocks, p->descriptor_blocks, p->chunk_blocks,
           p->garbage_blocks, p->unreadable_blocks);
    printf("  records:  %u complete (%u key%s), %u incomplete, %u stale\n",
           p->complete_records, p->keys, p->keys == 1 ? "" : "s",
           p->incomplete_records, p->stale_records);
    if (p->erasable_blocks)
        printf("  recovery would erase %u block%s: %u incomplete and %u "
               "stale records, %u garbage blocks, orphan chunks\n",
               p->erasable_blocks, p->erasable_blocks == 1 ? "" : "s",
               p->incomplete_records, p->stale_records, p->garbage_blocks);
    if (p->unreadable_blocks)
        printf("  %u block%s could not be read\n", p->unreadable_blocks,
               p->unreadable_blocks == 1 ? "" : "s");
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int json = 0, c, w;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("check", c, optarg)) != 0) {
            if (w < 0)
                return CHECK_USAGE;
            continue;
        }
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(check_help, stdout); return CHECK_CLEAN;
        default: return bad_option("check", CHECK_USAGE, argv, optopt);
        }
    }
    int n = argc - optind;
    char **paths = argv + optind;
    if (n < 1)
        return usage_error("check", CHECK_USAGE, "no IMAGE given");
    if (n > (int)EKV_MAX_REPLICAS)
        return usage_error("check", CHECK_USAGE, "at most %u images",
                           EKV_MAX_REPLICAS);

    images im;
    int err = images_open(&im, paths, (unsigned)n,
                          IMG_RDONLY | IMG_DEGRADED | IMG_QUIET);
    int two_stores = 0;
    if (err == EKV_ENOTUNIQ) {
        /* Images of two stores: say which, opening read-only (nothing is
         * ever written) with the first image's store kept. */
        set_explain_refusal(paths, (unsigned)n, err);
        two_stores = 1;
        err = images_open(&im, paths, (unsigned)n,
                          IMG_RDONLY | IMG_DEGRADED | IMG_QUIET | IMG_FORCE);
    }
    if (err == EKV_EINVAL ||
        (!json && (err == EKV_EBUSY || err == -ENODEV || err == -EISDIR))) {
        /* Named twice, in use by a writer, or not an image file at all
         * (a FIFO, a device): nothing to judge. With --json the report
         * below says so (no store: every replica unusable, status 8), as
         * for a missing file: a script parsing it must get its object. */
        for (int i = 0; i < n; i++)
            if (im.open_err[i] == err) {
                if (err == EKV_EINVAL)
                    return usage_error("check", CHECK_USAGE,
                                       "%s is named twice", paths[i]);
                print_image_error(paths[i], err);
            }
        return CHECK_OPERATIONAL;
    }
    int status = two_stores ? CHECK_ERRORS : 0;
    replica_result *rr = calloc((size_t)n, sizeof(*rr));
    if (!rr) {
        images_close(&im);
        print_error("check", EKV_ENOMEM);
        return CHECK_OPERATIONAL;
    }
    uint32_t bs = 0, bc = 0;
    if (im.store) {
        ekv_stats st;
        ekv_stats_get(im.store, &st);
        bs = st.block_size;
        bc = st.block_count;
    }
    for (int i = 0; i < n; i++) {
        replica_result *r = &rr[i];
        r->path = paths[i];
        img_window win = window_for((unsigned)i);
        image_probe_at(paths[i], win.offset, win.length, &r->probe);
        r->open_err = im.open_err[i];
        if (im.store) {
            ekv_replica_report_get(im.store, (unsigned)i, &r->rep);
            r->status = r->rep.status;
            r->usable = r->rep.status == 0;
        } else {
            r->status = r->open_err ? r->open_err : err;
        }
        int why = r->open_err ? r->open_err : r->status;
        if (!r->usable) {
            status |= is_content_error(why) ? CHECK_ERRORS : CHECK_OPERATIONAL;
            if (!is_content_error(why)) {
                char reason[256];
                drop_reason(r, &im, reason, sizeof(reason));
                fprintf(stderr, "%s: %s: %s\n", PROG, paths[i], reason);
            }
        } else {
            /* A torn header (an interrupted epoch change) is rewritten by
             * a writable open: no data at risk. */
            if (r->rep.erasable_blocks || r->rep.header_torn)
                status |= CHECK_RECOVERABLE;
            if (r->rep.unreadable_blocks)
                status |= CHECK_OPERATIONAL;
        }
        /* The raw scan: usable replicas (to tell corrupt from older or
         * missing) and dropped ones that have the store's geometry (to
         * show what repair would find). */
        ekv_device *d = im.devs[i];
        if (im.store && d && d->block_size == bs && d->block_count == bc &&
            raw_scan_dev(d, &r->raw) != 0) {
            print_error("check", EKV_ENOMEM);
            status |= CHECK_OPERATIONAL;
        }
    }

    /* Keys whose replicas differ: the state of every key on every usable
     * replica, judged once (each judgement re-reads the copy). */
    key_item *items = NULL;
    size_t nkeys = 0, ndiff = 0;
    if (im.store && keys_collect(im.store, &items, &nkeys) != 0) {
        print_error("check", EKV_ENOMEM);
        status |= CHECK_OPERATIONAL;
    }
    enum kstate *ks = calloc(nkeys * (size_t)n + 1, sizeof(*ks));
    uint32_t *kg = calloc(nkeys * (size_t)n + 1, sizeof(*kg));
    unsigned char *diff = calloc(nkeys + 1, 1);
    size_t njudged = nkeys;
    if (!ks || !kg || !diff) {
        print_error("check", EKV_ENOMEM);
        status |= CHECK_OPERATIONAL;
        njudged = 0;
    }
    vbuf ref = {0}, cur = {0};
    for (size_t k = 0; k < njudged; k++) {
        /* The first replica holding the newest generation is the one
         * reads (and repair) take: the others must hold its bytes. */
        int have_ref = 0;
        for (int i = 0; i < n; i++) {
            size_t at = k * (size_t)n + (size_t)i;
            if (!rr[i].usable)
                continue;
            ks[at] = key_state(im.store, (unsigned)i, &items[k], &rr[i].raw,
                               &kg[at], have_ref ? &cur : &ref);
            if (ks[at] == K_CURRENT) {
                if (!have_ref)
                    have_ref = 1;
                else if (cur.len != ref.len ||
                         (ref.len && memcmp(cur.p, ref.p, ref.len) != 0))
                    ks[at] = K_CONFLICT;
            }
            if (ks[at] != K_CURRENT)
                diff[k] = 1;
            if (ks[at] == K_UNREADABLE)
                status |= CHECK_OPERATIONAL;
        }
        ndiff += diff[k];
    }
    free(ref.p);
    free(cur.p);
    if (ndiff)
        status |= CHECK_ERRORS;

    char name[NAME_MAX_BYTES + 1];
    if (json) {
        printf("{\"status\": %d, \"clean\": %s, ", status,
               status ? "false" : "true");
        if (im.store) {
            ekv_stats sst;
            ekv_stats_get(im.store, &sst);
            printf("\"epoch\": %u, \"participants\": %u, \"missing\": %u, ",
                   sst.epoch, sst.participants, sst.missing);
        } else {
            printf("\"epoch\": null, \"participants\": null, "
                   "\"missing\": null, ");
        }
        if (im.store)
            printf("\"block_size\": %u, \"block_count\": %u, \"keys\": %zu,\n",
                   bs, bc, nkeys);
        else
            printf("\"block_size\": null, \"block_count\": null, "
                   "\"keys\": null,\n");
        printf(" \"replicas\": [\n");
        for (int i = 0; i < n; i++) {
            json_replica(&rr[i], (unsigned)i, &im);
            printf("%s\n", i + 1 < n ? "," : "");
        }
        printf(" ],\n \"differences\": [");
        size_t shown = 0;
        for (size_t k = 0; k < njudged; k++) {
            if (!diff[k])
                continue;
            const key_item *it = &items[k];
            key_to_name(it->key, it->len, name);
            printf("%s\n  {\"name\": ", shown++ ? "," : "");
            json_cstr(stdout, name);
            printf(", \"key_hex\": ");
            json_hex(stdout, it->key, it->len);
            printf(", \"generation\": %u, \"replicas\": [", it->generation);
            for (int i = 0; i < n; i++) {
                printf("%s{\"replica\": %d, \"state\": ", i ? ", " : "", i);
                if (!rr[i].usable) {
                    printf("\"unavailable\", \"generation\": null}");
                    continue;
                }
                size_t at = k * (size_t)n + (size_t)i;
                printf("\"%s\", \"generation\": ", kstate_word[ks[at]]);
                if (ks[at] == K_CURRENT || ks[at] == K_OLDER ||
                    ks[at] == K_CONFLICT)
                    printf("%u}", kg[at]);
                else if (ks[at] == K_CORRUPT)
                    printf("%u}", it->generation);
                else
                    printf("null}");
            }
            printf("]}");
        }
        printf("%s]}\n", shown ? "\n " : "");
    } else {
        for (int i = 0; i < n; i++)
            text_replica(&rr[i], (unsigned)i, &im);
        if (im.store) {
            ekv_stats sst;
            ekv_stats_get(im.store, &sst);
            printf("set:      epoch %u, participants 0x%x", sst.epoch,
                   sst.participants);
            if (sst.missing)
                printf(", not in use: 0x%x (replica_id bits)", sst.missing);
            printf("\n");
        }
        if (im.store) {
            printf("keys:     %zu in the store, %zu differ between "
                   "replicas\n",
                   nkeys, ndiff);
            for (size_t k = 0; k < njudged; k++) {
                if (!diff[k])
                    continue;
                const key_item *it = &items[k];
                key_to_name(it->key, it->len, name);
                printf("  %s (generation %u):", name, it->generation);
                const char *sep = " ";
                for (int i = 0; i < n; i++) {
                    size_t at = k * (size_t)n + (size_t)i;
                    if (!rr[i].usable || ks[at] == K_CURRENT)
                        continue;
                    printf("%sreplica %d %s", sep, i, kstate_word[ks[at]]);
                    if (ks[at] == K_OLDER)
                        printf(" (generation %u)", kg[at]);
                    else if (ks[at] == K_CONFLICT)
                        printf(" (same generation, other value)");
                    sep = ", ";
                }
                printf("\n");
            }
        }
        /* One line a script can grep: the status and what it means. */
        printf("status:   %d", status);
        const char *sep = ": ";
        if (status == 0)
            printf(": clean");
        if (status & CHECK_RECOVERABLE) {
            printf("%srecovery would erase interrupted writes (no data at "
                   "risk)", sep);
            sep = "; ";
        }
        if ((status & CHECK_ERRORS) && !im.store) {
            /* Nothing to repair from: say what it is. */
            int none = 1;
            for (int i = 0; i < n; i++)
                none &= rr[i].probe.err == EKV_EBADHDR;
            printf("%s%s", sep,
                   none ? "not an embedkv image (repair cannot help; "
                          "format creates a store)"
                        : "no usable replica (repair cannot help; "
                          "restore an image or format a new store)");
            sep = "; ";
        } else if (status & CHECK_ERRORS) {
            printf("%serrors left (run 'embedkvfs repair')", sep);
            sep = "; ";
        }
        if (status & CHECK_OPERATIONAL)
            printf("%san image could not be opened or read", sep);
        printf("\n");
    }
    if (finish_stdout("check"))
        status |= CHECK_OPERATIONAL;

    free(diff);
    free(ks);
    free(kg);
    keys_free(items, nkeys);
    for (int i = 0; i < n; i++)
        raw_free(&rr[i].raw);
    free(rr);
    images_close(&im);
    return status;
}
