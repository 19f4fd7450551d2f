/*
 * workload - a seeded random sequence of puts, deletes and reopen-with-
 * recovery over 1..3 replicas on memory devices, printing every result and
 * a CRC of every image after every step. Built twice, against the indexed
 * and the EKV_NO_INDEX core: the two outputs must be identical, which
 * proves the scanning mode finds the same records, allocates the same
 * blocks and leaves byte-identical images.
 *   workload SEED [OPS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkv.h"

#ifndef WORKLOAD_MAX_REPLICAS
#define WORKLOAD_MAX_REPLICAS 3u
#endif

static uint64_t state;
static uint32_t rnd(uint32_t n)
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(state >> 33) % n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: workload SEED [OPS]\n");
        return 2;
    }
    state = strtoull(argv[1], NULL, 10) + 1;
    int ops = argc > 2 ? atoi(argv[2]) : 300;
    const uint32_t bs = 64 + 32 * rnd(4), bc = 24 + rnd(40);
    /* WORKLOAD_MAX_REPLICAS (default 3) caps the replicas for a core
     * built with fewer; the random sequence stays the same. */
    const unsigned n = 1 + rnd(3) % WORKLOAD_MAX_REPLICAS;
    uint8_t erase = rnd(2) ? 0xff : 0x00;
    static uint8_t mem[3][160 * 64];
    ekv_device devs[3];
    ekv_device *dp[3];
    for (unsigned i = 0; i < n; i++) {
        memset(mem[i], erase, sizeof(mem[i]));
        ekv_mem_device_init(&devs[i], mem[i], bs, bc);
        dp[i] = &devs[i];
    }
    ekv_format_options fo = {0};
    ekv_options o = {0};
    o.erase_byte = erase;
    ekv_store *s = NULL;
    if (ekv_format(dp, n, &fo) || ekv_open(&s, dp, n, &o)) {
        fprintf(stderr, "workload: setup failed\n");
        return 1;
    }
    printf("geometry %u x %u, %u replicas, erase %02x\n", bs, bc, n, erase);
    static uint8_t val[8192], got[8192];
    for (int i = 0; i < ops; i++) {
        char key[8];
        int klen = snprintf(key, sizeof(key), "k%u", rnd(12));
        uint32_t what = rnd(10);
        int rc;
        if (what < 6) {
            size_t len = rnd(4) ? rnd(bs) : rnd(4 * bs);
            for (size_t j = 0; j < len; j++)
                val[j] = (uint8_t)rnd(256);
            rc = ekv_put(s, key, (size_t)klen, val, len);
            printf("put %s %zu -> %d\n", key, len, rc);
        } else if (what < 8) {
            rc = ekv_delete(s, key, (size_t)klen);
            printf("del %s -> %d\n", key, rc);
        } else if (what < 9) {
            ekv_close(s);
            s = NULL;
            rc = ekv_open(&s, dp, n, &o);
            printf("reopen -> %d\n", rc);
            if (rc)
                return 1;
        } else {
            size_t len = 0;
            rc = ekv_get(s, key, (size_t)klen, got, sizeof(got), &len);
            printf("get %s -> %d len %zu crc %08x\n", key, rc, rc ? 0 : len,
                   rc ? 0 : ekv_crc32(0, got, len));
        }
        for (unsigned r = 0; r < n; r++)
            printf(" image%u %08x", r, ekv_crc32(0, mem[r], (size_t)bs * bc));
        ekv_stats st1;
        ekv_stats_get(s, &st1);
        printf(" free %u", st1.free_blocks);
        for (unsigned r = 0; r < n; r++) {
            unsigned f = 0;
            for (uint32_t b = 1; b < bc; b++)
                f += mem[r][(size_t)b * bs] == 0x00 || mem[r][(size_t)b * bs] == 0xff;
            printf(" disk%u %u", r, f);
        }
        printf("\n");
    }
    ekv_stats st;
    ekv_stats_get(s, &st);
    printf("final records %u free %u\n", st.records, st.free_blocks);
    ekv_close(s);
    return 0;
}
