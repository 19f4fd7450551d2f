/*
 * store.c - a store over 1..N replica devices: open with recovery and index
 * building in one scan, get, put, delete, iterate, stats and repair.
 *
 * How the pieces fit
 * - Recovery reads every block of a replica once. Chunk headers are kept in
 *   a temporary per-block table and descriptors in a list, so verifying a
 *   record's chain afterwards needs no second read. The newest complete
 *   record of each key goes into the index; every other non-free block is
 *   erased (or, read-only, just left out of use).
 * - The index gives, per key and replica, the newest complete record's
 *   descriptor block, generation and size. The free map gives the lowest
 *   free block. So put, get and delete touch the record's blocks only.
 * - put writes the new record to every replica and flushes each before it
 *   erases the old record anywhere. If a replica fails while the new record
 *   is being written, the new copies are erased again and the old value
 *   stays: a failed put changes nothing a reader can see.
 */
#include "ekv_internal.h"

/* ---- device access -------------------------------------------------- */

static int dev_read(ekv_store *s, unsigned r, uint32_t b, void *buf)
{
    ekv_device *d = s->rep[r].dev;
    int err = d->read(d, b, buf);
    if (err) {
        s->io_errors++;
        return err < 0 ? err : EKV_EIO;
    }
    return 0;
}

static int dev_write(ekv_store *s, unsigned r, uint32_t b, const void *buf)
{
    ekv_device *d = s->rep[r].dev;
    /* The one gate every write passes: a read-only store never writes. */
    if ((s->flags & EKV_OPEN_RDONLY) || !d->write)
        return EKV_EROFS;
    int err = d->write(d, b, buf);
    if (err) {
        s->io_errors++;
        return err < 0 ? err : EKV_EIO;
    }
    return 0;
}

static int dev_flush(ekv_store *s, unsigned r)
{
    ekv_device *d = s->rep[r].dev;
    if (s->flags & EKV_OPEN_RDONLY)
        return EKV_EROFS;
    if (!d->flush)
        return 0;
    int err = d->flush(d);
    if (err) {
        s->io_errors++;
        return err < 0 ? err : EKV_EIO;
    }
    return 0;
}

static bool active(const ekv_store *s, unsigned r)
{
    return s->rep[r].status == 0;
}

/* Make the block-list scratch hold at least n entries. */
static int list_reserve(ekv_store *s, uint64_t n)
{
    if (n <= s->list_cap)
        return 0;
    if (n > 0xffffffffu / sizeof(uint32_t))
        return EKV_ENOMEM;
    uint32_t *nl = mem_alloc(&s->alloc, (size_t)n * sizeof(uint32_t));
    if (!nl)
        return EKV_ENOMEM;
    mem_free(&s->alloc, s->list, (size_t)s->list_cap * sizeof(uint32_t));
    s->list = nl;
    s->list_cap = (uint32_t)n;
    return 0;
}

/* ---- recovery ----------------------------------------------------------- */

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

typedef struct desc_meta {
    uint32_t block, gen, total, first, count, next;
    uint32_t key_off, hash;
    uint16_t key_len;
    uint8_t complete;
} desc_meta;

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

static int add_desc(ekv_store *s, scan_tmp *t, uint32_t b, const uint8_t *buf)
{
    uint16_t klen = get_le16(buf + DESC_KEY_SIZE);
    if (t->ndesc == t->desc_cap) {
        uint32_t ncap = t->desc_cap ? t->desc_cap * 2 : 64;
        void *n = grow(s, t->desc, t->desc_cap * sizeof(desc_meta),
                       ncap * sizeof(desc_meta));
        if (!n)
            return EKV_ENOMEM;
        t->desc = n;
        t->desc_cap = ncap;
    }
    if (t->keys_len + klen > t->keys_cap) {
        size_t ncap = t->keys_cap ? t->keys_cap * 2 : 4096;
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
    d->first = get_le32(buf + DESC_FIRST_SIZE);
    d->count = get_le32(buf + DESC_CHUNK_COUNT);
    d->next = get_le32(buf + DESC_NEXT);
    d->key_len = klen;
    d->key_off = (uint32_t)t->keys_len;
    d->complete = 0;
    memcpy(t->keys + t->keys_len, buf + EKV_DESCRIPTOR_HEADER_SIZE, klen);
    t->keys_len += klen;
    d->hash = key_hash(t->keys + d->key_off, klen);
    return 0;
}

/* A descriptor whose own fields hold together (the chain is checked
 * later). */
static bool desc_sane(const uint8_t *buf, uint32_t bs)
{
    uint32_t klen = get_le16(buf + DESC_KEY_SIZE);
    if (buf[DESC_HEADER_SIZE] != EKV_DESCRIPTOR_HEADER_SIZE ||
        klen > EKV_MAX_KEY_SIZE(bs))
        return false;
    uint32_t first = get_le32(buf + DESC_FIRST_SIZE);
    uint32_t count = get_le32(buf + DESC_CHUNK_COUNT);
    uint32_t total = get_le32(buf + DESC_TOTAL_SIZE);
    uint32_t next = get_le32(buf + DESC_NEXT);
    if (first > first_capacity(bs, klen) || count == 0 || first > total)
        return false;
    if (count == 1)
        return total == first && next == EKV_BLOCK_NONE;
    return next != EKV_BLOCK_NONE;
}

static bool chunk_sane(const uint8_t *buf, uint32_t bs)
{
    return buf[CHUNK_HEADER_SIZE] == EKV_CHUNK_HEADER_SIZE &&
           get_le32(buf + CHUNK_PAYLOAD_SIZE) <= chunk_capacity(bs) &&
           get_le32(buf + CHUNK_INDEX) >= 1;
}

/* Walk a descriptor's chain through the scan table. */
static bool chain_complete(const ekv_store *s, const scan_tmp *t,
                           const desc_meta *d)
{
    uint64_t sum = d->first;
    uint32_t next = d->next;
    for (uint32_t idx = 1; idx < d->count; idx++) {
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

static void mark_kept(const ekv_store *s, scan_tmp *t, const desc_meta *d)
{
    t->kind[d->block] = K_KEPT;
    uint32_t next = d->next;
    for (uint32_t idx = 1; idx < d->count && next < s->bc; idx++) {
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

/* Recover replica r: scan, verify, index, erase (if writable). */
static int recover_replica(ekv_store *s, unsigned r)
{
    ekv_replica *rp = &s->rep[r];
    ekv_replica_report *rep = &rp->report;
    scan_tmp t;
    int err = 0;

    memset(&t, 0, sizeof(t));
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

    for (uint32_t b = 1; b < s->bc; b++) {
        uint8_t *buf = s->rbuf;
        if (dev_read(s, r, b, buf) != 0) {
            t.kind[b] = K_UNREADABLE;
            rep->unreadable_blocks++;
            continue;
        }
        uint8_t type = buf[0];
        bool crc_ok = (type == EKV_TYPE_DESCRIPTOR || type == EKV_TYPE_CHUNK ||
                       type == EKV_TYPE_HEADER) &&
                      block_crc_ok(buf, s->bs);
        if (crc_ok && type == EKV_TYPE_DESCRIPTOR) {
            rep->descriptor_blocks++;
            t.kind[b] = K_DESC;
            if (desc_sane(buf, s->bs)) {
                err = add_desc(s, &t, b, buf);
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
        } else {
            /* Bad CRC, unknown type, or a header outside block 0. */
            rep->garbage_blocks++;
            t.kind[b] = K_OTHER;
        }
    }

    /* Verify records; the newest complete one of each key wins (on a tie
     * the lower block, which the scan met first). */
    for (uint32_t i = 0; i < t.ndesc; i++) {
        desc_meta *d = &t.desc[i];
        if (!chain_complete(s, &t, d)) {
            rep->incomplete_records++;
            continue;
        }
        d->complete = 1;
        rep->complete_records++;
        ekv_entry *e = index_get_or_add(&s->index, t.keys + d->key_off,
                                        d->key_len, d->hash);
        if (!e) {
            err = EKV_ENOMEM;
            goto out;
        }
        ekv_slot *sl = &e->rep[r];
        if (sl->desc == EKV_BLOCK_NONE || d->gen > sl->gen) {
            if (sl->desc != EKV_BLOCK_NONE)
                rep->stale_records++;
            else
                rep->keys++;
            sl->desc = d->block;
            sl->gen = d->gen;
            sl->size = d->total;
        } else {
            rep->stale_records++;
        }
    }
    for (uint32_t i = 0; i < t.ndesc; i++) {
        desc_meta *d = &t.desc[i];
        if (!d->complete)
            continue;
        ekv_entry *e = index_find(&s->index, t.keys + d->key_off, d->key_len,
                                  d->hash);
        if (e && e->rep[r].desc == d->block)
            mark_kept(s, &t, d);
    }

    /* Sweep: free blocks go to the free map; the rest that is not kept is
     * erased when we may write and every block could be read. */
    bool may_erase = !(s->flags & EKV_OPEN_RDONLY) && !rep->unreadable_blocks;
    bool erased = false;
    for (uint32_t b = 1; b < s->bc; b++) {
        uint8_t k = t.kind[b];
        if (k == K_FREE) {
            freemap_set_free(&rp->fm, b);
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
    scan_tmp_free(s, &t);
    return err;
}

/* ---- open / close ------------------------------------------------------- */

static int read_header(ekv_store *s, unsigned r, uint32_t bs, uint32_t bc)
{
    ekv_device *d = s->rep[r].dev;
    ekv_replica_report *rep = &s->rep[r].report;
    if (!d->read || !geometry_supported(d->block_size, d->block_count))
        return EKV_EDOM;
    if (bs && (d->block_size != bs || d->block_count != bc))
        return EKV_EDOM;
    uint8_t *buf = mem_alloc(&s->alloc, d->block_size);
    if (!buf)
        return EKV_ENOMEM;
    int err = d->read(d, 0, buf);
    if (err) {
        s->io_errors++;
        err = err < 0 ? err : EKV_EIO;
    } else {
        err = header_validate(buf, d->block_size, d->block_size,
                              d->block_count);
    }
    if (err == 0) {
        rep->version_major = get_le16(buf + HDR_VMAJOR);
        rep->version_minor = get_le16(buf + HDR_VMINOR);
        rep->block_size = d->block_size;
        rep->block_count = d->block_count;
        rep->replica_id = get_le32(buf + HDR_REPLICA_ID);
        rep->format_seq = get_le32(buf + HDR_FORMAT_SEQ);
    }
    mem_free(&s->alloc, buf, d->block_size);
    return err;
}

int ekv_read_header(ekv_device *dev, ekv_block_info *info)
{
    if (!dev || !dev->read)
        return EKV_EINVAL;
    if (!geometry_supported(dev->block_size, dev->block_count))
        return EKV_EDOM;
#ifdef EKV_NO_MALLOC
    (void)info;
    return EKV_EINVAL;
#else
    const ekv_allocator *a = &ekv_default_allocator;
    uint8_t *buf = mem_alloc(a, dev->block_size);
    if (!buf)
        return EKV_ENOMEM;
    int err = dev->read(dev, 0, buf);
    if (err)
        err = err < 0 ? err : EKV_EIO;
    else
        err = header_validate(buf, dev->block_size, dev->block_size,
                              dev->block_count);
    if (info)
        ekv_block_decode(buf, dev->block_size, info);
    mem_free(a, buf, dev->block_size);
    return err;
#endif
}

static void release(ekv_store *s)
{
    index_free(&s->index);
    for (unsigned r = 0; r < s->n; r++)
        freemap_free(&s->rep[r].fm, &s->alloc);
}

static int rebuild(ekv_store *s)
{
    release(s);
    index_init(&s->index, s->n, &s->alloc);
    for (unsigned r = 0; r < s->n; r++) {
        if (!active(s, r))
            continue;
        int err = freemap_init(&s->rep[r].fm, s->bc, &s->alloc);
        if (!err)
            err = recover_replica(s, r);
        if (err)
            return err;
    }
    return 0;
}

static size_t store_size(unsigned n)
{
    return sizeof(ekv_store) + n * sizeof(ekv_replica);
}

void ekv_close(ekv_store *s)
{
    if (!s)
        return;
    release(s);
    mem_free(&s->alloc, s->list, (size_t)s->list_cap * sizeof(uint32_t));
    mem_free(&s->alloc, s->rbuf, (size_t)s->bs * 3);
    ekv_allocator a = s->alloc;
    mem_free(&a, s, store_size(s->n));
}

int ekv_open(ekv_store **out, ekv_device *const devs[], unsigned n,
             const ekv_options *opt)
{
    static const ekv_options defaults;
    if (!out || !devs || n == 0 || n > EKV_MAX_REPLICAS)
        return EKV_EINVAL;
    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (opt->erase_byte != 0x00 && opt->erase_byte != 0xff)
        return EKV_EINVAL;
    const ekv_allocator *a =
        opt->allocator ? opt->allocator : &ekv_default_allocator;
    for (unsigned r = 0; r < n; r++)
        if (!devs[r])
            return EKV_EINVAL;

    ekv_store *s = mem_alloc(a, store_size(n));
    if (!s)
        return EKV_ENOMEM;
    memset(s, 0, store_size(n));
    s->alloc = *a;
    s->flags = opt->flags;
    s->erase_byte = opt->erase_byte;
    s->n = n;
    index_init(&s->index, n, &s->alloc);

    /* Headers: the first good replica fixes the geometry. */
    int first_err = 0;
    unsigned good = 0;
    for (unsigned r = 0; r < n; r++) {
        s->rep[r].dev = devs[r];
        int err = read_header(s, r, s->bs, s->bc);
        if (!err && !(s->flags & EKV_OPEN_RDONLY) && !devs[r]->write)
            err = EKV_EROFS;
        s->rep[r].status = err;
        s->rep[r].report.status = err;
        if (err) {
            if (!first_err)
                first_err = err;
            continue;
        }
        if (!good++) {
            s->bs = devs[r]->block_size;
            s->bc = devs[r]->block_count;
            s->id_base = s->rep[r].report.replica_id - r;
            s->format_seq = s->rep[r].report.format_seq;
        }
    }
    /* A replica checked before the geometry was known may disagree. */
    for (unsigned r = 0; r < n && good; r++)
        if (active(s, r) && (devs[r]->block_size != s->bs ||
                             devs[r]->block_count != s->bc)) {
            s->rep[r].status = s->rep[r].report.status = EKV_EDOM;
            if (!first_err)
                first_err = EKV_EDOM;
            good--;
        }
    int err = 0;
    if (!good || (first_err && !(s->flags & EKV_OPEN_DEGRADED))) {
        err = first_err;
        goto fail;
    }

    s->rbuf = mem_alloc(&s->alloc, (size_t)s->bs * 3);
    if (!s->rbuf) {
        err = EKV_ENOMEM;
        goto fail;
    }
    s->wbuf = s->rbuf + s->bs;
    s->ebuf = s->wbuf + s->bs;
    memset(s->ebuf, s->erase_byte, s->bs);

    err = rebuild(s);
    if (err)
        goto fail;
    *out = s;
    return 0;
fail:
    ekv_close(s);
    return err;
}

int ekv_recover(ekv_store *s)
{
    if (!s)
        return EKV_EINVAL;
    return rebuild(s);
}

/* ---- reading records ---------------------------------------------------- */

/* Read and verify the record of slot sl on replica r into buf (cap bytes,
 * at least sl->size). Returns 0, EKV_ECORRUPT or a device error. If list is
 * not NULL, the record's blocks are stored there (sl->size's block count
 * entries). */
static int read_record(ekv_store *s, unsigned r, const ekv_slot *sl,
                       const void *key, size_t key_len, uint8_t *buf,
                       uint32_t *list)
{
    const uint32_t bs = s->bs;
    uint8_t *blk = s->rbuf;
    int err = dev_read(s, r, sl->desc, blk);
    if (err)
        return err;
    if (blk[0] != EKV_TYPE_DESCRIPTOR || !block_crc_ok(blk, bs) ||
        !desc_sane(blk, bs) || get_le16(blk + DESC_KEY_SIZE) != key_len ||
        get_le32(blk + DESC_GENERATION) != sl->gen ||
        get_le32(blk + DESC_TOTAL_SIZE) != sl->size ||
        memcmp(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, key_len) != 0)
        return EKV_ECORRUPT;
    uint32_t first = get_le32(blk + DESC_FIRST_SIZE);
    uint32_t count = get_le32(blk + DESC_CHUNK_COUNT);
    uint32_t next = get_le32(blk + DESC_NEXT);
    if (buf)
        memcpy(buf, blk + EKV_DESCRIPTOR_HEADER_SIZE + key_len, first);
    if (list)
        list[0] = sl->desc;
    uint64_t have = first;
    for (uint32_t idx = 1; idx < count; idx++) {
        if (next >= s->bc)
            return EKV_ECORRUPT;
        err = dev_read(s, r, next, blk);
        if (err)
            return err;
        uint32_t size = get_le32(blk + CHUNK_PAYLOAD_SIZE);
        if (blk[0] != EKV_TYPE_CHUNK || !block_crc_ok(blk, bs) ||
            !chunk_sane(blk, bs) || get_le32(blk + CHUNK_OWNER) != sl->desc ||
            get_le32(blk + CHUNK_INDEX) != idx || have + size > sl->size)
            return EKV_ECORRUPT;
        if (buf)
            memcpy(buf + have, blk + EKV_CHUNK_HEADER_SIZE, size);
        if (list)
            list[idx] = next;
        have += size;
        next = get_le32(blk + CHUNK_NEXT);
    }
    if (next != EKV_BLOCK_NONE || have != sl->size)
        return EKV_ECORRUPT;
    return 0;
}

/* Replicas holding a copy of e, best first: generation down, then replica
 * index up. Returns how many. */
static unsigned copies_in_order(const ekv_store *s, const ekv_entry *e,
                                unsigned order[])
{
    unsigned n = 0;
    for (unsigned r = 0; r < s->n; r++) {
        if (e->rep[r].desc == EKV_BLOCK_NONE)
            continue;
        unsigned i = n++;
        while (i > 0 && e->rep[order[i - 1]].gen < e->rep[r].gen) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = r;
    }
    return n;
}

static void fill_info(const ekv_store *s, ekv_entry *e, ekv_key_info *info)
{
    uint32_t best = 0;
    bool any = false;
    for (unsigned r = 0; r < s->n; r++)
        if (e->rep[r].desc != EKV_BLOCK_NONE &&
            (!any || e->rep[r].gen > e->rep[best].gen)) {
            best = r;
            any = true;
        }
    info->key = entry_key(e, s->n);
    info->key_len = e->key_len;
    info->generation = e->rep[best].gen;
    info->value_size = e->rep[best].size;
    info->replicas = info->stale = 0;
    for (unsigned r = 0; r < s->n; r++) {
        if (e->rep[r].desc == EKV_BLOCK_NONE)
            continue;
        if (e->rep[r].gen == info->generation)
            info->replicas |= 1u << r;
        else
            info->stale |= 1u << r;
    }
}

static ekv_entry *lookup(ekv_store *s, const void *key, size_t key_len)
{
    if (key_len > 0xffff)
        return NULL;
    return index_find(&s->index, key, key_len, key_hash(key, key_len));
}

int ekv_stat_key(ekv_store *s, const void *key, size_t key_len,
                 ekv_key_info *info)
{
    if (!s || (!key && key_len) || !info)
        return EKV_EINVAL;
    ekv_entry *e = lookup(s, key, key_len);
    if (!e)
        return EKV_ENOENT;
    fill_info(s, e, info);
    return 0;
}

int ekv_get(ekv_store *s, const void *key, size_t key_len, void *buf,
            size_t cap, size_t *len)
{
    if (!s || (!key && key_len) || (!buf && cap))
        return EKV_EINVAL;
    ekv_entry *e = lookup(s, key, key_len);
    if (!e)
        return EKV_ENOENT;
    unsigned order[EKV_MAX_REPLICAS];
    unsigned n = copies_in_order(s, e, order);
    int err = EKV_ECORRUPT;
    for (unsigned i = 0; i < n; i++) {
        const ekv_slot *sl = &e->rep[order[i]];
        if (len)
            *len = sl->size;
        if (cap < sl->size)
            return EKV_ERANGE;
        int rc = read_record(s, order[i], sl, key, key_len, buf, NULL);
        if (rc == 0)
            return 0;
        /* Prefer reporting an I/O failure over "corrupt". */
        if (rc != EKV_ECORRUPT)
            err = rc;
    }
    return err;
}

int ekv_iterate(ekv_store *s, int (*fn)(void *ctx, const ekv_key_info *info),
                void *ctx)
{
    if (!s || !fn)
        return EKV_EINVAL;
    for (uint32_t i = 0; i < s->index.cap; i++) {
        ekv_entry *e = s->index.slots[i];
        if (!e)
            continue;
        ekv_key_info info;
        fill_info(s, e, &info);
        int rc = fn(ctx, &info);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- writing records ---------------------------------------------------- */

/* Write a record into the blocks list[0..count-1] of replica r. */
static int write_record(ekv_store *s, unsigned r, const uint32_t *list,
                        uint32_t count, const uint8_t *key, size_t key_len,
                        const uint8_t *val, size_t val_len, uint32_t gen,
                        uint32_t user_flags)
{
    const uint32_t bs = s->bs;
    uint8_t *blk = s->wbuf;
    size_t first = val_len;
    if (first > first_capacity(bs, (uint32_t)key_len))
        first = first_capacity(bs, (uint32_t)key_len);

    memset(blk, 0, bs);
    blk[0] = EKV_TYPE_DESCRIPTOR;
    blk[DESC_HEADER_SIZE] = EKV_DESCRIPTOR_HEADER_SIZE;
    put_le16(blk + DESC_KEY_SIZE, (uint16_t)key_len);
    put_le32(blk + DESC_GENERATION, gen);
    put_le32(blk + DESC_TOTAL_SIZE, (uint32_t)val_len);
    put_le32(blk + DESC_FIRST_SIZE, (uint32_t)first);
    put_le32(blk + DESC_CHUNK_COUNT, count);
    put_le32(blk + DESC_NEXT, count > 1 ? list[1] : EKV_BLOCK_NONE);
    put_le32(blk + DESC_USER_FLAGS, user_flags);
    if (key_len)
        memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, key_len);
    if (first)
        memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE + key_len, val, first);
    block_seal(blk, bs);
    int err = dev_write(s, r, list[0], blk);
    if (err)
        return err;

    size_t off = first;
    for (uint32_t idx = 1; idx < count; idx++) {
        size_t part = val_len - off;
        if (part > chunk_capacity(bs))
            part = chunk_capacity(bs);
        memset(blk, 0, bs);
        blk[0] = EKV_TYPE_CHUNK;
        blk[CHUNK_HEADER_SIZE] = EKV_CHUNK_HEADER_SIZE;
        put_le32(blk + CHUNK_OWNER, list[0]);
        put_le32(blk + CHUNK_INDEX, idx);
        put_le32(blk + CHUNK_PAYLOAD_SIZE, (uint32_t)part);
        put_le32(blk + CHUNK_NEXT,
                 idx + 1 < count ? list[idx + 1] : EKV_BLOCK_NONE);
        memcpy(blk + EKV_CHUNK_HEADER_SIZE, val + off, part);
        block_seal(blk, bs);
        err = dev_write(s, r, list[idx], blk);
        if (err)
            return err;
        off += part;
    }
    return 0;
}

/* Erase blocks list[0..count-1] of replica r and flush; the blocks that
 * are then known to be erased go back to the free map. */
static int erase_blocks(ekv_store *s, unsigned r, const uint32_t *list,
                        uint32_t count)
{
    int err = 0;
    uint32_t done = 0;
    for (; done < count; done++) {
        err = dev_write(s, r, list[done], s->ebuf);
        if (err)
            break;
    }
    int ferr = dev_flush(s, r);
    if (ferr)
        return ferr;
    for (uint32_t i = 0; i < done; i++)
        freemap_set_free(&s->rep[r].fm, list[i]);
    return err;
}

/* The blocks of the record in slot sl of replica r, into list. A record
 * whose chain no longer verifies yields the blocks that still do (the rest
 * stays out of use until a recovery). Returns the count. */
static uint32_t record_block_list(ekv_store *s, unsigned r, const ekv_slot *sl,
                                  size_t key_len, uint32_t *list)
{
    list[0] = sl->desc;
    if (record_blocks(s->bs, key_len, sl->size) == 1)
        return 1;
    uint8_t *blk = s->rbuf;
    if (dev_read(s, r, sl->desc, blk) || blk[0] != EKV_TYPE_DESCRIPTOR ||
        !block_crc_ok(blk, s->bs))
        return 1;
    uint32_t count = get_le32(blk + DESC_CHUNK_COUNT);
    uint32_t next = get_le32(blk + DESC_NEXT);
    uint32_t n = 1;
    for (uint32_t idx = 1; idx < count && next < s->bc; idx++) {
        if (dev_read(s, r, next, blk) || blk[0] != EKV_TYPE_CHUNK ||
            !block_crc_ok(blk, s->bs) ||
            get_le32(blk + CHUNK_OWNER) != sl->desc ||
            get_le32(blk + CHUNK_INDEX) != idx)
            break;
        list[n++] = next;
        next = get_le32(blk + CHUNK_NEXT);
    }
    return n;
}

/* Erase the record of slot sl on replica r (descriptor first, so the key
 * is gone from this replica as soon as that block is). */
static int erase_record(ekv_store *s, unsigned r, ekv_slot *sl,
                        size_t key_len)
{
    uint64_t nb = record_blocks(s->bs, key_len, sl->size);
    int err = list_reserve(s, nb);
    if (err)
        return err;
    uint32_t count = record_block_list(s, r, sl, key_len, s->list);
    return erase_blocks(s, r, s->list, count);
}

static int check_writable(ekv_store *s)
{
    if (!s)
        return EKV_EINVAL;
    if (s->flags & EKV_OPEN_RDONLY)
        return EKV_EROFS;
    return 0;
}

/* Write one record of count blocks to every replica in mask, taking the
 * lowest free blocks; on failure erase what was written on all of them.
 * The blocks used on replica r are at s->list[r * count]. */
static int write_everywhere(ekv_store *s, uint32_t mask, uint32_t count,
                            const uint8_t *key, size_t key_len,
                            const uint8_t *val, size_t val_len, uint32_t gen,
                            uint32_t user_flags)
{
    int err = 0;
    unsigned r;
    for (r = 0; r < s->n; r++) {
        if (!(mask & (1u << r)))
            continue;
        uint32_t *list = s->list + (size_t)r * count;
        for (uint32_t i = 0; i < count; i++)
            list[i] = freemap_take_lowest(&s->rep[r].fm);
        err = write_record(s, r, list, count, key, key_len, val, val_len, gen,
                           user_flags);
        if (!err)
            err = dev_flush(s, r);
        if (err)
            break;
    }
    if (!err)
        return 0;
    /* Undo on every replica touched so far, this one included. */
    for (unsigned u = 0; u <= r && u < s->n; u++)
        if (mask & (1u << u))
            erase_blocks(s, u, s->list + (size_t)u * count, count);
    return err;
}

int ekv_put_flags(ekv_store *s, const void *key_, size_t key_len,
                  const void *val_, size_t val_len, uint32_t user_flags)
{
    const uint8_t *key = key_, *val = val_;
    int err = check_writable(s);
    if (err)
        return err;
    if ((!key && key_len) || (!val && val_len))
        return EKV_EINVAL;
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENAMETOOLONG;
    uint64_t nb = record_blocks(s->bs, key_len, val_len);
    if (val_len > 0xffffffffu || nb > s->bc - 1)
        return EKV_EFBIG;
    uint32_t count = (uint32_t)nb;

    uint32_t mask = 0;
    for (unsigned r = 0; r < s->n; r++) {
        if (!active(s, r))
            continue;
        if (s->rep[r].fm.free_count < count)
            return EKV_ENOSPC;
        mask |= 1u << r;
    }
    err = list_reserve(s, (uint64_t)count * s->n);
    if (err)
        return err;

    uint32_t hash = key_hash(key, key_len);
    ekv_entry *e = index_get_or_add(&s->index, key, key_len, hash);
    if (!e)
        return EKV_ENOMEM;
    uint32_t gen = 0;
    bool had = false;
    for (unsigned r = 0; r < s->n; r++)
        if (e->rep[r].desc != EKV_BLOCK_NONE) {
            had = true;
            if (e->rep[r].gen > gen)
                gen = e->rep[r].gen;
        }
    gen++;

    err = write_everywhere(s, mask, count, key, key_len, val, val_len, gen,
                           user_flags);
    if (err) {
        if (!had)
            index_remove(&s->index, e);
        return err;
    }

    /* Phase two: the new record is durable everywhere; retire old ones.
     * The new blocks are copied out first: erase_record uses the list. */
    uint32_t newdesc[EKV_MAX_REPLICAS];
    for (unsigned r = 0; r < s->n; r++)
        newdesc[r] = s->list[(size_t)r * count];
    for (unsigned r = 0; r < s->n; r++) {
        if (!(mask & (1u << r)))
            continue;
        ekv_slot *sl = &e->rep[r];
        if (sl->desc != EKV_BLOCK_NONE)
            (void)erase_record(s, r, sl, key_len); /* counted in io_errors */
        sl->desc = newdesc[r];
        sl->gen = gen;
        sl->size = (uint32_t)val_len;
    }
    return 0;
}

int ekv_put(ekv_store *s, const void *key, size_t key_len, const void *val,
            size_t val_len)
{
    return ekv_put_flags(s, key, key_len, val, val_len, 0);
}

int ekv_delete(ekv_store *s, const void *key, size_t key_len)
{
    int err = check_writable(s);
    if (err)
        return err;
    if (!key && key_len)
        return EKV_EINVAL;
    ekv_entry *e = lookup(s, key, key_len);
    if (!e)
        return EKV_ENOENT;
    bool left = false;
    for (unsigned r = 0; r < s->n; r++) {
        ekv_slot *sl = &e->rep[r];
        if (sl->desc == EKV_BLOCK_NONE)
            continue;
        int rc = erase_record(s, r, sl, key_len);
        if (rc) {
            if (!err)
                err = rc;
            left = true;
        } else {
            sl->desc = EKV_BLOCK_NONE;
        }
    }
    if (!left)
        index_remove(&s->index, e);
    return err;
}

/* ---- stats and reports -------------------------------------------------- */

int ekv_stats_get(ekv_store *s, ekv_stats *st)
{
    if (!s || !st)
        return EKV_EINVAL;
    memset(st, 0, sizeof(*st));
    st->block_size = s->bs;
    st->block_count = s->bc;
    st->replicas = s->n;
    st->free_blocks = 0xffffffffu;
    for (unsigned r = 0; r < s->n; r++) {
        if (!active(s, r))
            continue;
        st->active_replicas++;
        if (s->rep[r].fm.free_count < st->free_blocks)
            st->free_blocks = s->rep[r].fm.free_count;
        st->memory_bytes += freemap_bytes(s->bc);
    }
    if (!st->active_replicas)
        st->free_blocks = 0;
    st->used_blocks = s->bc ? s->bc - 1 - st->free_blocks : 0;
    st->records = s->index.count;
    st->max_key_size = EKV_MAX_KEY_SIZE(s->bs);
    st->read_only = (s->flags & EKV_OPEN_RDONLY) != 0;
    st->io_errors = s->io_errors;
    st->index_bytes = s->index.bytes;
    st->memory_bytes += s->index.bytes + store_size(s->n) +
                        (size_t)s->bs * 3 +
                        (size_t)s->list_cap * sizeof(uint32_t);
    return 0;
}

int ekv_replica_report_get(ekv_store *s, unsigned i, ekv_replica_report *r)
{
    if (!s || !r || i >= s->n)
        return EKV_EINVAL;
    *r = s->rep[i].report;
    return 0;
}

/* ---- repair ------------------------------------------------------------- */

/* Give a dropped replica a fresh header and recover what it holds. */
static int revive_replica(ekv_store *s, unsigned r)
{
    ekv_device *d = s->rep[r].dev;
    if (d->block_size != s->bs || d->block_count != s->bc || !d->write)
        return s->rep[r].status;
    header_encode(s->wbuf, s->bs, s->bc, s->id_base + r, s->format_seq);
    int err = dev_write(s, r, 0, s->wbuf);
    if (!err)
        err = dev_flush(s, r);
    if (err)
        return err;
    s->rep[r].status = 0;
    ekv_replica_report *rep = &s->rep[r].report;
    memset(rep, 0, sizeof(*rep));
    rep->version_major = EKV_FORMAT_VERSION_MAJOR;
    rep->version_minor = EKV_FORMAT_VERSION_MINOR;
    rep->block_size = s->bs;
    rep->block_count = s->bc;
    rep->replica_id = s->id_base + r;
    rep->format_seq = s->format_seq;
    err = freemap_init(&s->rep[r].fm, s->bc, &s->alloc);
    if (!err)
        err = recover_replica(s, r);
    if (err)
        s->rep[r].status = rep->status = err;
    return err;
}

/* Make replica r hold generation `gen` of entry e with value val. */
static int copy_to_replica(ekv_store *s, ekv_entry *e, unsigned r,
                           const uint8_t *val, uint32_t gen, uint32_t size,
                           uint32_t user_flags)
{
    const uint8_t *key = entry_key(e, s->n);
    uint32_t count = (uint32_t)record_blocks(s->bs, e->key_len, size);
    if (s->rep[r].fm.free_count < count)
        return EKV_ENOSPC;
    int err = list_reserve(s, (uint64_t)count * s->n);
    if (err)
        return err;
    err = write_everywhere(s, 1u << r, count, key, e->key_len, val, size, gen,
                           user_flags);
    if (err)
        return err;
    uint32_t desc = s->list[(size_t)r * count];
    ekv_slot *sl = &e->rep[r];
    if (sl->desc != EKV_BLOCK_NONE)
        (void)erase_record(s, r, sl, e->key_len);
    sl->desc = desc;
    sl->gen = gen;
    sl->size = size;
    return 0;
}

int ekv_repair(ekv_store *s, uint32_t *copied)
{
    int err = check_writable(s);
    if (err)
        return err;
    if (copied)
        *copied = 0;
    for (unsigned r = 0; r < s->n; r++)
        if (!active(s, r)) {
            err = revive_replica(s, r);
            if (err)
                return err;
        }

    size_t vcap = 0;
    uint8_t *val = NULL;
    int first_err = 0;
    for (uint32_t i = 0; i < s->index.cap; i++) {
        ekv_entry *e = s->index.slots[i];
        if (!e)
            continue;
        const uint8_t *key = entry_key(e, s->n);
        unsigned order[EKV_MAX_REPLICAS];
        unsigned n = copies_in_order(s, e, order);
        /* Find the best copy that verifies. */
        int src = -1;
        for (unsigned k = 0; k < n && src < 0; k++) {
            ekv_slot *sl = &e->rep[order[k]];
            if (sl->size > vcap) {
                mem_free(&s->alloc, val, vcap);
                vcap = sl->size;
                val = mem_alloc(&s->alloc, vcap);
                if (!val) {
                    vcap = 0;
                    return EKV_ENOMEM;
                }
            }
            if (read_record(s, order[k], sl, key, e->key_len, val, NULL) == 0)
                src = (int)order[k];
        }
        if (src < 0)
            continue; /* nothing sound to copy from */
        ekv_slot best = e->rep[src];
        s->rbuf[0] = 0;
        /* user_flags of the source descriptor, read again to copy them. */
        uint32_t user_flags = 0;
        if (dev_read(s, (unsigned)src, best.desc, s->rbuf) == 0)
            user_flags = get_le32(s->rbuf + DESC_USER_FLAGS);
        for (unsigned r = 0; r < s->n; r++) {
            if (!active(s, r) || (int)r == src)
                continue;
            ekv_slot *sl = &e->rep[r];
            if (sl->desc != EKV_BLOCK_NONE && sl->gen == best.gen &&
                read_record(s, r, sl, key, e->key_len, NULL, NULL) == 0)
                continue;
            int rc = copy_to_replica(s, e, r, val, best.gen, best.size,
                                     user_flags);
            if (rc && !first_err)
                first_err = rc;
            if (!rc && copied)
                (*copied)++;
        }
    }
    mem_free(&s->alloc, val, vcap);
    return first_err;
}

/* ---- format ------------------------------------------------------------- */

int ekv_format(ekv_device *const devs[], unsigned n,
               const ekv_format_options *opt)
{
    static const ekv_format_options defaults;
    if (!devs || n == 0 || n > EKV_MAX_REPLICAS)
        return EKV_EINVAL;
    if (!opt)
        opt = &defaults;
    if (opt->erase_byte != 0x00 && opt->erase_byte != 0xff)
        return EKV_EINVAL;
    for (unsigned r = 0; r < n; r++) {
        if (!devs[r] || !devs[r]->read)
            return EKV_EINVAL;
        if (!geometry_supported(devs[r]->block_size, devs[r]->block_count) ||
            devs[r]->block_size != devs[0]->block_size ||
            devs[r]->block_count != devs[0]->block_count)
            return EKV_EDOM;
        if (!devs[r]->write)
            return EKV_EROFS;
    }
#ifdef EKV_NO_MALLOC
    return EKV_EINVAL;
#else
    const ekv_allocator *a = &ekv_default_allocator;
    uint32_t bs = devs[0]->block_size, bc = devs[0]->block_count;
    uint8_t *buf = mem_alloc(a, bs);
    if (!buf)
        return EKV_ENOMEM;
    int err = 0;
    for (unsigned r = 0; r < n && !err; r++) {
        ekv_device *d = devs[r];
        if (opt->erase_data) {
            memset(buf, opt->erase_byte, bs);
            for (uint32_t b = 1; b < bc && !err; b++)
                err = d->write(d, b, buf);
        }
        if (!err) {
            header_encode(buf, bs, bc, opt->replica_id_base + r,
                          opt->format_seq);
            err = d->write(d, 0, buf);
        }
        if (!err && d->flush)
            err = d->flush(d);
        if (err > 0)
            err = EKV_EIO;
    }
    mem_free(a, buf, bs);
    return err;
#endif
}
