/* cli.c - helpers shared by the script subcommands; see cli.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "codec.h"
#include "names.h"
#include "numparse.h"

int usage_error(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", PROG, cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s %s --help')\n", PROG, cmd);
    return code;
}

int bad_option(const char *cmd, int code, char **argv, int optopt_)
{
    /* getopt leaves the offending argument just before optind, unless it
     * stopped inside a cluster such as "-dash" (a KEY that starts with
     * '-'), and it permutes argv: look for the argument that holds the
     * bad option letter. */
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (optopt_ > 0 && optopt_ < 128) {
        for (int i = 1; argv[i]; i++) {
            const char *a = argv[i];
            if (!strcmp(a, "--"))
                break;
            if (a[0] == '-' && a[1] && a[1] != '-' &&
                strchr(a + 1, optopt_)) {
                arg = a;
                break;
            }
        }
        if (arg[0] == '-' && arg[1] != '-' && strlen(arg) > 2)
            return usage_error(cmd, code,
                               "unknown option '-%c' in '%s' (if '%s' is a "
                               "KEY or a file name, put '--' before it)",
                               optopt_, arg, arg);
        if (arg[0] == '-' && arg[1] != '-')
            return usage_error(cmd, code,
                               "bad option '-%c' or missing argument",
                               optopt_);
    }
    return usage_error(cmd, code, "bad option '%s' or missing argument", arg);
}

int lock_wait_opt(const char *cmd, int c, const char *arg)
{
    if (c == OPT_NO_WAIT) {
        images_set_lock_wait(0);
        return 1;
    }
    if (c != OPT_WAIT)
        return 0;
    uint64_t secs;
    int rc = parse_number(arg, 86400, &secs);
    if (rc) {
        usage_error(cmd, EXIT_USAGE, "--wait SECONDS: '%s' is %s (0..86400)",
                    arg, number_error(rc));
        return -1;
    }
    images_set_lock_wait((uint32_t)secs * 1000u);
    return 1;
}

int key_arg_parse(const char *arg, enum key_form form, key_arg *k)
{
    size_t n = strlen(arg);
    memset(k, 0, sizeof(*k));
    k->arg = arg;
    k->bytes = malloc(n + 1);
    if (!k->bytes) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return EKV_ENOMEM;
    }
    switch (form) {
    case KEY_RAW:
        memcpy(k->bytes, arg, n);
        k->len = n;
        return 0;
    case KEY_HEX:
        if (n % 2) {
            fprintf(stderr, "%s: '%s': odd number of hex digits\n", PROG, arg);
            return EKV_EINVAL;
        }
        for (size_t i = 0; i < n; i += 2) {
            int hi = hex_digit((unsigned char)arg[i]);
            int lo = hex_digit((unsigned char)arg[i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "%s: '%s': not a hex key\n", PROG, arg);
                return EKV_EINVAL;
            }
            k->bytes[k->len++] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    case KEY_ESCAPED: {
        uint64_t hash = 0;
        enum name_kind kind = name_to_key(arg, k->bytes, &k->len, &hash);
        if (kind == NAME_INVALID) {
            fprintf(stderr,
                    "%s: '%s': not an escaped key name (as ls prints them: "
                    "%%XX with upper-case hex, '%%' for the empty key)\n",
                    PROG, arg);
            return EKV_EINVAL;
        }
        k->is_short = kind == NAME_SHORT;
        return 0;
    }
    }
    return EKV_EINVAL;
}

typedef struct short_search {
    const char *name;
    uint8_t *found;
    size_t len;
    int err;
} short_search;

static int match_short(void *ctx, const ekv_key_info *info)
{
    short_search *ss = ctx;
    if (!short_name_matches(ss->name, info->key, info->key_len))
        return 0;
    ss->found = malloc(info->key_len + 1);
    if (!ss->found) {
        ss->err = EKV_ENOMEM;
        return 1;
    }
    memcpy(ss->found, info->key, info->key_len);
    ss->len = info->key_len;
    return 1;
}

int key_arg_resolve(ekv_store *s, key_arg *k)
{
    if (k->is_short) {
        /* A shortened name names a key through its hash: search. */
        short_search ss = {k->arg, NULL, 0, 0};
        ekv_iterate(s, match_short, &ss);
        if (ss.err)
            return ss.err;
        if (!ss.found)
            return EKV_ENOENT;
        free(k->bytes);
        k->bytes = ss.found;
        k->len = ss.len;
        k->is_short = 0;
    }
    ekv_stats st;
    ekv_stats_get(s, &st);
    if (k->len > st.max_key_size)
        return EKV_ENAMETOOLONG;
    return 0;
}

int key_device_error(const char *cmd, const images *im, const key_arg *k)
{
    char cause[DEVICE_ERROR_MAX];
    if (!device_error_text(im, cause, sizeof(cause)))
        return 0;
    char name[NAME_MAX_BYTES + 1];
    key_to_name(k->bytes, k->len, name);
    fprintf(stderr, "%s %s: %s: %s\n", PROG, cmd, name, cause);
    return 1;
}

void key_error(const char *cmd, ekv_store *s, const key_arg *k, int err)
{
    char name[NAME_MAX_BYTES + 1];
    key_to_name(k->bytes, k->len, name);
    if (err == EKV_ENAMETOOLONG) {
        ekv_stats st;
        ekv_stats_get(s, &st);
        fprintf(stderr,
                "%s %s: %s: key too long (%zu bytes; at most %u with %u-byte "
                "blocks)\n",
                PROG, cmd, name, k->len, st.max_key_size, st.block_size);
        return;
    }
    if (err == EKV_ENOENT) {
        /* A name copied from ls but given raw is the commonest slip. */
        uint8_t *alt = malloc(strlen(k->arg) + 1);
        size_t alen = 0;
        uint64_t h;
        ekv_key_info ki;
        int hint = alt && k->len == strlen(k->arg) &&
                   memcmp(k->bytes, k->arg, k->len) == 0 &&
                   name_to_key(k->arg, alt, &alen, &h) == NAME_KEY &&
                   (alen != k->len || memcmp(alt, k->bytes, alen) != 0) &&
                   ekv_stat_key(s, alt, alen, &ki) == 0;
        free(alt);
        fprintf(stderr, "%s %s: %s: no such key%s\n", PROG, cmd, name,
                hint ? " (it is the escaped name of a key: add -e)" : "");
        return;
    }
    fprintf(stderr, "%s %s: %s: %s\n", PROG, cmd, name, ekv_strerror(err));
}

void key_arg_free(key_arg *k)
{
    free(k->bytes);
    k->bytes = NULL;
}

typedef struct collect {
    key_item *items;
    size_t n, cap;
    int err;
} collect;

static int collect_one(void *ctx, const ekv_key_info *info)
{
    collect *c = ctx;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        key_item *ni = realloc(c->items, ncap * sizeof(*ni));
        if (!ni) {
            c->err = EKV_ENOMEM;
            return 1;
        }
        c->items = ni;
        c->cap = ncap;
    }
    key_item *it = &c->items[c->n];
    it->key = malloc(info->key_len + 1); /* +1: never malloc(0) */
    if (!it->key) {
        c->err = EKV_ENOMEM;
        return 1;
    }
    memcpy(it->key, info->key, info->key_len);
    it->len = info->key_len;
    it->value_size = info->value_size;
    it->generation = info->generation;
    it->replicas = info->replicas;
    it->stale = info->stale;
    c->n++;
    return 0;
}

static int cmp_items(const void *a, const void *b)
{
    const key_item *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

int keys_collect(ekv_store *s, key_item **out, size_t *n)
{
    collect c = {0};
    ekv_iterate(s, collect_one, &c);
    if (c.err) {
        keys_free(c.items, c.n);
        return c.err;
    }
    if (c.n)
        qsort(c.items, c.n, sizeof(*c.items), cmp_items);
    *out = c.items;
    *n = c.n;
    return 0;
}

void keys_free(key_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i].key);
    free(items);
}


void json_str(FILE *f, const char *s_, size_t len)
{
    const unsigned char *s = (const unsigned char *)s_;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(s + i, len - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

void json_hex(FILE *f, const uint8_t *b, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++)
        fprintf(f, "%02x", b[i]);
    fputc('"', f);
}

void json_state(const char *word, const char *why)
{
    printf(", \"state\": ");
    json_cstr(stdout, word);
    printf(", \"state_detail\": ");
    if (why && why[0])
        json_cstr(stdout, why);
    else
        printf("null");
}

int view_exit(const char *cmd, int rc)
{
    uint32_t lost = view_lacks_blocks();
    if (!lost || (rc != EXIT_OK && rc != EXIT_NOKEY))
        return rc;
    fprintf(stderr,
            "%s %s: incomplete: %u block%s of the store could not be read "
            "(input/output error)\n",
            PROG, cmd, lost, lost == 1 ? "" : "s");
    return EXIT_IO;
}

int finish_stdout(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s %s: standard output: %s\n", PROG, cmd,
                strerror(errno ? errno : EIO));
        return EXIT_IO;
    }
    return 0;
}
