/*
 * imgcheck.c - a tiny helper for the FUSE tests: makes, seeds and reads
 * back embedkv images through the library alone, so the tests can check
 * what a mount left in the images without relying on the mount itself.
 *
 *   imgcheck format BLOCK_SIZE BLOCK_COUNT IMAGE...
 *   imgcheck put KEYHEX (VALHEX | @FILE) IMAGE...
 *   imgcheck dump [--nolock] IMAGE...
 *
 * dump opens the images read-only (shared lock: it fails while a
 * read-write mount holds them; --nolock reads them anyway, to see what a
 * live mount has made durable) and prints one JSON object:
 *   {"block_size": N, "block_count": N, "free_blocks": N, "replicas": N,
 *    "active": N, "keys": {"<key hex>": {"value": "<hex>", "gen": N,
 *    "replicas": MASK}, ...}}
 * A value that cannot be read shows as {"error": "..."}. Exit status 0,
 * or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkv.h"
#include "embedkv_file.h"

static int fail(const char *what, int err)
{
    fprintf(stderr, "imgcheck: %s: %s\n", what, ekv_strerror(err));
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode hex (or read @file) into a malloc'd buffer. */
static uint8_t *decode_arg(const char *s, size_t *len)
{
    if (s[0] == '@') {
        FILE *f = fopen(s + 1, "rb");
        if (!f)
            return NULL;
        size_t cap = 4096, n = 0;
        uint8_t *b = malloc(cap);
        size_t got;
        while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) {
                uint8_t *nb = realloc(b, cap *= 2);
                if (!nb)
                    free(b);
                b = nb;
            }
        }
        fclose(f);
        *len = n;
        return b;
    }
    size_t n = strlen(s);
    if (n % 2)
        return NULL;
    uint8_t *b = malloc(n / 2 + 1);
    if (!b)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return b;
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static int open_all(ekv_device **devs, char **paths, int n, uint32_t flags)
{
    for (int i = 0; i < n; i++) {
        int err = ekv_file_open(&devs[i], paths[i], flags, 0, 0);
        if (err) {
            for (int j = 0; j < i; j++)
                ekv_device_close(devs[j]);
            return fail(paths[i], err);
        }
    }
    return 0;
}

static void close_all(ekv_device **devs, int n)
{
    for (int i = 0; i < n; i++)
        ekv_device_close(devs[i]);
}

static int cmd_format(int argc, char **argv)
{
    if (argc < 3)
        return fail("format: BLOCK_SIZE BLOCK_COUNT IMAGE...", EKV_EINVAL);
    uint32_t bs = (uint32_t)strtoul(argv[0], NULL, 0);
    uint32_t bc = (uint32_t)strtoul(argv[1], NULL, 0);
    int n = argc - 2;
    ekv_device *devs[EKV_MAX_REPLICAS];
    if (n > (int)EKV_MAX_REPLICAS)
        return fail("format", EKV_EINVAL);
    for (int i = 0; i < n; i++) {
        int err = ekv_file_open(&devs[i], argv[2 + i], EKV_FILE_CREATE, bs,
                                bc);
        if (err) {
            close_all(devs, i);
            return fail(argv[2 + i], err);
        }
    }
    ekv_format_options fo = {0};
    fo.erase_data = 1;
    int err = ekv_format(devs, (unsigned)n, &fo);
    close_all(devs, n);
    return err ? fail("format", err) : 0;
}

static int cmd_put(int argc, char **argv)
{
    if (argc < 3)
        return fail("put: KEYHEX VALHEX|@FILE IMAGE...", EKV_EINVAL);
    size_t klen, vlen;
    uint8_t *key = decode_arg(argv[0], &klen);
    uint8_t *val = decode_arg(argv[1], &vlen);
    int n = argc - 2;
    ekv_device *devs[EKV_MAX_REPLICAS];
    ekv_store *s = NULL;
    int rc = 1;
    if (!key || !val || n > (int)EKV_MAX_REPLICAS) {
        fail("put: bad key or value", EKV_EINVAL);
        goto out;
    }
    if (open_all(devs, argv + 2, n, 0))
        goto out;
    int err = ekv_open(&s, devs, (unsigned)n, NULL);
    if (!err)
        err = ekv_put(s, key, klen, val, vlen);
    ekv_close(s);
    close_all(devs, n);
    rc = err ? fail("put", err) : 0;
out:
    free(key);
    free(val);
    return rc;
}

struct dump_ctx {
    ekv_store *s;
    int first;
};

static int dump_key(void *ctx, const ekv_key_info *info)
{
    struct dump_ctx *d = ctx;
    printf("%s\n  \"", d->first ? "" : ",");
    d->first = 0;
    print_hex(info->key, info->key_len);
    printf("\": {\"gen\": %u, \"replicas\": %u, ", info->generation,
           info->replicas);
    /* ekv_get does not change the store: iterating on is safe. */
    uint8_t *buf = malloc(info->value_size ? info->value_size : 1);
    size_t len = 0;
    int err = buf ? ekv_get(d->s, info->key, info->key_len, buf,
                            info->value_size, &len)
                  : EKV_ENOMEM;
    if (err) {
        printf("\"error\": \"%s\"}", ekv_strerror(err));
    } else {
        printf("\"value\": \"");
        print_hex(buf, len);
        printf("\"}");
    }
    free(buf);
    return 0;
}

static int cmd_dump(int argc, char **argv)
{
    uint32_t flags = EKV_FILE_RDONLY;
    if (argc > 0 && !strcmp(argv[0], "--nolock")) {
        flags |= EKV_FILE_NOLOCK;
        argc--;
        argv++;
    }
    int n = argc;
    ekv_device *devs[EKV_MAX_REPLICAS];
    ekv_store *s = NULL;
    if (n < 1 || n > (int)EKV_MAX_REPLICAS)
        return fail("dump: IMAGE...", EKV_EINVAL);
    if (open_all(devs, argv, n, flags))
        return 1;
    ekv_options o = {0};
    o.flags = EKV_OPEN_RDONLY;
    int err = ekv_open(&s, devs, (unsigned)n, &o);
    if (err) {
        close_all(devs, n);
        return fail("open", err);
    }
    ekv_stats st;
    ekv_stats_get(s, &st);
    printf("{\"block_size\": %u, \"block_count\": %u, \"free_blocks\": %u, "
           "\"replicas\": %u, \"active\": %u, \"keys\": {",
           st.block_size, st.block_count, st.free_blocks, st.replicas,
           st.active_replicas);
    struct dump_ctx d = {s, 1};
    ekv_iterate(s, dump_key, &d);
    printf("}}\n");
    ekv_close(s);
    close_all(devs, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "format"))
        return cmd_format(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "put"))
        return cmd_put(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "dump"))
        return cmd_dump(argc - 2, argv + 2);
    fprintf(stderr, "usage: imgcheck format BS BC IMAGE... | put KEYHEX "
                    "VALHEX|@FILE IMAGE... | dump [--nolock] IMAGE...\n");
    return 2;
}
