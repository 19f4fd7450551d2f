/*
 * cli_bulk.c - many keys in one command: export (the store as one JSON
 * document), import (such a document into a store, in one open) and
 * extract (every key as a file). The document format is in bulk.h and
 * embedkvfs(1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulk.h"
#include "cli.h"
#include "codec.h"
#include "commands.h"
#include "names.h"
#include "progress.h"
#include "window.h"

/* Add "NAME": text or "NAME_base64": base64 to obj. */
static int set_bytes(json_t *obj, const char *name, const uint8_t *b,
                     size_t n)
{
    if (bulk_is_text(b, n)) {
        json_t *str = json_stringn((const char *)b, n);
        if (str)
            return json_object_set_new(obj, name, str);
        /* jansson's idea of UTF-8 is stricter: base64 then. */
    }
    char *enc = b64_encode(b, n);
    char b64name[32];
    snprintf(b64name, sizeof(b64name), "%s_base64", name);
    int rc = enc ? json_object_set_new(obj, b64name, json_string(enc)) : -1;
    free(enc);
    return rc;
}

/* -------------------------------------------------------------- export */

static const char export_help[] =
    "usage: embedkvfs export [--wait S] IMAGE...\n"
    "Write every key and value of the store on IMAGE... (replicas) as one\n"
    "JSON document on standard output, keys sorted bytewise:\n"
    "  {\"format\": \"" BULK_FORMAT "\", \"block_size\": N, \"block_count\": N,\n"
    "   \"keys\": [{\"key\": \"text\", \"value\": \"text\"},\n"
    "            {\"key_base64\": \"...\", \"value_base64\": \"...\"}, ...]}\n"
    "Bytes that are valid UTF-8 without NUL are JSON strings as they are;\n"
    "any other bytes are given base64-encoded in the _base64 field.\n"
    "import and format --from read the document back. Never writes.\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP
    "Exit: 0 ok, 2 usage, 4 not an image or corrupt, 5 I/O error.\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c, w;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("export", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        if (c == 'h') {
            fputs(export_help, stdout);
            return EXIT_OK;
        }
        return bad_option("export", EXIT_USAGE, argv, optopt);
    }
    int n = argc - optind;
    if (n < 1)
        return usage_error("export", EXIT_USAGE, "no IMAGE given");
    images im;
    int err = images_open(&im, argv + optind, (unsigned)n,
                          IMG_RDONLY | IMG_DEGRADED);
    if (err)
        return exit_code_for_open(err);
    key_item *items = NULL;
    size_t nk = 0;
    int rc = EXIT_OK;
    err = keys_collect(im.store, &items, &nk);
    if (err) {
        print_error("export", err ? err : EKV_ENOMEM);
        rc = exit_code_for(err ? err : EKV_ENOMEM);
        goto out;
    }
    ekv_stats st;
    ekv_stats_get(im.store, &st);
    /* One entry per line; jansson writes each entry (the escapes). */
    printf("{\"format\": \"" BULK_FORMAT "\", \"block_size\": %u, "
           "\"block_count\": %u,\n \"keys\": [",
           st.block_size, st.block_count);
    for (size_t i = 0; i < nk; i++) {
        uint8_t *val = NULL;
        size_t len = 0;
        err = value_read(im.store, items[i].key, items[i].len,
                       items[i].value_size, &val, &len);
        if (err) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(items[i].key, items[i].len, name);
            fprintf(stderr, "%s export: %s: %s\n", PROG, name,
                    ekv_strerror(err));
            rc = exit_code_for(err);
            goto out;
        }
        json_t *e = json_object();
        char *text = NULL;
        if (!e || set_bytes(e, "key", items[i].key, items[i].len) ||
            set_bytes(e, "value", val, len) ||
            !(text = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
            json_decref(e);
            free(val);
            print_error("export", EKV_ENOMEM);
            rc = EXIT_ERR;
            goto out;
        }
        printf("%s\n  %s", i ? "," : "", text);
        free(text);
        json_decref(e);
        free(val);
    }
    printf("%s]}\n", nk ? "\n " : "");
    rc = view_exit("export", finish_stdout("export"));
out:
    keys_free(items, nk);
    images_close(&im);
    return rc;
}

/* -------------------------------------------------------------- import */

static const char import_help[] =
    "usage: embedkvfs import [--replace] [-f FILE] [--wait S] IMAGE...\n"
    "Store every key of an export document (from standard input or FILE;\n"
    "JSON as export writes it, or CSV key,encoding,value rows) in the store\n"
    "on IMAGE..., in one open of the store. The document is read and\n"
    "checked whole first, and the space it needs is counted: a bad document\n"
    "or too little space writes nothing. Keys whose value is already the\n"
    "same are not rewritten.\n"
    "  -f, --file FILE  read the document from FILE ('-': standard input)\n"
    "  --replace        also delete the keys that are not in the document\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP
    "Exit: 0 ok, 2 usage or bad document, 4 not an image or corrupt,\n"
    "5 I/O error, locked image or no space.\n";

/*
 * While an import runs, the devices sync (fdatasync) only where the order
 * of writes matters: before the old copy of a replaced key is erased, and
 * for deletes; a new key's record needs no barrier, and everything is
 * flushed before import returns. But every flush still sends the put's
 * writes to the file: the file device gathers writes and reports a
 * failed one only when it sends them, and a put must learn it in its own
 * flush, so that the library undoes that put on every replica and the
 * import stops there. A flush without the barrier reads back the last
 * block written: the file device sends its gathered writes to the file
 * before a read that could see them and reports a failure there
 * (embedkv_file.h).
 */
static struct gate {
    ekv_device *dev;
    int (*write)(ekv_device *, uint32_t, const void *);
    int (*flush)(ekv_device *);
    uint32_t last;   /* the last block written ... */
    int unsent;      /* ... since the last flush */
} gates[EKV_MAX_REPLICAS];
static unsigned ngates;
static int gate_open = 1;
static uint8_t readback[EKV_MAX_BLOCK_SIZE];

static struct gate *gate_of(ekv_device *d)
{
    for (unsigned i = 0; i < ngates; i++)
        if (gates[i].dev == d)
            return &gates[i];
    return NULL;
}

static int gated_write(ekv_device *d, uint32_t block, const void *buf)
{
    struct gate *g = gate_of(d);
    g->last = block;
    g->unsent = 1;
    return g->write(d, block, buf);
}

static int gated_flush(ekv_device *d)
{
    struct gate *g = gate_of(d);
    int unsent = g->unsent;
    g->unsent = 0;
    if (gate_open || !d->read_blocks)
        return g->flush(d);
    return unsent ? d->read_blocks(d, g->last, 1, readback) : 0;
}

static void gates_install(images *im)
{
    ngates = 0;
    for (unsigned i = 0; i < im->n; i++) {
        ekv_device *d = im->devs[i];
        if (!d || !d->flush || !d->write)
            continue;
        gates[ngates] = (struct gate){d, d->write, d->flush, 0, 0};
        d->write = gated_write;
        d->flush = gated_flush;
        ngates++;
    }
}

/* Flush every device for real and restore them. */
static int gates_remove(void)
{
    int err = 0;
    for (unsigned i = 0; i < ngates; i++) {
        gates[i].dev->write = gates[i].write;
        gates[i].dev->flush = gates[i].flush;
        int e = gates[i].flush(gates[i].dev);
        if (e && !err)
            err = e;
    }
    ngates = 0;
    return err;
}

/* put says it so too (cli_keys.c). */
static const char generation_exhausted[] =
    "the key's generation counter is exhausted (4294967295 writes): rm the "
    "key, then import again";

/* Why a store call of the import failed, in words (a device's error names
 * the image and the cause, as put says it), and the exit status. */
static int import_cause(const images *im, int err, char *buf, size_t size)
{
    if (device_error_text(im, buf, size))
        return EXIT_IO;
    if (err == EKV_ERANGE) {
        /* ekv_put's only EKV_ERANGE. */
        snprintf(buf, size, "%s", generation_exhausted);
        return EXIT_ERR;
    }
    snprintf(buf, size, "%s", ekv_strerror(err));
    return exit_code_for(err);
}

/* The size of the store on the images, from the first header that says
 * it, to bound the input before the store is opened. 0 after printing
 * why when none does (the open would fail the same way). */
static uint64_t import_store_bytes(char **paths, unsigned n, int *rc)
{
    int err = 0;
    for (unsigned i = 0; i < n; i++) {
        img_window w = window_for(i);
        image_probe p;
        int e = image_probe_at(paths[i], w.offset, w.length, &p);
        if (p.magic && p.block_size && p.block_count)
            return (uint64_t)p.block_size * p.block_count;
        if (!i)
            err = e;
    }
    print_image_error_at(paths[0], window_for(0).offset,
                         window_for(0).length, err);
    *rc = exit_code_for_open(err);
    return 0;
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"replace", no_argument, NULL, 'r'},
        {"file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int replace = 0, c, w;
    const char *file = "-";
    opterr = 0;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("import", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'r': replace = 1; break;
        case 'f': file = optarg; break;
        case 'h': fputs(import_help, stdout); return EXIT_OK;
        default: return bad_option("import", EXIT_USAGE, argv, optopt);
        }
    }
    int n = argc - optind;
    if (n < 1)
        return usage_error("import", EXIT_USAGE, "no IMAGE given");
    int rc = 0;
    uint64_t store_bytes = import_store_bytes(argv + optind, (unsigned)n, &rc);
    if (!store_bytes)
        return rc;
    bulk_doc doc;
    rc = bulk_load_bounded("import", file, store_bytes, &doc);
    if (rc)
        return rc;
    const char *src = strcmp(file, "-") ? file : "standard input";
    images im;
    int err = images_open(&im, argv + optind, (unsigned)n, 0);
    if (err) {
        bulk_free(&doc);
        return exit_code_for_open(err);
    }
    ekv_stats st;
    ekv_stats_get(im.store, &st);
    key_item *have = NULL;
    size_t nh = 0;
    char *same = calloc(doc.n + 1, 1); /* value already as in the doc */
    size_t *old = calloc(doc.n + 1, sizeof(size_t)); /* old value size+1 */
    char *keep = NULL;
    rc = bulk_check_keys("import", src, &doc, st.block_size);
    if (rc)
        goto out;
    err = keys_collect(im.store, &have, &nh);
    keep = calloc(nh + 1, 1);
    if (err || !same || !old || !keep) {
        print_error("import", err ? err : EKV_ENOMEM);
        rc = EXIT_ERR;
        goto out;
    }
    /* Match the document against the store (both sorted). */
    for (size_t i = 0, j = 0; i < doc.n; i++) {
        bulk_item *it = &doc.items[i];
        while (j < nh && bulk_keycmp(have[j].key, have[j].len, it->key,
                                     it->klen) < 0)
            j++;
        if (j < nh && !bulk_keycmp(have[j].key, have[j].len, it->key,
                                   it->klen)) {
            keep[j] = 1;
            old[i] = (size_t)have[j].value_size + 1;
            if (have[j].value_size == it->vlen) {
                uint8_t *v = NULL;
                size_t vl = 0;
                if (value_read(im.store, it->key, it->klen, it->vlen, &v,
                             &vl) == 0 &&
                    vl == it->vlen && (!vl || !memcmp(v, it->val, vl)))
                    same[i] = 1;
                free(v);
            }
            /* A put would fail there: refuse before anything is written. */
            if (!same[i] && have[j].generation == 0xffffffffu) {
                char name[NAME_MAX_BYTES + 1];
                key_to_name(it->key, it->klen, name);
                fprintf(stderr, "%s import: %s: %s (key '%s'): %s; nothing "
                                "was written\n",
                        PROG, src, it->where, name, generation_exhausted);
                rc = EXIT_ERR;
                goto out;
            }
        }
    }
    /* Count the space, as the puts will use it: deletes first, then each
     * put takes its blocks before the old copy's are freed. */
    int64_t free_now = st.free_blocks;
    uint64_t deletes = 0, puts = 0;
    if (replace)
        for (size_t j = 0; j < nh; j++)
            if (!keep[j]) {
                free_now += (int64_t)bulk_blocks(st.block_size, have[j].len,
                                                 have[j].value_size);
                deletes++;
            }
    for (size_t i = 0; i < doc.n; i++) {
        if (same[i])
            continue;
        bulk_item *it = &doc.items[i];
        int64_t need = (int64_t)bulk_blocks(st.block_size, it->klen,
                                            it->vlen);
        if (need > free_now) {
            uint64_t total = 0, freed = 0;
            for (size_t k = 0; k < doc.n; k++)
                if (!same[k]) {
                    total += bulk_blocks(st.block_size, doc.items[k].klen,
                                         doc.items[k].vlen);
                    if (old[k])
                        freed += bulk_blocks(st.block_size,
                                             doc.items[k].klen, old[k] - 1);
                }
            char name[NAME_MAX_BYTES + 1];
            key_to_name(it->key, it->klen, name);
            fprintf(stderr,
                    "%s import: %s: no space left: at %s (key '%s') %" PRId64
                    " blocks would be free but %" PRId64 " are needed; the "
                    "document needs %" PRIu64 " blocks, replaced values "
                    "free %" PRIu64 ", the store has %u free. Nothing was "
                    "written.\n",
                    PROG, im.paths[0], it->where, name, free_now, need, total,
                    freed, st.free_blocks);
            rc = EXIT_IO;
            goto out;
        }
        free_now -= need;
        if (old[i])
            free_now += (int64_t)bulk_blocks(st.block_size, it->klen,
                                             old[i] - 1);
        puts++;
    }

    /* Write. */
    gates_install(&im);
    progress_begin("import", deletes + puts);
    uint64_t done = 0;
    char name[NAME_MAX_BYTES + 1], cause[DEVICE_ERROR_MAX];
    rc = EXIT_OK;
    if (replace)
        for (size_t j = 0; j < nh && !err; j++)
            if (!keep[j]) {
                gate_open = 1;
                err = ekv_delete(im.store, have[j].key, have[j].len);
                if (err) {
                    rc = import_cause(&im, err, cause, sizeof(cause));
                    key_to_name(have[j].key, have[j].len, name);
                    fprintf(stderr, "%s import: %s: cannot delete: %s\n",
                            PROG, name, cause);
                }
                progress_step(++done);
            }
    for (size_t i = 0; i < doc.n && !err; i++) {
        if (same[i])
            continue;
        bulk_item *it = &doc.items[i];
        gate_open = old[i] != 0;
        err = ekv_put(im.store, it->key, it->klen, it->val, it->vlen);
        if (err) {
            rc = import_cause(&im, err, cause, sizeof(cause));
            key_to_name(it->key, it->klen, name);
            fprintf(stderr,
                    "%s import: %s (%s): %s; the keys before it are "
                    "imported, it and the rest are not\n",
                    PROG, name, it->where, cause);
        }
        progress_step(++done);
    }
    gate_open = 1;
    int ferr = gates_remove();
    progress_end();
    if (!err && ferr) {
        rc = import_cause(&im, ferr, cause, sizeof(cause));
        fprintf(stderr, "%s import: %s\n", PROG, cause);
    }
out:
    free(same);
    free(old);
    free(keep);
    keys_free(have, nh);
    images_close(&im);
    bulk_free(&doc);
    return rc;
}

/* ------------------------------------------------------------- extract */

static const char extract_help[] =
    "usage: embedkvfs extract [--force] [--wait S] IMAGE... DIR\n"
    "Write every key of the store on IMAGE... as a file in DIR (created if\n"
    "missing), named by the key's escaped name (as ls prints it), holding\n"
    "the value. 'format --from DIR' builds the store back. Existing files\n"
    "are left alone (an error, before anything is written) unless --force.\n"
    "Keys too long for a file name (shortened names) are skipped with a\n"
    "warning and exit 1. Never writes to an image.\n"
    "  --force          overwrite existing files\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP
    "Exit: 0 ok, 1 keys skipped or files exist, 2 usage, 4 not an image,\n"
    "5 I/O error.\n";

/*
 * The temporary file being written, for the handler below: an extract
 * stopped by SIGINT, SIGTERM or SIGHUP leaves no temporary behind (a
 * later `format --from DIR` would take it for a key). Set and cleared
 * with those signals blocked, so the handler sees a whole name or none.
 */
static char tmp_live[PATH_MAX];

static void drop_tmp_and_stop(int sig)
{
    if (tmp_live[0])
        (void)unlink(tmp_live);
    (void)signal(sig, SIG_DFL);
    (void)raise(sig); /* ends the process as the signal would have */
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void stops_blocked(bool block, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(stop_signals) / sizeof(*stop_signals); i++)
        sigaddset(&set, stop_signals[i]);
    (void)sigprocmask(block ? SIG_BLOCK : SIG_SETMASK, block ? &set : old,
                      block ? old : NULL);
}

/* Catch the stop signals for the temporary files' sake; one the caller
 * ignores (a background job's SIGINT) stays ignored. */
static void catch_stops(void)
{
    for (size_t i = 0; i < sizeof(stop_signals) / sizeof(*stop_signals); i++) {
        struct sigaction sa, old;
        if (sigaction(stop_signals[i], NULL, &old) == 0 &&
            old.sa_handler == SIG_IGN)
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = drop_tmp_and_stop;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(stop_signals[i], &sa, NULL);
    }
}

/* Remove tmp and forget it, the stop signals blocked. */
static void tmp_drop(const char *tmp)
{
    sigset_t old;
    stops_blocked(true, &old);
    (void)unlink(tmp);
    tmp_live[0] = '\0';
    stops_blocked(false, &old);
}

static int write_file_atomic(const char *dir, const char *name,
                             const uint8_t *b, size_t n)
{
    char *tmp = NULL, *path = NULL;
    int rc = -ENOMEM, fd = -1;
    /* A short temporary name: the key's own name may be 255 bytes. */
    if (asprintf(&tmp, "%s/.embedkvfs-extract.XXXXXX", dir) < 0)
        tmp = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        path = NULL;
    if (!tmp || !path)
        goto out;
    if (strlen(tmp) >= sizeof(tmp_live)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    sigset_t old;
    stops_blocked(true, &old);
    fd = mkostemp(tmp, O_CLOEXEC);
    int made = fd < 0 ? errno : 0;
    if (fd >= 0)
        memcpy(tmp_live, tmp, strlen(tmp) + 1);
    stops_blocked(false, &old);
    if (fd < 0) {
        rc = -made;
        goto out;
    }
    (void)fchmod(fd, 0644);
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, b + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            close(fd);
            tmp_drop(tmp);
            goto out;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        rc = -errno;
        tmp_drop(tmp);
        goto out;
    }
    stops_blocked(true, &old);
    int moved = rename(tmp, path) == 0 ? 0 : errno;
    if (moved)
        (void)unlink(tmp);
    tmp_live[0] = '\0';
    stops_blocked(false, &old);
    rc = -moved;
out:
    free(tmp);
    free(path);
    return rc;
}

int cmd_extract(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int force = 0, c, w;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("extract", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'F': force = 1; break;
        case 'h': fputs(extract_help, stdout); return EXIT_OK;
        default: return bad_option("extract", EXIT_USAGE, argv, optopt);
        }
    }
    int n = argc - optind;
    if (n < 2)
        return usage_error("extract", EXIT_USAGE, "need IMAGE... DIR");
    const char *dir = argv[argc - 1];
    catch_stops();
    images im;
    int err = images_open(&im, argv + optind, (unsigned)n - 1,
                          IMG_RDONLY | IMG_DEGRADED);
    if (err)
        return exit_code_for_open(err);
    key_item *items = NULL;
    size_t nk = 0;
    int rc = EXIT_OK;
    err = keys_collect(im.store, &items, &nk);
    if (err) {
        print_error("extract", err);
        rc = exit_code_for(err);
        goto out;
    }
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s extract: %s: not a directory\n", PROG, dir);
            rc = EXIT_USAGE;
            goto out;
        }
        /* Check every name first: nothing is written if one exists. */
        for (size_t i = 0; i < nk && !force; i++) {
            char name[NAME_MAX_BYTES + 1], *path = NULL;
            key_to_name(items[i].key, items[i].len, name);
            if (asprintf(&path, "%s/%s", dir, name) < 0)
                continue;
            int exists = lstat(path, &st) == 0;
            if (exists)
                fprintf(stderr, "%s extract: %s exists (use --force to "
                                "overwrite); nothing written\n",
                        PROG, path);
            free(path);
            if (exists) {
                rc = EXIT_ERR;
                goto out;
            }
        }
    } else if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "%s extract: %s: %s\n", PROG, dir, strerror(errno));
        rc = EXIT_IO;
        goto out;
    }
    for (size_t i = 0; i < nk; i++) {
        char name[NAME_MAX_BYTES + 1];
        key_to_name(items[i].key, items[i].len, name);
        if (strstr(name, "%#")) {
            fprintf(stderr, "%s extract: warning: key '%s' is too long for a "
                            "file name; skipped\n",
                    PROG, name);
            rc = EXIT_ERR;
            continue;
        }
        uint8_t *val = NULL;
        size_t len = 0;
        err = value_read(im.store, items[i].key, items[i].len,
                       items[i].value_size, &val, &len);
        if (err) {
            fprintf(stderr, "%s extract: %s: %s\n", PROG, name,
                    ekv_strerror(err));
            rc = exit_code_for(err);
            goto out;
        }
        int e = write_file_atomic(dir, name, val, len);
        free(val);
        if (e) {
            fprintf(stderr, "%s extract: %s/%s: %s\n", PROG, dir, name,
                    strerror(-e));
            rc = EXIT_IO;
            goto out;
        }
    }
    rc = view_exit("extract", rc);
out:
    keys_free(items, nk);
    images_close(&im);
    return rc;
}
