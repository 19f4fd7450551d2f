/*
 * freemap.c - which blocks of a replica are free. Bit i of `bits` is set
 * when block i is free; bit w of `summary` is set when word w of `bits` is
 * non-zero. Taking the lowest free block reads the summary from a hint
 * below which it is known to be zero, then one word of `bits`.
 */
#include "ekv_internal.h"

#ifndef EKV_NO_INDEX

static uint32_t lowest_bit(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_ctzll(v);
#else
    uint32_t n = 0;
    while (!(v & 1u)) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

static uint32_t words_for(uint32_t nbits)
{
    return (uint32_t)(((uint64_t)nbits + 63) / 64);
}

size_t freemap_bytes(uint32_t nblocks)
{
    uint32_t nw = words_for(nblocks);
    return ((size_t)nw + words_for(nw)) * sizeof(uint64_t);
}

int freemap_init(ekv_freemap *fm, uint32_t nblocks, const ekv_allocator *a)
{
    memset(fm, 0, sizeof(*fm));
    fm->nblocks = nblocks;
    fm->nwords = words_for(nblocks);
    fm->nsummary = words_for(fm->nwords);
    uint64_t *mem = mem_alloc(a, freemap_bytes(nblocks));
    if (!mem)
        return EKV_ENOMEM;
    memset(mem, 0, freemap_bytes(nblocks));
    fm->bits = mem;
    fm->summary = mem + fm->nwords;
    fm->hint = fm->nsummary;
    return 0;
}

void freemap_free(ekv_freemap *fm, const ekv_allocator *a)
{
    if (fm->bits)
        mem_free(a, fm->bits, freemap_bytes(fm->nblocks));
    memset(fm, 0, sizeof(*fm));
}

bool freemap_is_free(const ekv_freemap *fm, uint32_t b)
{
    return (fm->bits[b / 64] >> (b % 64)) & 1u;
}

void freemap_set_free(ekv_freemap *fm, uint32_t b)
{
    if (freemap_is_free(fm, b))
        return;
    uint32_t w = b / 64;
    fm->bits[w] |= (uint64_t)1 << (b % 64);
    fm->summary[w / 64] |= (uint64_t)1 << (w % 64);
    if (w / 64 < fm->hint)
        fm->hint = w / 64;
    fm->free_count++;
}

/* Bits set in v. Plain arithmetic: a compiler builtin may call a runtime
 * helper that a freestanding firmware link does not have. */
static uint32_t popcount64(uint64_t v)
{
    v -= (v >> 1) & 0x5555555555555555ull;
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((v * 0x0101010101010101ull) >> 56);
}

void freemap_set_free_range(ekv_freemap *fm, uint32_t b, uint32_t n)
{
    /* A word at a time: a sparse image's hole of millions of free blocks
     * costs a few thousand word writes. */
    while (n) {
        uint32_t w = b / 64, off = b % 64;
        uint32_t take = 64 - off < n ? 64 - off : n;
        uint64_t mask = take == 64 ? ~(uint64_t)0
                                   : (((uint64_t)1 << take) - 1) << off;
        fm->free_count += popcount64(mask & ~fm->bits[w]);
        fm->bits[w] |= mask;
        fm->summary[w / 64] |= (uint64_t)1 << (w % 64);
        if (w / 64 < fm->hint)
            fm->hint = w / 64;
        b += take;
        n -= take;
    }
}

void freemap_set_used(ekv_freemap *fm, uint32_t b)
{
    if (!freemap_is_free(fm, b))
        return;
    uint32_t w = b / 64;
    fm->bits[w] &= ~((uint64_t)1 << (b % 64));
    if (!fm->bits[w])
        fm->summary[w / 64] &= ~((uint64_t)1 << (w % 64));
    fm->free_count--;
}

uint32_t freemap_take_lowest(ekv_freemap *fm)
{
    while (fm->hint < fm->nsummary && !fm->summary[fm->hint])
        fm->hint++;
    if (fm->hint >= fm->nsummary)
        return EKV_BLOCK_NONE;
    uint32_t w = fm->hint * 64 + lowest_bit(fm->summary[fm->hint]);
    uint32_t b = w * 64 + lowest_bit(fm->bits[w]);
    freemap_set_used(fm, b);
    return b;
}

#endif /* !EKV_NO_INDEX */
