/*
 * fuzz_chunk - chunk logic behind valid CRCs. A well-formed descriptor of
 * key "k" (its counts, sizes and next pointer from the input) heads a
 * chain of fuzzed chunks whose type byte is forced and CRC fixed up. The
 * record is either complete, and then get returns exactly the payloads in
 * chain order, or it is skipped and erased; nothing else.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    const uint32_t bs = 64, bc = 12;
    uint8_t blk[64];
    simdev *sd = sim_new(bs, bc, 0);
    ekv_device *dev = &sd->dev;
    header_encode(blk, bs, bc, 0, 0, 0);
    sim_poke(sd, 0, blk);

    /* The descriptor at block 1. */
    uint8_t sel = fz_u8(&f);
    uint32_t count = 1 + (sel & 7u);
    uint32_t first = fz_u8(&f) % (first_capacity(bs, 1) + 1);
    uint32_t total = first + fz_u8(&f) % 300u;
    uint32_t next = (sel & 0x80) ? fz_u32(&f) : 2 + (fz_u8(&f) % (bc - 2));
    if (count == 1 && !(sel & 0x40)) {
        total = first;
        next = EKV_BLOCK_NONE;
    }
    memset(blk, 0, bs);
    blk[0] = EKV_TYPE_DESCRIPTOR;
    blk[DESC_HEADER_SIZE] = EKV_DESCRIPTOR_HEADER_SIZE;
    put_le16(blk + DESC_KEY_SIZE, 1);
    put_le32(blk + DESC_GENERATION, 1);
    put_le32(blk + DESC_TOTAL_SIZE, total);
    put_le32(blk + DESC_FIRST_SIZE, first);
    put_le32(blk + DESC_CHUNK_COUNT, count);
    put_le32(blk + DESC_NEXT, next);
    blk[EKV_DESCRIPTOR_HEADER_SIZE] = 'k';
    for (uint32_t i = 0; i < first; i++)
        blk[EKV_DESCRIPTOR_HEADER_SIZE + 1 + i] = (uint8_t)i;
    block_seal(blk, bs);
    sim_poke(sd, 1, blk);

    /* Chunks: fuzzed bytes, type forced, mostly owned by block 1. */
    for (uint32_t b = 2; b < bc; b++) {
        fz_bytes(&f, blk, bs);
        blk[0] = EKV_TYPE_CHUNK;
        if (!(blk[1] & 0x80)) {
            blk[CHUNK_HEADER_SIZE] = EKV_CHUNK_HEADER_SIZE;
            put_le32(blk + CHUNK_OWNER, 1);
            put_le32(blk + CHUNK_PAYLOAD_SIZE,
                     get_le32(blk + CHUNK_PAYLOAD_SIZE) %
                         (chunk_capacity(bs) + 1));
        }
        block_seal(blk, bs);
        sim_poke(sd, b, blk);
    }

    /* What a correct reader must return: walk the chain by the rules. */
    uint8_t want[512];
    size_t want_len = 0;
    bool complete = true;
    {
        const uint8_t *img = sim_image(sd);
        memcpy(want, img + bs + EKV_DESCRIPTOR_HEADER_SIZE + 1, first);
        want_len = first;
        uint32_t at = next;
        for (uint32_t idx = 1; idx < count && complete; idx++) {
            const uint8_t *c = img + (size_t)(at < bc ? at : 0) * bs;
            uint32_t psz = get_le32(c + CHUNK_PAYLOAD_SIZE);
            if (at >= bc || at < 2 || c[CHUNK_HEADER_SIZE] != 20 ||
                get_le32(c + CHUNK_OWNER) != 1 ||
                get_le32(c + CHUNK_INDEX) != idx ||
                psz > chunk_capacity(bs) || want_len + psz > total) {
                complete = false;
                break;
            }
            memcpy(want + want_len, c + EKV_CHUNK_HEADER_SIZE, psz);
            want_len += psz;
            at = get_le32(c + CHUNK_NEXT);
        }
        if (at != EKV_BLOCK_NONE || want_len != total)
            complete = false;
    }

    for (int pass = 0; pass < 2; pass++) {
        ekv_store *s = NULL;
        ekv_options o = {.flags = pass ? 0 : EKV_OPEN_RDONLY};
        FUZZ_CHECK(ekv_open(&s, &dev, 1, &o) == 0);
        uint8_t got[512];
        size_t len = 0;
        int rc = ekv_get(s, "k", 1, got, sizeof(got), &len);
        if (complete) {
            FUZZ_CHECK(rc == 0 && len == want_len);
            FUZZ_CHECK(len == 0 || memcmp(got, want, len) == 0);
        } else {
            FUZZ_CHECK(rc == EKV_ENOENT);
        }
        ekv_close(s);
    }
    /* The writable open erased an incomplete record entirely. */
    if (!complete)
        for (uint32_t b = 1; b < bc; b++)
            FUZZ_CHECK(sim_image(sd)[(size_t)b * bs] == 0);
    sim_free(sd);
    return 0;
}
