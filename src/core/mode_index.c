/*
 * mode_index.c - the indexed mode (the default): a key index and a free
 * block map per replica, both rebuilt by recovery, so put, get and delete
 * touch only the record's blocks.
 *
 * Recovery reads every block of a replica once. Chunk headers are kept in
 * a temporary per-block table and descriptors in a compact list (a record
 * of several blocks keeps its chain's start in the table slot of its
 * descriptor block), so verifying a record's chain afterwards needs no
 * second read. The newest complete record of each key goes into the index;
 * every other non-free block is erased (or, read-only, just left out of
 * use).
 */
#include "ekv_internal.h"

#ifndef EKV_NO_INDEX

enum scan_kind {
    K_FREE,
    K_DESC,
    K_CHUNK,
    K_OTHER,      /* garbage, stray header, malformed chunk */
    K_UNREADABLE,
    K_KEPT        /* part of a record the index keeps */
};

typedef struct chunk_meta {
    uint32_t owner, index, next, size;
} chunk_meta;

/* A descriptor of the scan: 24 bytes, written once and read once. Its
 * first payload size, chunk count and next block (needed only when the
 * record has chunks) are in chunk[block] as size, index and next: a
 * descriptor block's own slot in the chunk table is otherwise unused. */
typedef struct desc_meta {
    uint32_t block, gen, total;
    uint32_t key_off, hash;
    uint16_t key_len;
    uint8_t blocks; /* D_ONE or D_CHAIN */
} desc_meta;

enum { D_ONE = 1, D_CHAIN = 2 };

typedef struct scan_tmp {
    uint8_t *kind;
    chunk_meta *chunk;
    desc_meta *desc;
    uint32_t ndesc, desc_cap;
    uint8_t *keys;
    size_t keys_len, keys_cap;
} scan_tmp;

static void *grow(ekv_store *s, void *old, size_t old_bytes, size_t new_bytes)
{
    void *n = mem_alloc(&s->alloc, new_bytes);
    if (!n)
        return NULL;
    if (old_bytes)
        memcpy(n, old, old_bytes);
    mem_free(&s->alloc, old, old_bytes);
    return n;
}

/* How many descriptors the whole storage will hold if the blocks after b
 * look like those scanned so far, plus an eighth. A table that must grow
 * grows to that, not just to twice its size: each growth copies the
 * table, and a large store would copy its descriptors many times over. */
static uint64_t descs_ahead(const ekv_store *s, const scan_tmp *t,
                            uint32_t b)
{
    uint64_t n = (uint64_t)t->ndesc * (s->bc - 1) / b;
    return n + n / 8 + 64;
}

/* Record the sane descriptor in buf (block b); *entry_bytes grows by the
 * arena bytes its key's entry would take. */
static int add_desc(ekv_store *s, scan_tmp *t, uint32_t b, const uint8_t *buf,
                    size_t *entry_bytes)
{
    uint16_t klen = get_le16(buf + DESC_KEY_SIZE);
    if (t->ndesc == t->desc_cap) {
        uint64_t want = t->desc_cap ? (uint64_t)t->desc_cap * 2 : 64;
        uint64_t ahead = descs_ahead(s, t, b);
        if (t->desc_cap >= 1024 && ahead > want)
            want = ahead;
        if (want > s->bc)
            want = s->bc; /* one descriptor per block at most */
        uint32_t ncap = (uint32_t)want;
        void *n = grow(s, t->desc, t->desc_cap * sizeof(desc_meta),
                       ncap * sizeof(desc_meta));
        if (!n)
            return EKV_ENOMEM;
        t->desc = n;
        t->desc_cap = ncap;
    }
    /* Allocated even for an empty first key: NULL + 0 and memcpy from
     * NULL are undefined behaviour. */
    if (!t->keys || t->keys_len + klen > t->keys_cap) {
        size_t ncap = t->keys_cap ? t->keys_cap * 2 : 4096;
        if (t->ndesc >= 1024) {
            uint64_t guess = (uint64_t)(t->keys_len / t->ndesc + 1) *
                             descs_ahead(s, t, b);
            if (guess > ncap && guess <= (size_t)-1 / 4)
                ncap = (size_t)guess;
        }
        while (ncap < t->keys_len + klen)
            ncap *= 2;
        void *n = grow(s, t->keys, t->keys_len, ncap);
        if (!n)
            return EKV_ENOMEM;
        t->keys = n;
        t->keys_cap = ncap;
    }
    desc_meta *d = &t->desc[t->ndesc++];
    d->block = b;
    d->gen = get_le32(buf + DESC_GENERATION);
    d->total = get_le32(buf + DESC_TOTAL_SIZE);
    uint32_t count = get_le32(buf + DESC_CHUNK_COUNT);
    /* desc_sane() made a one-block record complete already. */
    d->blocks = count == 1 ? D_ONE : D_CHAIN;
    if (count != 1) {
        chunk_meta *c = &t->chunk[b];
        c->size = get_le32(buf + DESC_FIRST_SIZE);
        c->index = count;
        c->next = get_le32(buf + DESC_NEXT);
    }
    d->key_len = klen;
    d->key_off = (uint32_t)t->keys_len;
    /* Hashed where it lies: reading the copy just stored would stall on
     * the store. */
    d->hash = key_hash(buf + EKV_DESCRIPTOR_HEADER_SIZE, klen);
    memcpy(t->keys + t->keys_len, buf + EKV_DESCRIPTOR_HEADER_SIZE, klen);
    t->keys_len += klen;
    *entry_bytes += index_entry_bytes(&s->index, klen);
    return 0;
}

/* Walk a descriptor's chain through the scan table. */
static bool chain_complete(const ekv_store *s, const scan_tmp *t,
                           const desc_meta *d)
{
    if (d->blocks == D_ONE)
        return true;
    const chunk_meta *head = &t->chunk[d->block];
    uint64_t sum = head->size;
    uint32_t next = head->next;
    for (uint32_t idx = 1; idx < head->index; idx++) {
        if (next >= s->bc || t->kind[next] != K_CHUNK)
            return false;
        const chunk_meta *c = &t->chunk[next];
        if (c->owner != d->block || c->index != idx)
            return false;
        sum += c->size;
        next = c->next;
    }
    /* chunk_index grows by one per step, so a cycle can never pass the
     * index test: no visited set is needed. */
    return next == EKV_BLOCK_NONE && sum == d->total;
}

/* The chunks of a kept record of several blocks (its descriptor is marked
 * already). */
static void mark_chain_kept(const ekv_store *s, scan_tmp *t,
                            const desc_meta *d)
{
    const chunk_meta *head = &t->chunk[d->block];
    uint32_t next = head->next;
    for (uint32_t idx = 1; idx < head->index && next < s->bc; idx++) {
        uint32_t after = t->chunk[next].next;
        t->kind[next] = K_KEPT;
        next = after;
    }
}

static void scan_tmp_free(ekv_store *s, scan_tmp *t)
{
    mem_free(&s->alloc, t->kind, s->bc);
    mem_free(&s->alloc, t->chunk, (size_t)s->bc * sizeof(chunk_meta));
    mem_free(&s->alloc, t->desc, t->desc_cap * sizeof(desc_meta));
    mem_free(&s->alloc, t->keys, t->keys_cap);
    memset(t, 0, sizeof(*t));
}

/* How many blocks from b on (b's included, before `end`) are K_FREE; runs
 * of millions (the holes of a sparse image) are passed 8 kinds a time. */
static uint32_t free_run(const scan_tmp *t, uint32_t b, uint32_t end)
{
    _Static_assert(K_FREE == 0, "free_run compares words with zero");
    uint32_t e = b;
    while (e < end && e % 8)
        if (t->kind[e] == K_FREE)
            e++;
        else
            return e - b;
    while (end - e >= 8) {
        uint64_t w;
        memcpy(&w, t->kind + e, 8);
        if (w)
            break;
        e += 8;
    }
    while (e < end && t->kind[e] == K_FREE)
        e++;
    return e - b;
}

/* Recover replica r: scan, verify, index, erase (if writable). */
int mode_recover(ekv_store *s, unsigned r)
{
    ekv_replica *rp = &s->rep[r];
    ekv_replica_report *rep = &rp->report;
    scan_tmp t;
    scan_batch sb;
    int err = 0;

    memset(&t, 0, sizeof(t));
    memset(&sb, 0, sizeof(sb));
    rep->free_blocks = rep->descriptor_blocks = rep->chunk_blocks = 0;
    rep->garbage_blocks = rep->unreadable_blocks = 0;
    rep->complete_records = rep->incomplete_records = 0;
    rep->stale_records = rep->erased_blocks = rep->erasable_blocks = 0;
    rep->keys = 0;

    t.kind = mem_alloc(&s->alloc, s->bc);
    t.chunk = mem_alloc(&s->alloc, (size_t)s->bc * sizeof(chunk_meta));
    if (!t.kind || !t.chunk) {
        err = EKV_ENOMEM;
        goto out;
    }
    t.kind[0] = K_KEPT;

    size_t entry_bytes = 0; /* the arena the sane descriptors' keys need */
    batch_open(s, r, &sb);
    for (uint32_t b = 1; b < s->bc; b++) {
        /* A hole of a sparse image: free blocks, nothing to read. */
        uint32_t z = batch_zeros(s, r, &sb, b);
        if (z) {
            memset(t.kind + b, K_FREE, z);
#ifndef EKV_READONLY
            s->free00 += z;
#endif
            b += z - 1;
            continue;
        }
        const uint8_t *buf;
        /* A failed or doubtful block is read again (dev_read()). */
        if (batch_read(s, r, &sb, b, &buf) != 0) {
            t.kind[b] = K_UNREADABLE;
            rep->unreadable_blocks++;
            continue;
        }
        uint8_t type = buf[0];
        bool crc_ok = (type == EKV_TYPE_DESCRIPTOR || type == EKV_TYPE_CHUNK ||
                       type == EKV_TYPE_HEADER) &&
                      read_crc_ok(s, buf);
        if (crc_ok && type == EKV_TYPE_DESCRIPTOR) {
            rep->descriptor_blocks++;
            t.kind[b] = K_DESC;
            if (desc_sane(buf, s->bs)) {
                err = add_desc(s, &t, b, buf, &entry_bytes);
                if (err)
                    goto out;
            } else {
                rep->incomplete_records++;
            }
        } else if (crc_ok && type == EKV_TYPE_CHUNK) {
            rep->chunk_blocks++;
            t.kind[b] = chunk_sane(buf, s->bs) ? K_CHUNK : K_OTHER;
            chunk_meta *c = &t.chunk[b];
            c->owner = get_le32(buf + CHUNK_OWNER);
            c->index = get_le32(buf + CHUNK_INDEX);
            c->next = get_le32(buf + CHUNK_NEXT);
            c->size = get_le32(buf + CHUNK_PAYLOAD_SIZE);
        } else if (!crc_ok && (type == 0x00 || type == 0xff)) {
            t.kind[b] = K_FREE;
#ifndef EKV_READONLY
            if (type == 0xff)
                s->freeff++;
            else
                s->free00++;
#endif
        } else {
            /* Bad CRC, unknown type, or a header outside block 0. */
            rep->garbage_blocks++;
            t.kind[b] = K_OTHER;
        }
    }
    batch_close(s, &sb);

    /* Size the index once for the sane descriptors (not by doubling as
     * keys arrive; stale and incomplete records make this a little more
     * than needed); if that fails, growing as it goes may still work. The
     * first replica's keys are all new: their entries come from one arena
     * (a key with stale records here wastes an entry's bytes until close).
     * Later replicas mostly find their keys already there. */
    (void)index_reserve(&s->index, s->index.count + t.ndesc);
    if (!s->index.count)
        index_arena(&s->index, entry_bytes);
    /* One pass: verify each record's chain and offer the complete ones to
     * the index. The newest complete record of each key wins (on a tie the
     * lower block). The winner's descriptor is marked kept as it wins and
     * unmarked when it loses, so the kept chunks are all that is left to
     * mark afterwards. */
    uint32_t chains = 0;
    for (uint32_t i = 0; i < t.ndesc; i++) {
        desc_meta *d = &t.desc[i];
        /* The table is far larger than a cache: ask for the slot of a
         * key a few steps ahead while this one is looked up. */
        if (i + 8 < t.ndesc)
            index_prefetch(&s->index, t.desc[i + 8].hash);
        if (!chain_complete(s, &t, d)) {
            d->blocks = 0;
            rep->incomplete_records++;
            continue;
        }
        rep->complete_records++;
        ekv_entry *e = index_get_or_add(&s->index, t.keys + d->key_off,
                                        d->key_len, d->hash);
        if (!e) {
            err = EKV_ENOMEM;
            goto out;
        }
        ekv_slot *sl = &e->rep[r];
        if (sl->desc == EKV_BLOCK_NONE) {
            rep->keys++;
        } else {
            rep->stale_records++;
            if (d->gen < sl->gen ||
                (d->gen == sl->gen && d->block > sl->desc))
                continue;
            t.kind[sl->desc] = K_DESC;
        }
        t.kind[d->block] = K_KEPT;
        sl->desc = d->block;
        sl->gen = d->gen;
        sl->size = d->total;
        chains += d->blocks == D_CHAIN;
    }
    for (uint32_t i = 0; chains && i < t.ndesc; i++) {
        const desc_meta *d = &t.desc[i];
        if (d->blocks == D_CHAIN && t.kind[d->block] == K_KEPT)
            mark_chain_kept(s, &t, d);
    }

    /* Sweep: free blocks go to the free map; the rest that is not kept is
     * erased when we may write and every block could be read. */
    decide_erase_byte(s);
    bool may_erase = !(s->flags & EKV_OPEN_RDONLY) && !rep->unreadable_blocks;
    bool erased = false;
    for (uint32_t b = 1; b < s->bc; b++) {
        uint8_t k = t.kind[b];
        if (k == K_FREE) {
            uint32_t n = free_run(&t, b, s->bc);
            freemap_set_free_range(&rp->fm, b, n);
            b += n - 1;
        } else if (k != K_KEPT && k != K_UNREADABLE) {
            rep->erasable_blocks++;
            if (may_erase && dev_write(s, r, b, s->ebuf) == 0) {
                erased = true;
                rep->erased_blocks++;
                freemap_set_free(&rp->fm, b);
            }
        }
    }
    if (erased && dev_flush(s, r) != 0) {
        /* Not known to be durable: keep those blocks out of use. */
        for (uint32_t b = 1; b < s->bc; b++)
            if (t.kind[b] != K_FREE && t.kind[b] != K_KEPT &&
                t.kind[b] != K_UNREADABLE)
                freemap_set_used(&rp->fm, b);
        rep->erased_blocks = 0;
    }
    rep->free_blocks = rp->fm.free_count;
out:
    batch_close(s, &sb);
    scan_tmp_free(s, &t);
    return err;
}


/* ---- hooks ---------------------------------------------------------- */

int mode_init(ekv_store *s)
{
    index_init(&s->index, s->n, &s->alloc);
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r)) {
            int err = freemap_init(&s->rep[r].fm, s->bc, &s->alloc);
            if (err)
                return err;
        }
    return 0;
}

void mode_release(ekv_store *s)
{
    if (s->index.alloc)
        index_free(&s->index);
    for (unsigned r = 0; r < s->n; r++)
        freemap_free(&s->rep[r].fm, &s->alloc);
}

ekv_entry *mode_locate(ekv_store *s, const uint8_t *key, size_t key_len)
{
    return index_find(&s->index, key, key_len, key_hash(key, key_len));
}

ekv_entry *mode_locate_or_add(ekv_store *s, const uint8_t *key,
                              size_t key_len)
{
    return index_get_or_add(&s->index, key, key_len, key_hash(key, key_len));
}

void mode_forget(ekv_store *s, ekv_entry *e)
{
    for (unsigned r = 0; r < s->n; r++)
        if (e->rep[r].desc != EKV_BLOCK_NONE)
            return;
    index_remove(&s->index, e);
}

uint32_t mode_free_count(ekv_store *s, unsigned r, uint32_t need)
{
    (void)need;
    return s->rep[r].fm.free_count;
}

uint32_t mode_alloc(ekv_store *s, unsigned r, uint32_t after)
{
    /* Taking the lowest free block each time gives ascending blocks, the
     * same as a scan upward from `after` would. */
    (void)after;
    return freemap_take_lowest(&s->rep[r].fm);
}

void mode_release_block(ekv_store *s, unsigned r, uint32_t b)
{
    freemap_set_free(&s->rep[r].fm, b);
}

int mode_iterate(ekv_store *s, int (*fn)(void *, const ekv_key_info *),
                 void *ctx)
{
    for (uint32_t i = 0; i < s->index.cap; i++) {
        ekv_entry *e = s->index.slots[i];
        if (!e)
            continue;
        ekv_key_info info;
        fill_info(s, e, entry_key(e, s->n), &info);
        int rc = fn(ctx, &info);
        if (rc)
            return rc;
    }
    return 0;
}

uint32_t mode_records(ekv_store *s)
{
    return s->index.count;
}

size_t mode_memory(ekv_store *s, size_t *index_bytes)
{
    size_t fm = 0;
    for (unsigned r = 0; r < s->n; r++)
        if (s->rep[r].fm.bits)
            fm += freemap_bytes(s->bc);
    *index_bytes = s->index.bytes;
    return s->index.bytes + fm;
}

/* ---- what replica.c's heal and repair need ------------------------- */

ekv_entry *mode_next_entry(ekv_store *s, uint32_t *pos)
{
    while (*pos < s->index.cap) {
        ekv_entry *e = s->index.slots[(*pos)++];
        if (e)
            return e;
    }
    return NULL;
}

int mode_reset_replica(ekv_store *s, unsigned r)
{
    freemap_free(&s->rep[r].fm, &s->alloc);
    int err = freemap_init(&s->rep[r].fm, s->bc, &s->alloc);
    for (uint32_t b = 1; b < s->bc && !err; b++)
        freemap_set_free(&s->rep[r].fm, b);
    return err;
}

#endif /* !EKV_NO_INDEX */
