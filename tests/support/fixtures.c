/*
 * fixtures.c - the five reference images, produced by libembedkv.
 *
 * The plain ones are a format and puts. The two recovery images show a
 * crash: partial_write is a second put of "power" whose chunk write was
 * torn after 4 bytes (the simulated device's prefix tear);
 * partial_erase is a chunk left behind by a record (owner block 99) that no
 * longer exists, written raw next to a clean update.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekv_internal.h"
#include "fixtures.h"
#include "simdev.h"

#define BS 256u

const fixture fixtures[] = {
    {"small_value.bin", 8},
    {"large_value.bin", 16},
    {"multi_key.bin", 16},
    {"recovery/partial_write.bin", 16},
    {"recovery/partial_erase.bin", 16},
};
const size_t fixture_count = sizeof(fixtures) / sizeof(fixtures[0]);

static int put_str(ekv_store *s, const char *k, const char *v)
{
    return ekv_put(s, k, strlen(k), v, strlen(v));
}

uint8_t *fixture_build(size_t i)
{
    simdev *sd = sim_new(BS, fixtures[i].block_count, 0);
    ekv_device *dev = &sd->dev;
    ekv_store *s = NULL;
    uint8_t *out = NULL;
    int err = ekv_format(&dev, 1, NULL);
    if (!err)
        err = ekv_open(&s, &dev, 1, NULL);
    if (err)
        goto done;
    switch (i) {
    case 0:
        err = put_str(s, "hello", "world");
        break;
    case 1: {
        uint8_t v[500];
        for (int j = 0; j < 500; j++)
            v[j] = (uint8_t)(j % 256);
        err = ekv_put(s, "bigkey", 6, v, sizeof(v));
        break;
    }
    case 2:
        err = put_str(s, "alpha", "value-alpha");
        if (!err)
            err = put_str(s, "beta", "value-beta");
        if (!err)
            err = put_str(s, "gamma", "value-gamma");
        break;
    case 3: {
        uint8_t zeros[225] = {0};
        err = put_str(s, "power", "gen1-data");
        if (err)
            break;
        /* The put writes descriptor (write 1) then the chunk (write 2). */
        sim_reset_faults(sd);
        sd->cut_at = 2;
        sd->tear = SIM_TEAR_PREFIX;
        sd->tear_bytes = 4;
        if (ekv_put(s, "power", 5, zeros, sizeof(zeros)) != EKV_EIO)
            err = EKV_EINVAL;
        sim_powercycle(sd);
        break;
    }
    case 4: {
        err = put_str(s, "power", "gen1-data");
        if (!err)
            err = put_str(s, "power", "gen2-data");
        if (err)
            break;
        uint8_t blk[BS] = {0};
        blk[0] = EKV_TYPE_CHUNK;
        blk[CHUNK_HEADER_SIZE] = EKV_CHUNK_HEADER_SIZE;
        put_le32(blk + CHUNK_OWNER, 99);
        put_le32(blk + CHUNK_INDEX, 1);
        put_le32(blk + CHUNK_PAYLOAD_SIZE, 4);
        put_le32(blk + CHUNK_NEXT, EKV_BLOCK_NONE);
        memcpy(blk + EKV_CHUNK_HEADER_SIZE, "orph", 4);
        block_seal(blk, BS);
        err = dev->write(dev, 1, blk);
        break;
    }
    }
done:
    ekv_close(s);
    if (!err) {
        out = malloc((size_t)BS * fixtures[i].block_count);
        if (out)
            memcpy(out, sim_image(sd), (size_t)BS * fixtures[i].block_count);
    }
    sim_free(sd);
    return out;
}

uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (len)
        *len = n;
    return buf;
}
