/* bulk.c - loading many keys from a JSON document or a directory (the
 * CSV reader is bulk_csv.c); see bulk.h. Everything is validated before
 * anything is returned, so a caller writes nothing for a bad source. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulk_internal.h"
#include "common.h"
#include "codec.h"
#include "names.h"

void bulk_say(const char *cmd, const char *source, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: %s: ", PROG, cmd, source);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int bulk_keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

static int cmp_item(const void *x, const void *y)
{
    const bulk_item *a = x, *b = y;
    return bulk_keycmp(a->key, a->klen, b->key, b->klen);
}

uint64_t bulk_blocks(uint32_t bs, size_t klen, size_t vlen)
{
    uint64_t first = bs - EKV_DESCRIPTOR_HEADER_SIZE - klen - EKV_CRC_SIZE;
    uint64_t per = bs - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
    return vlen <= first ? 1 : 1 + (vlen - first + per - 1) / per;
}

int bulk_is_text(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (b[i] == 0)
            return 0;
        size_t l = utf8_len(b + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

uint8_t *bulk_dup(const void *p, size_t n)
{
    uint8_t *b = malloc(n + 1);
    if (b && n)
        memcpy(b, p, n);
    return b;
}

bulk_item *bulk_add(bulk_doc *doc)
{
    if (doc->n == doc->cap) {
        size_t nc = doc->cap ? doc->cap * 2 : 256;
        bulk_item *ni = realloc(doc->items, nc * sizeof(*ni));
        if (!ni)
            return NULL;
        doc->items = ni;
        doc->cap = nc;
    }
    bulk_item *it = &doc->items[doc->n++];
    memset(it, 0, sizeof(*it));
    return it;
}

void bulk_free(bulk_doc *doc)
{
    for (size_t i = 0; i < doc->n; i++) {
        free(doc->items[i].key);
        free(doc->items[i].val);
    }
    free(doc->items);
    memset(doc, 0, sizeof(*doc));
}

uint64_t bulk_input_limit(uint64_t store_bytes)
{
    /* A document holds no more than the store does, written at most 6
     * bytes per byte (a control byte in a JSON string, \u0001) plus the
     * syntax of its entries (one block each at least): 8 times the store
     * and a MiB are generous, and still bound an endless input. */
    const uint64_t most = SIZE_MAX / 2;
    if (store_bytes > (most - (1u << 20)) / 8)
        return most;
    return store_bytes * 8 + (1u << 20);
}

/* Read fd to its end, but no more than room + 1 bytes: more than room is
 * -EFBIG (so an endless input ends here), *len then what was read.
 * NUL-terminated in *out; 0 or a negated errno. */
static int read_fd(int fd, uint64_t room, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n > room) {
            free(buf);
            *len = n;
            return -EFBIG;
        }
        if (n == cap) {
            char *nb = cap < SIZE_MAX / 4 ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - n;
        if (room - n < want)
            want = (size_t)(room - n) + 1;
        ssize_t got = read(fd, buf + n, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

/* Read fd (closed after, unless it is standard input) within doc->room,
 * which it reduces: 0, or EXIT_IO with the reason in why. */
static int read_within(bulk_doc *doc, int fd, char **out, size_t *len,
                       char *why, size_t cap)
{
    *len = 0;
    int e = read_fd(fd, doc->room, out, len);
    if (fd != STDIN_FILENO)
        close(fd);
    if (e == -EFBIG) {
        snprintf(why, cap, "input larger than the store could hold (more "
                           "than %llu bytes in all for a store of %llu "
                           "bytes)",
                 (unsigned long long)bulk_input_limit(doc->store_bytes),
                 (unsigned long long)doc->store_bytes);
        return EXIT_IO;
    }
    if (e) {
        snprintf(why, cap, "%s", strerror(-e));
        return EXIT_IO;
    }
    doc->room -= *len;
    return 0;
}

int bulk_slurp(bulk_doc *doc, const char *path, char **out, size_t *len,
               char *why, size_t cap)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC)
                               : STDIN_FILENO;
    if (fd < 0) {
        snprintf(why, cap, "%s", strerror(errno));
        return EXIT_IO;
    }
    return read_within(doc, fd, out, len, why, cap);
}

/* Whether st is a regular file; else why says what it is. */
static int is_regular(const struct stat *st, char *why, size_t cap)
{
    if (S_ISREG(st->st_mode))
        return 1;
    if (S_ISDIR(st->st_mode))
        snprintf(why, cap, "is a directory");
    else
        snprintf(why, cap, "not a regular file (it is %s)",
                 file_kind(st->st_mode));
    return 0;
}

int bulk_value_file(bulk_doc *doc, const char *path, char **out,
                    size_t *len, char *why, size_t cap)
{
    /* Refused before it is opened (opening a device can do things), and
     * checked again on the descriptor in case the path changed. A path
     * that names nothing is a mistake of the source, as a special file. */
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, cap, "%s", strerror(errno));
        return EXIT_USAGE;
    }
    if (!is_regular(&st, why, cap))
        return EXIT_USAGE;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, cap, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_IO;
    }
    if (!is_regular(&st, why, cap)) {
        close(fd);
        return EXIT_USAGE;
    }
    return read_within(doc, fd, out, len, why, cap);
}

/* Sort and refuse duplicates. */
static int finish(const char *cmd, const char *source, bulk_doc *doc)
{
    if (doc->n)
        qsort(doc->items, doc->n, sizeof(*doc->items), cmp_item);
    for (size_t i = 1; i < doc->n; i++) {
        bulk_item *a = &doc->items[i - 1], *b = &doc->items[i];
        if (!cmp_item(a, b)) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(b->key, b->klen, name);
            bulk_say(cmd, source, "key '%s' given twice (%s and %s)", name,
                a->where, b->where);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ JSON */

/* One of "NAME" (text) or "NAME_base64" from an entry. */
static int json_bytes(json_t *e, const char *name, uint8_t **out,
                      size_t *len, char *why, size_t cap)
{
    char b64name[32];
    snprintf(b64name, sizeof(b64name), "%s_base64", name);
    json_t *t = json_object_get(e, name), *b = json_object_get(e, b64name);
    if (t && b) {
        snprintf(why, cap, "both \"%s\" and \"%s\"", name, b64name);
        return -1;
    }
    if (!t && !b) {
        snprintf(why, cap, "no \"%s\" (or \"%s\")", name, b64name);
        return -1;
    }
    json_t *v = t ? t : b;
    if (!json_is_string(v)) {
        snprintf(why, cap, "\"%s\" is not a string", t ? name : b64name);
        return -1;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (t) {
        *out = bulk_dup(s, n);
        *len = n;
        if (!*out) {
            snprintf(why, cap, "out of memory");
            return -1;
        }
        return 0;
    }
    if (b64_decode(s, n, out, len)) {
        snprintf(why, cap, "\"%s\" is not base64 (RFC 4648, padded)",
                 b64name);
        return -1;
    }
    return 0;
}

static int geometry_field(json_t *root, const char *name, uint32_t *out,
                          char *why, size_t cap)
{
    json_t *v = json_object_get(root, name);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 0xffffffffll) {
        snprintf(why, cap, "\"%s\" is not a block count/size", name);
        return -1;
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

/* A document of another format would be read wrongly: a "format" must
 * be the one export writes (none at all is fine: hand-written). */
static int format_field(json_t *root, char *why, size_t cap)
{
    json_t *v = json_object_get(root, "format");
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, cap, "\"format\" is not a string (export writes "
                           "\"%s\")", BULK_FORMAT);
        return -1;
    }
    const char *f = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == strlen(BULK_FORMAT) && !memcmp(f, BULK_FORMAT, n))
        return 0;
    char name[NAME_MAX_BYTES + 1]; /* escaped: it goes to a terminal */
    key_to_name((const uint8_t *)f, n, name);
    snprintf(why, cap, "unknown export format \"%.80s\" (this embedkvfs "
                       "reads %s)", name, BULK_FORMAT);
    return -1;
}

static int load_json(const char *cmd, const char *source, const char *text,
                     size_t len, bulk_doc *doc)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES |
                                             JSON_ALLOW_NUL, &jerr);
    if (!root) {
        bulk_say(cmd, source, "line %d, column %d: %s", jerr.line, jerr.column,
            jerr.text);
        return EXIT_USAGE;
    }
    char why[160];
    int rc = EXIT_USAGE;
    if (!json_is_object(root)) {
        bulk_say(cmd, source, "not an export document (a JSON object with "
                         "\"keys\")");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "keys") && strcmp(k, "block_size") &&
            strcmp(k, "block_count") && strcmp(k, "format")) {
            bulk_say(cmd, source, "unknown field \"%s\" in the document", k);
            goto out;
        }
    }
    if (format_field(root, why, sizeof(why)) ||
        geometry_field(root, "block_size", &doc->block_size, why,
                       sizeof(why)) ||
        geometry_field(root, "block_count", &doc->block_count, why,
                       sizeof(why))) {
        bulk_say(cmd, source, "%s", why);
        goto out;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        bulk_say(cmd, source, "\"keys\" %s", keys ? "is not an array"
                                              : "is missing");
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(keys, i, e)
    {
        if (!json_is_object(e)) {
            bulk_say(cmd, source, "keys[%zu]: not an object", i);
            goto out;
        }
        json_object_foreach(e, k, v)
        {
            if (strcmp(k, "key") && strcmp(k, "key_base64") &&
                strcmp(k, "value") && strcmp(k, "value_base64")) {
                bulk_say(cmd, source, "keys[%zu]: unknown field \"%s\"", i, k);
                goto out;
            }
        }
        bulk_item *it = bulk_add(doc);
        if (!it) {
            bulk_say(cmd, source, "out of memory");
            rc = EXIT_IO;
            goto out;
        }
        snprintf(it->where, sizeof(it->where), "keys[%zu]", i);
        if (json_bytes(e, "key", &it->key, &it->klen, why, sizeof(why)) ||
            json_bytes(e, "value", &it->val, &it->vlen, why, sizeof(why))) {
            bulk_say(cmd, source, "keys[%zu]: %s", i, why);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------- directory */

static int load_dir(const char *cmd, const char *source, bulk_doc *doc)
{
    DIR *d = opendir(source);
    if (!d) {
        bulk_say(cmd, source, "%s", strerror(errno));
        return EXIT_IO;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", source, nm) < 0) {
            rc = EXIT_IO;
            break;
        }
        char *data = NULL, why[200];
        size_t dlen = 0;
        int e = bulk_value_file(doc, path, &data, &dlen, why, sizeof(why));
        if (e) {
            bulk_say(cmd, path, "%s%s", why, e == EXIT_USAGE
                ? ": a key source directory holds only regular files (one "
                  "per key)" : "");
            free(path);
            rc = e;
            break;
        }
        uint8_t *key = malloc(strlen(nm) + 1);
        size_t klen = 0;
        uint64_t h;
        enum name_kind kind = key ? name_to_key(nm, key, &klen, &h)
                                  : NAME_INVALID;
        if (kind != NAME_KEY) {
            bulk_say(cmd, path, "%s", kind == NAME_SHORT
                    ? "a shortened name (ends in %#HASH): the key it stands "
                      "for cannot be recovered from it"
                    : "not an escaped key name (as ls prints them: %XX with "
                      "upper-case hex for '/', '%', control and non-UTF-8 "
                      "bytes, '%' alone for the empty key)");
            free(key);
            free(data);
            free(path);
            rc = EXIT_USAGE;
            break;
        }
        bulk_item *it = bulk_add(doc);
        if (!it) {
            free(key);
            free(data);
            free(path);
            rc = EXIT_IO;
            break;
        }
        snprintf(it->where, sizeof(it->where), "file %.50s", nm);
        it->key = key;
        it->klen = klen;
        it->val = (uint8_t *)data;
        it->vlen = dlen;
        free(path);
    }
    closedir(d);
    return rc;
}

int bulk_load(const char *cmd, const char *source, bulk_doc *doc)
{
    return bulk_load_bounded(cmd, source, 0, doc);
}

/* A JSON document or a CSV file, already read. */
static int load_text(const char *cmd, const char *source, const char *name,
                     const char *text, size_t len, bulk_doc *doc)
{
    size_t sl = strlen(source);
    int csv = sl > 4 && !strcasecmp(source + sl - 4, ".csv");
    if (!csv && !(sl > 5 && !strcasecmp(source + sl - 5, ".json"))) {
        size_t i = strspn(text, " \t\r\n");
        csv = i < len && text[i] != '{' && text[i] != '[';
    }
    return csv ? bulk_load_csv(cmd, name, text, len, doc)
               : load_json(cmd, name, text, len, doc);
}

int bulk_load_bounded(const char *cmd, const char *source,
                      uint64_t store_bytes, bulk_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    doc->store_bytes = store_bytes;
    doc->room = store_bytes ? bulk_input_limit(store_bytes) : UINT64_MAX;
    const char *name = strcmp(source, "-") ? source : "standard input";
    struct stat st;
    int rc;
    if (strcmp(source, "-") && stat(source, &st) == 0 &&
        S_ISDIR(st.st_mode)) {
        rc = load_dir(cmd, source, doc);
    } else {
        char *text = NULL, why[200];
        size_t len = 0;
        rc = bulk_slurp(doc, source, &text, &len, why, sizeof(why));
        if (!rc && !text) { /* never; the analyzer cannot tell */
            snprintf(why, sizeof(why), "%s", strerror(ENOMEM));
            rc = EXIT_IO;
        }
        if (rc)
            bulk_say(cmd, name, "%s", why);
        else
            rc = load_text(cmd, source, name, text, len, doc);
        free(text);
    }
    if (!rc)
        rc = finish(cmd, name, doc);
    if (rc)
        bulk_free(doc);
    return rc;
}

int bulk_check_keys(const char *cmd, const char *source, const bulk_doc *doc,
                    uint32_t bs)
{
    for (size_t i = 0; i < doc->n; i++)
        if (doc->items[i].klen > EKV_MAX_KEY_SIZE(bs)) {
            bulk_say(cmd, source, "%s: key of %zu bytes is too long for %u-byte "
                             "blocks (at most %u)",
                doc->items[i].where, doc->items[i].klen, bs,
                EKV_MAX_KEY_SIZE(bs));
            return EXIT_USAGE;
        }
    return 0;
}
