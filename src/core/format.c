/*
 * format.c - the embedkv v1.0 block layout: CRC, storage header, record
 * sizes and the decoder used by inspection tools.
 */
#include "ekv_internal.h"

#ifdef EKV_CRC_EXTERN
/* The platform supplies ekv_crc32() (a hardware CRC unit, a ROM routine):
 * the core has no CRC code or table of its own and computes every block's
 * CRC through it. */
uint32_t block_crc(const uint8_t *buf, uint32_t bs)
{
    static const uint8_t zero[EKV_CRC_SIZE];
    return ekv_crc32(ekv_crc32(0, buf, bs - EKV_CRC_SIZE), zero,
                     EKV_CRC_SIZE);
}
#else /* !EKV_CRC_EXTERN: the core's own CRC */
#ifdef EKV_CRC_SMALL
/* 16-entry table, half a byte per step: 64 bytes of table for small
 * targets, about a quarter of the byte table's speed. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu,
    0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
    0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

static uint32_t crc_update(uint32_t c, const uint8_t *p, size_t len)
{
    while (len--) {
        c ^= *p++;
        c = (c >> 4) ^ crc_nibble[c & 15u];
        c = (c >> 4) ^ crc_nibble[c & 15u];
    }
    return c;
}

/* A block's CRC in one loop, the four CRC bytes taken as zero: a leaf
 * with no stack frame, one frame less on every read's path. */
uint32_t block_crc(const uint8_t *buf, uint32_t bs)
{
    uint32_t c = 0xffffffffu;
    for (uint32_t left = bs; left; left--, buf++) {
        if (left > EKV_CRC_SIZE)
            c ^= *buf;
        c = (c >> 4) ^ crc_nibble[c & 15u];
        c = (c >> 4) ^ crc_nibble[c & 15u];
    }
    return ~c;
}
#else
#include "crc_table.h"

/* Slicing-by-8: eight bytes per step through eight tables. */
static uint32_t crc_update(uint32_t c, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo = c ^ get_le32(p);
        uint32_t hi = get_le32(p + 4);
        c = crc_tables[7][lo & 0xffu] ^ crc_tables[6][(lo >> 8) & 0xffu] ^
            crc_tables[5][(lo >> 16) & 0xffu] ^ crc_tables[4][lo >> 24] ^
            crc_tables[3][hi & 0xffu] ^ crc_tables[2][(hi >> 8) & 0xffu] ^
            crc_tables[1][(hi >> 16) & 0xffu] ^ crc_tables[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_tables[0][(c ^ *p++) & 0xffu];
    return c;
}

/* On x86-64 with a GNU-compatible compiler, long runs are folded 16 bytes
 * a step by carry-less multiplication (PCLMULQDQ) when the CPU has it
 * (checked once, through CPUID), and the last 16 bytes of the fold go
 * through the tables above. EKV_NO_CLMUL keeps the tables alone. */
#if !defined(EKV_NO_CLMUL) && defined(__x86_64__) && \
    (defined(__GNUC__) || defined(__clang__))
#define EKV_CLMUL 1
#include <cpuid.h>
#include <wmmintrin.h>

/* x^(128+32) and x^(128-32) mod the CRC polynomial, bit-reflected and
 * shifted as a reflected 128-bit fold needs them. */
#define FOLD_LO 0x1751997d0ull
#define FOLD_HI 0x0ccaa009eull
/* The same for a fold of 512 bits: x^(512+32) and x^(512-32). */
#define FOLD4_LO 0x154442bd4ull
#define FOLD4_HI 0x1c6e41596ull

/* The 128 bits so far, moved 128 bits on. */
__attribute__((target("pclmul,sse2"))) static inline __m128i
fold0(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                         _mm_clmulepi64_si128(x, k, 0x11));
}

/* One step: the 128 bits so far, moved 128 bits on, plus the next 16
 * bytes. */
__attribute__((target("pclmul,sse2"))) static inline __m128i
fold16(__m128i x, __m128i k, const uint8_t *p)
{
    __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
    __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi),
                         _mm_loadu_si128((const __m128i *)(const void *)p));
}

/* The CRC state after p[0..len) and then, if tail is not NULL, the 16
 * bytes at tail. len: a multiple of 16, at least 16. The register holds
 * the message so far reduced to 128 bits, the CRC state folded into its
 * start; the last 128 bits go through the tables. From 128 bytes on, four
 * registers fold 64 bytes a step (four independent multiplications in
 * flight instead of one chain), then fold into one. */
__attribute__((target("pclmul,sse2"))) static uint32_t
crc_fold(uint32_t c, const uint8_t *p, size_t len, const uint8_t *tail)
{
    const __m128i k = _mm_set_epi64x((long long)FOLD_HI, (long long)FOLD_LO);
    __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)p),
                              _mm_cvtsi32_si128((int)c));
    p += 16;
    len -= 16;
    if (len >= 112) {
        const __m128i k4 =
            _mm_set_epi64x((long long)FOLD4_HI, (long long)FOLD4_LO);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
        for (p += 48, len -= 48; len >= 64; p += 64, len -= 64) {
            x = fold16(x, k4, p);
            x1 = fold16(x1, k4, p + 16);
            x2 = fold16(x2, k4, p + 32);
            x3 = fold16(x3, k4, p + 48);
        }
        /* The four hold consecutive 16-byte lanes: fold each into the
         * next. */
        x = _mm_xor_si128(fold0(x, k), x1);
        x = _mm_xor_si128(fold0(x, k), x2);
        x = _mm_xor_si128(fold0(x, k), x3);
    }
    for (; len >= 16; p += 16, len -= 16)
        x = fold16(x, k, p);
    if (tail)
        x = fold16(x, k, tail);
    uint8_t rest[16];
    _mm_storeu_si128((__m128i *)(void *)rest, x);
    return crc_update(0, rest, sizeof(rest));
}

static bool have_clmul(void)
{
    /* 0: not asked yet, 1: no, 2: yes. Racing first callers store the
     * same answer. */
    static int known;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (!k) {
        unsigned a, b, c, d;
        k = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_PCLMUL) &&
                    (d & bit_SSE2)
                ? 2
                : 1;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k == 2;
}

/* crc_update, folding what is worth folding. */
static uint32_t crc_long(uint32_t c, const uint8_t *p, size_t len)
{
    if (len >= 64 && have_clmul()) {
        size_t n = len & ~(size_t)15;
        c = crc_fold(c, p, n, NULL);
        p += n;
        len -= n;
    }
    return crc_update(c, p, len);
}
#endif
#endif

#ifndef EKV_CLMUL
#define crc_long crc_update
#endif

uint32_t ekv_crc32(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_long(~crc, (const uint8_t *)buf, len);
}

#ifndef EKV_CRC_SMALL
uint32_t block_crc(const uint8_t *buf, uint32_t bs)
{
    static const uint8_t zero[EKV_CRC_SIZE];
#ifdef EKV_CLMUL
    /* A block of whole 16-byte steps folds to its end, the CRC field
     * taken as zero in a copy of the last step. */
    if (bs % 16 == 0 && have_clmul()) {
        uint8_t last[16];
        memcpy(last, buf + bs - 16, 16 - EKV_CRC_SIZE);
        memset(last + 16 - EKV_CRC_SIZE, 0, EKV_CRC_SIZE);
        return ~crc_fold(0xffffffffu, buf, bs - 16, last);
    }
#endif
    uint32_t c = crc_long(0xffffffffu, buf, bs - EKV_CRC_SIZE);
    return ~crc_update(c, zero, EKV_CRC_SIZE);
}
#endif
#endif /* EKV_CRC_EXTERN */

void block_seal(uint8_t *buf, uint32_t bs)
{
    put_le32(buf + bs - EKV_CRC_SIZE, block_crc(buf, bs));
}

bool block_crc_ok(const uint8_t *buf, uint32_t bs)
{
    return get_le32(buf + bs - EKV_CRC_SIZE) == block_crc(buf, bs);
}

bool geometry_supported(uint32_t bs, uint32_t bc)
{
    return bs >= EKV_MIN_BLOCK_SIZE && bs <= EKV_MAX_BLOCK_SIZE && bc >= 1;
}

int header_validate(const uint8_t *buf, uint32_t bs, uint32_t bc)
{
    /* Type byte and "EKV" magic, the first four bytes, in one compare. */
    if (get_le32(buf) != (EKV_TYPE_HEADER | (uint32_t)'E' << 8 |
                          (uint32_t)'K' << 16 | (uint32_t)'V' << 24))
        return EKV_EBADHDR;
    uint32_t hbs = get_le32(buf + HDR_BLOCK_SIZE);
    uint32_t hbc = get_le32(buf + HDR_BLOCK_COUNT);
    /* The CRC sits at the end of the block the header describes: a device
     * read with another block size cannot even check it. */
    if (hbs != bs)
        return EKV_EDOM;
    if (!block_crc_ok(buf, bs))
        return EKV_EBADHDR;
    if (get_le16(buf + HDR_VMAJOR) != EKV_FORMAT_VERSION_MAJOR)
        return EKV_EVERSION;
    if (!geometry_supported(hbs, hbc) || hbc != bc)
        return EKV_EDOM;
    return 0;
}

#ifndef EKV_READONLY
void header_encode(uint8_t *buf, uint32_t bs, uint32_t bc,
                   uint32_t replica_id, uint32_t format_seq, uint32_t flags)
{
    memset(buf, 0, bs);
    buf[0] = EKV_TYPE_HEADER;
    memcpy(buf + HDR_MAGIC, "EKV", 3);
    put_le16(buf + HDR_VMAJOR, EKV_FORMAT_VERSION_MAJOR);
    put_le16(buf + HDR_VMINOR, EKV_FORMAT_VERSION_MINOR);
    put_le32(buf + HDR_BLOCK_SIZE, bs);
    put_le32(buf + HDR_BLOCK_COUNT, bc);
    put_le32(buf + HDR_REPLICA_ID, replica_id);
    put_le32(buf + HDR_FORMAT_SEQ, format_seq);
    put_le32(buf + HDR_FLAGS, flags);
    block_seal(buf, bs);
}
#endif

uint64_t record_blocks(uint32_t bs, size_t key_len, size_t val_len)
{
    /* Division in size_t, the machine's own width: a 32-bit target then
     * needs no 64-bit division helper from libgcc. */
    size_t first = first_capacity(bs, (uint32_t)key_len);
    size_t per = chunk_capacity(bs);
    if (val_len <= first)
        return 1;
    /* 1 + ceil(rest / per) for rest >= 1, with no overflow. */
    return 2 + (uint64_t)((val_len - first - 1) / per);
}

int ekv_block_decode(const void *buf_, uint32_t bs, ekv_block_info *info)
{
    const uint8_t *buf = (const uint8_t *)buf_;
    if (!buf || !info || bs < EKV_DESCRIPTOR_HEADER_SIZE + EKV_CRC_SIZE)
        return EKV_EINVAL;
    memset(info, 0, sizeof(*info));
    info->type_byte = buf[0];
    info->crc_stored = get_le32(buf + bs - EKV_CRC_SIZE);
    info->crc_computed = block_crc(buf, bs);
    info->crc_ok = info->crc_stored == info->crc_computed;
    info->next_chunk = EKV_BLOCK_NONE;

    if (info->crc_ok && buf[0] == EKV_TYPE_HEADER) {
        info->kind = EKV_BLOCK_HEADER;
        info->version_major = get_le16(buf + HDR_VMAJOR);
        info->version_minor = get_le16(buf + HDR_VMINOR);
        info->block_size = get_le32(buf + HDR_BLOCK_SIZE);
        info->block_count = get_le32(buf + HDR_BLOCK_COUNT);
        info->replica_id = get_le32(buf + HDR_REPLICA_ID);
        info->format_seq = get_le32(buf + HDR_FORMAT_SEQ);
        info->flags = get_le32(buf + HDR_FLAGS);
    } else if (info->crc_ok && buf[0] == EKV_TYPE_DESCRIPTOR) {
        info->kind = EKV_BLOCK_DESCRIPTOR;
        info->header_size = buf[DESC_HEADER_SIZE];
        info->key_size = get_le16(buf + DESC_KEY_SIZE);
        info->generation = get_le32(buf + DESC_GENERATION);
        info->total_size = get_le32(buf + DESC_TOTAL_SIZE);
        info->payload_size = get_le32(buf + DESC_FIRST_SIZE);
        info->chunk_count = get_le32(buf + DESC_CHUNK_COUNT);
        info->next_chunk = get_le32(buf + DESC_NEXT);
        info->flags = get_le32(buf + DESC_FLAGS);
        info->user_flags = get_le32(buf + DESC_USER_FLAGS);
        if ((uint32_t)info->key_size <= EKV_MAX_KEY_SIZE(bs))
            info->key = buf + EKV_DESCRIPTOR_HEADER_SIZE;
    } else if (info->crc_ok && buf[0] == EKV_TYPE_CHUNK) {
        info->kind = EKV_BLOCK_CHUNK;
        info->header_size = buf[CHUNK_HEADER_SIZE];
        info->flags = get_le16(buf + CHUNK_FLAGS);
        info->owner = get_le32(buf + CHUNK_OWNER);
        info->chunk_index = get_le32(buf + CHUNK_INDEX);
        info->payload_size = get_le32(buf + CHUNK_PAYLOAD_SIZE);
        info->next_chunk = get_le32(buf + CHUNK_NEXT);
    } else if (buf[0] == 0x00 || buf[0] == 0xff) {
        info->kind = EKV_BLOCK_FREE;
    } else {
        info->kind = EKV_BLOCK_GARBAGE;
    }
    return 0;
}
