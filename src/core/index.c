/*
 * index.c - the in-memory key index: key -> per-replica newest complete
 * record. Never stored; recovery rebuilds it from a scan.
 *
 * Memory per key: one entry of 8 + 12 * replicas + key_len bytes, plus one
 * table slot (an 8-byte pointer and a 1-byte tag) at a load factor between
 * 0.4 and 0.8 (11.25 to 22.5 bytes).
 */
#include "ekv_internal.h"

#ifndef EKV_NO_INDEX

#define MIN_CAP 16u

/* Eight key bytes as one little-endian word, at any alignment. */
static inline uint64_t load64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

uint32_t key_hash(const void *key, size_t len)
{
    /* Eight bytes a step through a multiply and a shift, the last 1 to 7
     * bytes as one more (overlapping) word, the length in the seed; then
     * a final mix so that both the low bits (the home slot) and the top
     * byte (the tag) depend on every key byte. A 12-byte key costs two
     * steps instead of FNV's twelve dependent multiplies. The index is
     * never stored: the function may change freely. */
    const uint8_t *p = (const uint8_t *)key;
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = (uint64_t)len * k ^ 0xbf58476d1ce4e5b9ull;
    for (; len >= 8; p += 8, len -= 8) {
        h = (h ^ load64(p)) * k;
        h ^= h >> 29;
    }
    if (len) {
        uint64_t w;
        if (len >= 4)
            w = (uint64_t)get_le32(p) | (uint64_t)get_le32(p + len - 4) << 32;
        else
            w = (uint64_t)p[0] | (uint64_t)p[len / 2] << 8 |
                (uint64_t)p[len - 1] << 16;
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    return (uint32_t)h;
}

void index_init(ekv_index *ix, unsigned nrep, const ekv_allocator *alloc)
{
    memset(ix, 0, sizeof(*ix));
    ix->nrep = nrep;
    ix->alloc = alloc;
}

static size_t entry_size(const ekv_index *ix, size_t key_len)
{
    return sizeof(ekv_entry) + ix->nrep * sizeof(ekv_slot) + key_len;
}

/* Slots and their tags, in one allocation. */
static size_t table_bytes(uint32_t cap)
{
    return (size_t)cap * (sizeof(ekv_entry *) + 1);
}

/* Never 0: a zero tag marks an empty slot. */
static uint8_t tag_of(uint32_t hash)
{
    uint8_t t = (uint8_t)(hash >> 24);
    return t ? t : 1;
}

bool index_adopt_arena(ekv_index *ix, uint8_t *buf, size_t used,
                       size_t size)
{
    if (ix->arena || ix->count)
        return false;
    ix->arena = buf;
    ix->arena_size = size;
    ix->arena_used = used;
    ix->arena_live = 0;
    ix->bytes += size;
    return true;
}

static void free_entry(ekv_index *ix, ekv_entry *e)
{
    if (!e->in_arena) {
        ix->bytes -= entry_size(ix, e->key_len);
        mem_free(ix->alloc, e, entry_size(ix, e->key_len));
    } else if (--ix->arena_live == 0) {
        ix->bytes -= ix->arena_size;
        mem_free(ix->alloc, ix->arena, ix->arena_size);
        ix->arena = NULL;
        ix->arena_size = ix->arena_used = 0;
    }
}

void index_free(ekv_index *ix)
{
    for (uint32_t i = 0; i < ix->cap; i++)
        if (ix->slots[i] && !ix->slots[i]->in_arena)
            mem_free(ix->alloc, ix->slots[i],
                     entry_size(ix, ix->slots[i]->key_len));
    if (ix->arena)
        mem_free(ix->alloc, ix->arena, ix->arena_size);
    if (ix->slots)
        mem_free(ix->alloc, ix->slots, table_bytes(ix->cap));
    index_init(ix, ix->nrep, ix->alloc);
}

static bool entry_is(const ekv_index *ix, ekv_entry *e, const void *key,
                     size_t len, uint32_t hash)
{
    /* An empty key may come as NULL: memcmp must not see it. */
    return e->hash == hash && e->key_len == len &&
           (len == 0 || memcmp(entry_key(e, ix->nrep), key, len) == 0);
}

ekv_entry *index_find(const ekv_index *ix, const void *key, size_t len,
                      uint32_t hash)
{
    if (!ix->cap)
        return NULL;
    const uint8_t tag = tag_of(hash);
    uint32_t mask = ix->cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        uint8_t t = ix->tags[i];
        if (!t)
            return NULL;
        if (t == tag && entry_is(ix, ix->slots[i], key, len, hash))
            return ix->slots[i];
    }
}

static int index_resize(ekv_index *ix, uint32_t ncap)
{
    if (ncap <= ix->cap || table_bytes(ncap) / ncap != sizeof(ekv_entry *) + 1)
        return EKV_ENOMEM;
    ekv_entry **ns = mem_alloc(ix->alloc, table_bytes(ncap));
    if (!ns)
        return EKV_ENOMEM;
    memset(ns, 0, table_bytes(ncap));
    uint8_t *nt = (uint8_t *)(ns + ncap);
    for (uint32_t i = 0; i < ix->cap; i++) {
        ekv_entry *e = ix->slots[i];
        if (!e)
            continue;
        uint32_t j = e->hash & (ncap - 1);
        while (nt[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = e;
        nt[j] = ix->tags[i];
    }
    if (ix->slots)
        mem_free(ix->alloc, ix->slots, table_bytes(ix->cap));
    ix->bytes += table_bytes(ncap) - table_bytes(ix->cap);
    ix->slots = ns;
    ix->tags = nt;
    ix->cap = ncap;
    return 0;
}

static int index_grow(ekv_index *ix)
{
    uint32_t ncap = ix->cap ? ix->cap * 2 : MIN_CAP;
    if (ncap < ix->cap)
        return EKV_ENOMEM;
    return index_resize(ix, ncap);
}

int index_reserve(ekv_index *ix, uint32_t n)
{
    uint64_t cap = ix->cap ? ix->cap : MIN_CAP;
    while ((uint64_t)n * 5 > cap * 4)
        cap *= 2;
    if (cap > 0x80000000u)
        return EKV_ENOMEM;
    return cap > ix->cap ? index_resize(ix, (uint32_t)cap) : 0;
}

/* Put e into a slot of the table (its key is not there; the table has room). */
static void place(ekv_index *ix, ekv_entry *e)
{
    uint32_t mask = ix->cap - 1;
    uint32_t i = e->hash & mask;
    while (ix->tags[i])
        i = (i + 1) & mask;
    ix->slots[i] = e;
    ix->tags[i] = tag_of(e->hash);
    ix->count++;
}

ekv_entry *index_get_or_add(ekv_index *ix, const void *key, size_t len,
                            uint32_t hash)
{
    ekv_entry *e = index_find(ix, key, len, hash);
    if (e)
        return e;
    if ((uint64_t)(ix->count + 1) * 5 > (uint64_t)ix->cap * 4 &&
        index_grow(ix) != 0)
        return NULL;
    size_t in_arena = index_entry_bytes(ix, len);
    if (ix->arena && ix->arena_size - ix->arena_used >= in_arena) {
        e = (ekv_entry *)(void *)(ix->arena + ix->arena_used);
        ix->arena_used += in_arena;
        ix->arena_live++;
        e->in_arena = 1;
    } else {
        e = mem_alloc(ix->alloc, entry_size(ix, len));
        if (!e)
            return NULL;
        ix->bytes += entry_size(ix, len);
        e->in_arena = 0;
    }
    e->hash = hash;
    e->key_len = (uint16_t)len;
    for (unsigned r = 0; r < ix->nrep; r++) {
        e->rep[r].desc = EKV_BLOCK_NONE;
        e->rep[r].gen = 0;
        e->rep[r].size = 0;
    }
    if (len)
        memcpy(entry_key(e, ix->nrep), key, len);
    place(ix, e);
    return e;
}

ekv_entry *index_find_or_link(ekv_index *ix, ekv_entry *e)
{
    const uint32_t len = e->key_len, hash = e->hash;
    const uint8_t *key = entry_key(e, ix->nrep);
    if ((uint64_t)(ix->count + 1) * 5 > (uint64_t)ix->cap * 4) {
        ekv_entry *had = index_find(ix, key, len, hash);
        if (had)
            return had;
        if (index_grow(ix) != 0)
            return NULL;
    }
    /* One probe finds the key or the empty slot it would take. */
    const uint8_t tag = tag_of(hash);
    uint32_t mask = ix->cap - 1;
    uint32_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
        uint8_t t = ix->tags[i];
        if (!t)
            break;
        if (t == tag && entry_is(ix, ix->slots[i], key, len, hash))
            return ix->slots[i];
    }
    e->in_arena = 1;
    ix->arena_live++;
    ix->slots[i] = e;
    ix->tags[i] = tag;
    ix->count++;
    return e;
}

void index_remove(ekv_index *ix, ekv_entry *e)
{
    uint32_t mask = ix->cap - 1;
    uint32_t i = e->hash & mask;
    while (ix->slots[i] != e)
        i = (i + 1) & mask;
    /* Backward-shift deletion keeps every probe chain unbroken without
     * tombstones. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; ix->tags[j]; j = (j + 1) & mask) {
        uint32_t home = ix->slots[j]->hash & mask;
        /* Move j into the hole unless its home lies cyclically in
         * (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j)
                               : (home > hole || home <= j);
        if (!stays) {
            ix->slots[hole] = ix->slots[j];
            ix->tags[hole] = ix->tags[j];
            hole = j;
        }
    }
    ix->slots[hole] = NULL;
    ix->tags[hole] = 0;
    ix->count--;
    free_entry(ix, e);
}

#endif /* !EKV_NO_INDEX */
