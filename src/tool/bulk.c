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

/* Read a whole file (or stdin for "-"). */
int bulk_slurp(const char *path, char **out, size_t *len)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0)
        return -errno;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        if (fd)
            close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                if (fd)
                    close(fd);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            if (fd)
                close(fd);
            return -e;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (fd)
        close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
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
    if (geometry_field(root, "block_size", &doc->block_size, why,
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
        struct stat st;
        if (stat(path, &st) != 0) {
            bulk_say(cmd, path, "%s", strerror(errno));
            free(path);
            rc = EXIT_IO;
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            bulk_say(cmd, path, "%s: a key source directory holds only regular "
                           "files (one per key)",
                S_ISDIR(st.st_mode) ? "is a subdirectory" : "not a regular "
                                                            "file");
            free(path);
            rc = EXIT_USAGE;
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
            free(path);
            rc = EXIT_USAGE;
            break;
        }
        char *data = NULL;
        size_t dlen = 0;
        int e = bulk_slurp(path, &data, &dlen);
        if (e) {
            bulk_say(cmd, path, "%s", strerror(-e));
            free(key);
            free(path);
            rc = EXIT_IO;
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
    memset(doc, 0, sizeof(*doc));
    struct stat st;
    int rc;
    if (strcmp(source, "-") && stat(source, &st) == 0 &&
        S_ISDIR(st.st_mode)) {
        rc = load_dir(cmd, source, doc);
    } else {
        char *text = NULL;
        size_t len = 0;
        int e = bulk_slurp(source, &text, &len);
        if (e || !text) {
            bulk_say(cmd, strcmp(source, "-") ? source : "standard input",
                     "%s", strerror(e ? -e : ENOMEM));
            return EXIT_IO;
        }
        const char *name = strcmp(source, "-") ? source : "standard input";
        size_t sl = strlen(source);
        int csv = sl > 4 && !strcasecmp(source + sl - 4, ".csv");
        if (!csv && !(sl > 5 && !strcasecmp(source + sl - 5, ".json"))) {
            size_t i = strspn(text, " \t\r\n");
            csv = i < len && text[i] != '{' && text[i] != '[';
        }
        rc = csv ? bulk_load_csv(cmd, name, text, len, doc)
                 : load_json(cmd, name, text, len, doc);
        free(text);
        if (!rc)
            rc = finish(cmd, name, doc);
        if (rc)
            bulk_free(doc);
        return rc;
    }
    if (!rc)
        rc = finish(cmd, source, doc);
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
