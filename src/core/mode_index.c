/*
 * mode_index.c - the indexed mode (the default): a key index and a free
 * block map per replica, both rebuilt by recovery, so put, get and delete
 * touch only the record's blocks.
 *
 * Recovery reads every block of a replica once. Chunk headers are kept in
 * a temporary per-block table and each descriptor as the index entry its
 * key would get (see scan_tmp), so verifying a record's chain afterwards
 * needs no second read. The newest complete record of each key goes into
 * the index; every other non-free block is erased (or, read-only, just
 * left out of use).
 */
#include "ekv_internal.h"

#ifndef EKV_NO_INDEX

enum scan_kind {
    K_FREE,
    K_DESC,
    K_CHUNK,
    K_OTHER,      /* garbage, stray header, malformed chunk */
    K_UNREADABLE,
    K_KEPT,       /* part of a record the index keeps */
    K_KEPT_HEAD   /* the descriptor of a kept record that has chunks */
};

static inline bool kept(uint8_t k)
{
    return k >= K_KEPT;
}

typedef struct chunk_meta {
    uint32_t owner, index, next, size;
} chunk_meta;

/* The scan writes, for each sane descriptor, the index entry its key would
 * get (ekv_entry: hash, key length, the replica slots, the key) one after
 * the other in one buffer; slot r holds the record (descriptor block,
 * generation, size). For the first replica that buffer then becomes the
 * index's arena as it is: the winning entries are linked into the table
 * where they lie, with no second copy of a key and no list of
 * descriptors. A record with chunks keeps its first payload size, chunk
 * count and next block in chunk[its descriptor block] as size, index and
 * next: a descriptor block's own slot in the chunk table is otherwise
 * unused. While the scan runs, in_arena tells D_ONE or D_CHAIN. */
enum { D_ONE = 2, D_CHAIN = 3 };

typedef struct scan_tmp {
    uint8_t *kind;
    chunk_meta *chunk;
    uint8_t *ents;
    size_t ents_len, ents_cap;
    uint32_t nents;
} scan_tmp;

/* A larger copy of old (old_size bytes allocated, the first `used` of
 * them in use); old is freed. */
static void *grow(ekv_store *s, void *old, size_t used, size_t old_size,
                  size_t new_size)
{
    void *n = mem_alloc(&s->alloc, new_size);
    if (!n)
        return NULL;
    if (used)
        memcpy(n, old, used);
    mem_free(&s->alloc, old, old_size);
    return n;
}

/* How many bytes the entries of the whole storage will take if the blocks
 * after b look like those scanned so far, plus an eighth. A buffer that
 * must grow grows to that, not just to twice its size: each growth copies
 * it, and a large store would copy its entries many times over. */
static uint64_t bytes_ahead(const ekv_store *s, const scan_tmp *t,
                            uint32_t b)
{
    uint64_t n = (uint64_t)t->ents_len * (s->bc - 1) / b;
    return n + n / 8 + 1024;
}

/* Record the sane descriptor in buf (block b) as an entry. */
static int add_desc(ekv_store *s, scan_tmp *t, uint32_t b, unsigned r,
                    const uint8_t *buf)
{
    uint16_t klen = get_le16(buf + DESC_KEY_SIZE);
    size_t need = index_entry_bytes(&s->index, klen);
    if (t->ents_cap - t->ents_len < need) {
        uint64_t want = t->ents_cap ? (uint64_t)t->ents_cap * 2 : 4096;
        if (t->nents >= 1024) {
            uint64_t ahead = bytes_ahead(s, t, b);
            if (ahead > want)
                want = ahead;
        }
        while (want < t->ents_len + need)
            want *= 2;
        if (want > (size_t)-1 / 2)
            return EKV_ENOMEM;
        void *n = grow(s, t->ents, t->ents_len, t->ents_cap, (size_t)want);
        if (!n)
            return EKV_ENOMEM;
        t->ents = n;
        t->ents_cap = (size_t)want;
    }
    if (!t->ents) /* need > 0 grew it above; never true */
        return EKV_ENOMEM;
    ekv_entry *e = (ekv_entry *)(void *)(t->ents + t->ents_len);
    t->ents_len += need;
    t->nents++;
    const uint8_t *key = buf + EKV_DESCRIPTOR_HEADER_SIZE;
    e->hash = key_hash(key, klen);
    e->key_len = klen;
    uint32_t count = get_le32(buf + DESC_CHUNK_COUNT);
    /* desc_sane() made a one-block record complete already. */
    e->in_arena = count == 1 ? D_ONE : D_CHAIN;
    if (count != 1) {
        chunk_meta *c = &t->chunk[b];
        c->size = get_le32(buf + DESC_FIRST_SIZE);
        c->index = count;
        c->next = get_le32(buf + DESC_NEXT);
    }
    for (unsigned i = 0; i < nrep(s); i++) {
        e->rep[i].desc = EKV_BLOCK_NONE;
        e->rep[i].gen = 0;
        e->rep[i].size = 0;
    }
    e->rep[r].desc = b;
    e->rep[r].gen = get_le32(buf + DESC_GENERATION);
    e->rep[r].size = get_le32(buf + DESC_TOTAL_SIZE);
    if (klen)
        memcpy(entry_key(e, s->n), key, klen);
    return 0;
}

/* The entry after e in the buffer. */
static inline ekv_entry *next_ent(const ekv_store *s, ekv_entry *e)
{
    return (ekv_entry *)(void *)((uint8_t *)e +
                                 index_entry_bytes(&s->index, e->key_len));
}

/* Walk the chain of the record whose descriptor is block d (D_ONE or
 * D_CHAIN) through the scan table. */
static bool chain_complete(const ekv_store *s, const scan_tmp *t, uint32_t d,
                           uint32_t total, unsigned blocks)
{
    if (blocks == D_ONE)
        return true;
    const chunk_meta *head = &t->chunk[d];
    uint64_t sum = head->size;
    uint32_t next = head->next;
    for (uint32_t idx = 1; idx < head->index; idx++) {
        if (next >= s->bc || t->kind[next] != K_CHUNK)
            return false;
        const chunk_meta *c = &t->chunk[next];
        if (c->owner != d || c->index != idx)
            return false;
        sum += c->size;
        next = c->next;
    }
    /* chunk_index grows by one per step, so a cycle can never pass the
     * index test: no visited set is needed. */
    return next == EKV_BLOCK_NONE && sum == total;
}

/* Mark the complete record whose descriptor is block d kept, or (keep
 * false) no longer: K_DESC and K_CHUNK again. */
static void mark_record(const ekv_store *s, scan_tmp *t, uint32_t d,
                        unsigned blocks, bool keep)
{
    if (blocks == D_ONE) {
        t->kind[d] = keep ? K_KEPT : K_DESC;
        return;
    }
    t->kind[d] = keep ? K_KEPT_HEAD : K_DESC;
    const chunk_meta *head = &t->chunk[d];
    uint32_t next = head->next;
    for (uint32_t idx = 1; idx < head->index && next < s->bc; idx++) {
        t->kind[next] = keep ? K_KEPT : K_CHUNK;
        next = t->chunk[next].next;
    }
}

static void scan_tmp_free(ekv_store *s, scan_tmp *t)
{
    mem_free(&s->alloc, t->kind, s->bc);
    mem_free(&s->alloc, t->chunk, (size_t)s->bc * sizeof(chunk_meta));
    mem_free(&s->alloc, t->ents, t->ents_cap);
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
                err = add_desc(s, &t, b, r, buf);
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
     * first replica's keys are all new: the scan's entries become the
     * index's arena (an entry of a stale or incomplete record wastes its
     * bytes there until close). Later replicas mostly find their keys
     * already there; a new one is allocated alone. */
    (void)index_reserve(&s->index, s->index.count + t.nents);
    /* The buffer grew by a guess from the blocks scanned so far, which a
     * storage full at its start and empty at its end (or sparse) makes
     * far too large: the arena stays until close, so beyond half again
     * what is used it is copied to its size. */
    if (t.ents && t.ents_cap - t.ents_len > t.ents_len / 2 + 4096) {
        void *n = grow(s, t.ents, t.ents_len, t.ents_cap, t.ents_len);
        if (n) {
            t.ents = n;
            t.ents_cap = t.ents_len;
        }
    }
    bool adopt = t.ents && index_adopt_arena(&s->index, t.ents, t.ents_len,
                                                t.ents_cap);
    if (adopt) {
        t.ents = NULL; /* the index's now */
        t.ents_cap = 0;
    }
    /* One pass: verify each record's chain and offer the complete ones to
     * the index. The newest complete record of each key wins (on a tie the
     * lower block). A winner's blocks are marked kept as it wins and
     * unmarked when it loses. */
    uint8_t *base = adopt ? s->index.arena : t.ents;
    if (!base)
        t.nents = 0; /* no descriptor was scanned into an entry */
    ekv_entry *e = (ekv_entry *)(void *)base;
    ekv_entry *ahead = e;
    /* The table is far larger than a cache: ask for the slot of a key a
     * few entries ahead while this one is looked up. */
    for (uint32_t i = 0; ahead && i < 8 && i < t.nents; i++) {
        index_prefetch(&s->index, ahead->hash);
        ahead = next_ent(s, ahead);
    }
    for (uint32_t i = 0; i < t.nents; i++, e = next_ent(s, e)) {
        if (ahead && i + 8 < t.nents) {
            index_prefetch(&s->index, ahead->hash);
            ahead = next_ent(s, ahead);
        }
        const ekv_slot cand = e->rep[r];
        const unsigned blocks = e->in_arena;
        e->in_arena = 1;
        if (!chain_complete(s, &t, cand.desc, cand.size, blocks)) {
            rep->incomplete_records++;
            continue;
        }
        rep->complete_records++;
        ekv_entry *w;
        if (adopt) {
            e->rep[r].desc = EKV_BLOCK_NONE; /* cand holds it */
            w = index_find_or_link(&s->index, e);
            if (!w) {
                err = EKV_ENOMEM;
                goto out;
            }
        } else {
            w = index_get_or_add(&s->index, entry_key(e, s->n), e->key_len,
                                 e->hash);
            if (!w) {
                err = EKV_ENOMEM;
                goto out;
            }
        }
        ekv_slot *sl = &w->rep[r];
        if (sl->desc == EKV_BLOCK_NONE) {
            rep->keys++;
        } else {
            rep->stale_records++;
            if (cand.gen < sl->gen ||
                (cand.gen == sl->gen && cand.desc > sl->desc))
                continue;
            mark_record(s, &t, sl->desc,
                        t.kind[sl->desc] == K_KEPT_HEAD ? D_CHAIN : D_ONE,
                        false);
        }
        mark_record(s, &t, cand.desc, blocks, true);
        *sl = cand;
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
        } else if (!kept(k) && k != K_UNREADABLE) {
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
            if (t.kind[b] != K_FREE && !kept(t.kind[b]) &&
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
