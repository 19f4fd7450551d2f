/*
 * fuzz_block - raw block decoding: ekv_block_decode() and the header check
 * on any bytes, at any block size the input gives. The decoded kind must
 * follow the format's classification rule from the bytes alone.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    /* Block size from the input, at least the decoder's minimum. */
    uint32_t hi = fz_u8(&f), lo = fz_u8(&f); /* in this order */
    uint32_t bs = 36u + ((hi << 8 | lo) % 1024u);
    uint8_t *blk = malloc(bs);
    FUZZ_CHECK(blk != NULL);
    fz_bytes(&f, blk, bs);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            fuzz_seal_if_typed(blk, bs); /* reach the typed decoders */
        ekv_block_info info;
        FUZZ_CHECK(ekv_block_decode(blk, bs, &info) == 0);
        bool crc = block_crc_ok(blk, bs);
        FUZZ_CHECK(info.crc_ok == (int)crc);
        FUZZ_CHECK(info.type_byte == blk[0]);
        switch (info.kind) {
        case EKV_BLOCK_HEADER:
        case EKV_BLOCK_DESCRIPTOR:
        case EKV_BLOCK_CHUNK:
            FUZZ_CHECK(crc && blk[0] == (uint8_t)info.kind);
            break;
        case EKV_BLOCK_FREE:
            FUZZ_CHECK(blk[0] == 0x00 || blk[0] == 0xff);
            break;
        case EKV_BLOCK_GARBAGE:
            FUZZ_CHECK(blk[0] != 0x00 && blk[0] != 0xff);
            FUZZ_CHECK(!crc || blk[0] < 1 || blk[0] > 3);
            break;
        }
        if (info.kind == EKV_BLOCK_DESCRIPTOR && info.key)
            FUZZ_CHECK(info.key_size <= EKV_MAX_KEY_SIZE(bs));
        if (bs >= EKV_MIN_BLOCK_SIZE && bs <= EKV_MAX_BLOCK_SIZE) {
            /* Whatever block count the header declares. */
            int rc = header_validate(blk, bs, get_le32(blk + HDR_BLOCK_COUNT));
            if (rc == 0)
                FUZZ_CHECK(info.kind == EKV_BLOCK_HEADER &&
                           info.block_size == bs);
        }
    }
    free(blk);
    return 0;
}
