/*
 * bulk_csv.c - the CSV source of import and format --from: rows of
 * key,encoding,value (RFC 4180 quoting; encodings string, hex, base64,
 * file), an optional header row, '#' comment lines. See embedkvfs(1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk_internal.h"
#include "codec.h"
#include "common.h"


/* Split one CSV record starting at *pp (RFC 4180 quoting); advances *pp
 * and *line. Returns the number of fields (at most max), -1 on a syntax
 * error (why set). Fields point into a malloc'd copy in *store. */
static int csv_record(const char **pp, const char *end, int *line,
                      char **fields, size_t *flen, int max, char **store,
                      char *why, size_t cap)
{
    const char *p = *pp;
    size_t room = (size_t)(end - p) + 1;
    char *buf = malloc(room), *o = buf;
    int nf = 0;
    if (!buf) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    *store = buf;
    for (;;) {
        if (nf == max) {
            snprintf(why, cap, "more than %d fields (key,encoding,value); "
                               "quote a value that holds a comma", max);
            return -1;
        }
        fields[nf] = o;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p >= end) {
                    snprintf(why, cap, "unterminated quoted field");
                    return -1;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *o++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n')
                    (*line)++;
                *o++ = *p++;
            }
            if (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                snprintf(why, cap, "text after a closing quote");
                return -1;
            }
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                if (*p == '"') {
                    snprintf(why, cap, "a quote inside an unquoted field "
                                       "(quote the whole field)");
                    return -1;
                }
                *o++ = *p++;
            }
        }
        flen[nf] = (size_t)(o - fields[nf]);
        *o++ = 0;
        nf++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (p < end && *p == '\r')
        p++;
    if (p < end && *p == '\n') {
        p++;
        (*line)++;
    }
    *pp = p;
    return nf;
}

int bulk_load_csv(const char *cmd, const char *source, const char *text,
                    size_t len, bulk_doc *doc)
{
    const char *p = text, *end = text + len;
    int line = 1, first = 1;
    char why[200];
    /* The directory of the CSV file, for encoding "file". */
    char *dir = strdup(source);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        slash[1] = 0;
    else if (dir)
        dir[0] = 0;
    while (p < end) {
        int at = line;
        char *fields[3], *store = NULL;
        size_t flen[3];
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
            p += *p == '\r' ? 2 : 1;
            line++;
            continue;
        }
        if (*p == '#') {
            while (p < end && *p != '\n')
                p++;
            continue;
        }
        int nf = csv_record(&p, end, &line, fields, flen, 3, &store, why,
                            sizeof(why));
        if (nf < 0) {
            bulk_say(cmd, source, "line %d: %s", at, why);
            goto fail_store;
        }
        if (first && nf == 3 && !strcmp(fields[0], "key") &&
            !strcmp(fields[1], "encoding") && !strcmp(fields[2], "value")) {
            first = 0;
            free(store);
            continue;
        }
        first = 0;
        if (nf != 3) {
            bulk_say(cmd, source, "line %d: %d field%s; a row is key,encoding,"
                             "value", at, nf, nf == 1 ? "" : "s");
            goto fail_store;
        }
        bulk_item *it = bulk_add(doc);
        if (!it) {
            bulk_say(cmd, source, "out of memory");
            free(store);
            free(dir);
            return EXIT_IO;
        }
        snprintf(it->where, sizeof(it->where), "line %d", at);
        it->key = bulk_dup(fields[0], flen[0]);
        it->klen = flen[0];
        const char *enc = fields[1], *val = fields[2];
        int bad = 0;
        if (!strcmp(enc, "string")) {
            it->val = bulk_dup(val, flen[2]);
            it->vlen = flen[2];
        } else if (!strcmp(enc, "hex")) {
            bad = hex_decode(val, flen[2], &it->val, &it->vlen);
        } else if (!strcmp(enc, "base64")) {
            bad = b64_decode(val, flen[2], &it->val, &it->vlen);
        } else if (!strcmp(enc, "file")) {
            char *path = NULL;
            if (val[0] == '/' || !dir ||
                asprintf(&path, "%s%s", dir, val) < 0)
                path = strdup(val);
            char *data = NULL;
            size_t dlen = 0;
            int e = path ? bulk_value_file(doc, path, &data, &dlen, why,
                                           sizeof(why))
                         : EXIT_IO;
            if (e) {
                bulk_say(cmd, source, "line %d: %s: %s", at, path ? path : val,
                    path ? why : strerror(ENOMEM));
                free(path);
                free(store);
                free(dir);
                return e;
            }
            free(path);
            it->val = (uint8_t *)data;
            it->vlen = dlen;
        } else {
            bulk_say(cmd, source, "line %d: unknown encoding '%s' (string, hex, "
                             "base64 or file)", at, enc);
            goto fail_store;
        }
        if (bad) {
            bulk_say(cmd, source, "line %d: value is not %s", at,
                !strcmp(enc, "hex") ? "an even number of hex digits"
                                    : "base64 (RFC 4648, padded)");
            goto fail_store;
        }
        free(store);
        continue;
    fail_store:
        free(store);
        free(dir);
        return EXIT_USAGE;
    }
    free(dir);
    return 0;
}

