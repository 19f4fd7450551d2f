/*
 * fuzz_descriptor - record logic behind a valid descriptor CRC. The input
 * is a descriptor (type byte forced, CRC fixed up) placed among blocks
 * that are themselves sealed when typed, so chains, owners, sizes and
 * keys are all the fuzzer's. Recovery (read-only and writable) and get
 * must hold together: both see the same keys and values, get returns what
 * stat says, and a second recovery writes nothing.
 */
#include "fuzz_common.h"

static void check_image(fuzz_image *im)
{
    ekv_store *s = NULL;
    snapshot ro, rw, again;
    if (fuzz_open(im, &s, EKV_OPEN_RDONLY) != 0)
        return;
    snapshot_take(&ro, s);
    ekv_close(s);
    FUZZ_CHECK(fuzz_image_writes(im) == 0);
    FUZZ_CHECK(fuzz_open(im, &s, 0) == 0);
    snapshot_take(&rw, s);
    ekv_close(s);
    FUZZ_CHECK(snapshot_equal(&ro, &rw));
    uint64_t before = fuzz_image_writes(im);
    FUZZ_CHECK(fuzz_open(im, &s, 0) == 0);
    FUZZ_CHECK(fuzz_image_writes(im) == before);
    snapshot_take(&again, s);
    ekv_close(s);
    FUZZ_CHECK(snapshot_equal(&rw, &again));
    for (size_t i = 0; i < rw.n; i++)
        FUZZ_CHECK(rw.items[i].err == 0);
    snapshot_free(&ro);
    snapshot_free(&rw);
    snapshot_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    uint8_t sel = fz_u8(&f);
    fuzz_image im = {0};
    im.n = 1;
    im.bs = (sel & 1) ? 128 : 64;
    im.bc = 8 + (sel >> 1) % 9;
    im.erase = (sel & 0x80) ? 0xff : 0x00;
    uint8_t *blk = malloc(im.bs);
    FUZZ_CHECK(blk != NULL);
    im.sim[0] = sim_new(im.bs, im.bc, im.erase);
    im.devs[0] = &im.sim[0]->dev;
    header_encode(blk, im.bs, im.bc, 0, 0, 0);
    sim_poke(im.sim[0], 0, blk);
    for (uint32_t b = 1; b < im.bc; b++) {
        fz_bytes(&f, blk, im.bs);
        if (b == 1) {
            blk[0] = EKV_TYPE_DESCRIPTOR;
            /* Mostly a well-formed header size, so the rest is reached. */
            if (!(blk[1] & 0x80))
                blk[1] = EKV_DESCRIPTOR_HEADER_SIZE;
        }
        fuzz_seal_if_typed(blk, im.bs);
        sim_poke(im.sim[0], b, blk);
    }
    free(blk);
    check_image(&im);
    fuzz_image_free(&im);
    return 0;
}
