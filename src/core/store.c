/*
 * store.c - a store over 1..N replica devices: open, get, put, delete,
 * iterate, stats and format. How records are found and where free blocks
 * are is the index mode's business (mode_index.c, or mode_scan.c in an
 * EKV_NO_INDEX build); this file holds what both share.
 *
 * The write protocol
 * - put writes the new record to every replica and flushes each before it
 *   erases the old record anywhere. If a replica fails while the new record
 *   is being written, the new copies are erased again and the old value
 *   stays: a failed put changes nothing a reader can see.
 * - Erasing a record walks its chain, erasing each chunk, and erases the
 *   descriptor last; a crash in between leaves a descriptor whose chain is
 *   broken, which recovery erases like any incomplete record.
 * - Generations: a put takes the highest generation of the key on any
 *   replica, plus one. On a tie the lower block wins inside a replica and
 *   the lower replica across them (copies_in_order).
 */
#include "ekv_internal.h"

/* ---- device access -------------------------------------------------- */

static int io_result(ekv_store *s, int err)
{
    if (!err)
        return 0;
    s->io_errors++;
    return err < 0 ? err : EKV_EIO;
}

/* Whether a block read looks like what a write or an erase leaves: a
 * known type with a right CRC, or uniformly 0x00 or 0xFF. */
bool read_plausible(const uint8_t *p, uint32_t bs)
{
    if (p[0] == EKV_TYPE_DESCRIPTOR || p[0] == EKV_TYPE_CHUNK ||
        p[0] == EKV_TYPE_HEADER)
        return block_crc_ok(p, bs);
    /* Uniform: every byte equals the one before it. */
    return (p[0] == 0x00 || p[0] == 0xff) && memcmp(p, p + 1, bs - 1) == 0;
}

/* Every read is judged: recovery erases, and the scanning mode allocates
 * and drops keys, on what it says. So a failed read, or one that is
 * neither a valid block nor an erased one (torn, or a bit flipped on the
 * way), is read once more before it is believed: a transient error or flip
 * then costs one read instead of a record. */
int dev_read(ekv_store *s, unsigned r, uint32_t b, void *buf)
{
    ekv_device *d = s->rep[rep_index(r)].dev;
    const uint8_t *p = buf;
    int err = 0;
    s->sound = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        err = io_result(s, d->read(d, b, buf));
        if (!err && read_plausible(p, s->bs)) {
            /* read_plausible checked the CRC of a typed block: remember
             * it. */
            if (p[0] >= EKV_TYPE_HEADER && p[0] <= EKV_TYPE_CHUNK)
                s->sound = p;
            return 0;
        }
    }
    /* Two failed reads, or twice neither valid nor erased: the caller
     * judges what it got. */
    return err;
}

#ifndef EKV_READONLY
/* The one gate every write and flush passes (buf NULL: flush): a
 * read-only store never writes. One body for both keeps it one gate. */
static int dev_out(ekv_store *s, unsigned r, uint32_t b, const void *buf)
{
    ekv_device *d = s->rep[rep_index(r)].dev;
    if (s->flags & EKV_OPEN_RDONLY)
        return EKV_EROFS;
    if (!buf)
        return d->flush ? io_result(s, d->flush(d)) : 0;
    if (!d->write)
        return EKV_EROFS;
    return io_result(s, d->write(d, b, buf));
}

int dev_write(ekv_store *s, unsigned r, uint32_t b, const void *buf)
{
    return dev_out(s, r, b, buf);
}

int dev_flush(ekv_store *s, unsigned r)
{
    int err = dev_out(s, r, 0, NULL);
    /* A failed flush may have lost any write not flushed before it (as
     * fsync may on Linux), the chunks open streams wrote included. */
    if (err)
        streams_lost(s, r, err);
    return err;
}
#endif

#ifndef EKV_READONLY
void decide_erase_byte(ekv_store *s)
{
    if (!(s->flags & EKV_OPEN_ERASE_AUTO) || s->erase_decided)
        return;
    if (s->freeff != s->free00)
        s->erase_byte = s->freeff > s->free00 ? 0xff : 0x00;
    memset(s->ebuf, s->erase_byte, s->bs);
    s->erase_decided = true;
}
#endif

/* ---- record checks -------------------------------------------------- */

/* A descriptor whose own fields hold together (the chain is checked
 * separately). */
bool desc_sane(const uint8_t *buf, uint32_t bs)
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

bool chunk_sane(const uint8_t *buf, uint32_t bs)
{
    return buf[CHUNK_HEADER_SIZE] == EKV_CHUNK_HEADER_SIZE &&
           get_le32(buf + CHUNK_PAYLOAD_SIZE) <= chunk_capacity(bs) &&
           get_le32(buf + CHUNK_INDEX) >= 1;
}

int read_record(ekv_store *s, unsigned r, const ekv_slot *sl,
                const uint8_t *key, size_t key_len, uint8_t *buf)
{
    const uint32_t bs = s->bs;
    uint8_t *blk = s->rbuf;
    int err = dev_read(s, r, sl->desc, blk);
    if (err)
        return err;
    if (blk[0] != EKV_TYPE_DESCRIPTOR || !read_crc_ok(s, blk) ||
        !desc_sane(blk, bs) || get_le16(blk + DESC_KEY_SIZE) != key_len ||
        get_le32(blk + DESC_GENERATION) != sl->gen ||
        get_le32(blk + DESC_TOTAL_SIZE) != sl->size ||
        (key_len && memcmp(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, key_len)))
        return EKV_ECORRUPT;
    uint32_t first = get_le32(blk + DESC_FIRST_SIZE);
    uint32_t count = get_le32(blk + DESC_CHUNK_COUNT);
    uint32_t next = get_le32(blk + DESC_NEXT);
    if (buf && first)
        memcpy(buf, blk + EKV_DESCRIPTOR_HEADER_SIZE + key_len, first);
    uint32_t have = first;
    for (uint32_t idx = 1; idx < count; idx++) {
        if (next >= s->bc)
            return EKV_ECORRUPT;
        err = dev_read(s, r, next, blk);
        if (err)
            return err;
        uint32_t size = get_le32(blk + CHUNK_PAYLOAD_SIZE);
        if (blk[0] != EKV_TYPE_CHUNK || !read_crc_ok(s, blk) ||
            !chunk_sane(blk, bs) || get_le32(blk + CHUNK_OWNER) != sl->desc ||
            get_le32(blk + CHUNK_INDEX) != idx || size > sl->size - have)
            return EKV_ECORRUPT;
        if (buf && size)
            memcpy(buf + have, blk + EKV_CHUNK_HEADER_SIZE, size);
        have += size;
        next = get_le32(blk + CHUNK_NEXT);
    }
    if (next != EKV_BLOCK_NONE || have != sl->size)
        return EKV_ECORRUPT;
    return 0;
}

/* ---- entries ---------------------------------------------------------- */

unsigned copies_in_order(const ekv_store *s, const ekv_entry *e,
                         unsigned order[])
{
    unsigned n = 0;
    for (unsigned r = 0; r < nrep(s); r++) {
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

void fill_info(const ekv_store *s, const ekv_entry *e, const uint8_t *key,
               ekv_key_info *info)
{
    unsigned order[EKV_MAX_REPLICAS];
    unsigned n = copies_in_order(s, e, order);
    info->key = key;
    info->key_len = e->key_len;
    /* order[0] is set only when there is a copy. */
    info->generation = n ? e->rep[order[0]].gen : 0;
    info->value_size = n ? e->rep[order[0]].size : 0;
    info->replicas = info->stale = 0;
    for (unsigned i = 0; i < n; i++) {
        if (e->rep[order[i]].gen == info->generation)
            info->replicas |= 1u << order[i];
        else
            info->stale |= 1u << order[i];
    }
}

static bool key_args_ok(ekv_store *s, const void *key, size_t key_len)
{
    return s && (key || !key_len);
}

int ekv_stat_key(ekv_store *s, const void *key, size_t key_len,
                 ekv_key_info *info)
{
    if (!key_args_ok(s, key, key_len) || !info)
        return EKV_EINVAL;
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENOENT;
    ekv_entry *e = mode_locate(s, key, key_len);
    if (!e)
        return s->lookup_err ? s->lookup_err : EKV_ENOENT;
    /* The caller's key bytes are what the entry holds, byte for byte. */
    fill_info(s, e, key, info);
    return 0;
}

int ekv_get(ekv_store *s, const void *key, size_t key_len, void *buf,
            size_t cap, size_t *len)
{
    if (!key_args_ok(s, key, key_len) || (!buf && cap))
        return EKV_EINVAL;
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENOENT;
    ekv_entry *e = mode_locate(s, key, key_len);
    if (!e)
        return s->lookup_err ? s->lookup_err : EKV_ENOENT;
    unsigned order[EKV_MAX_REPLICAS];
    /* One replica: located means its copy is there, and it is the one. */
    unsigned n = EKV_MAX_REPLICAS == 1 ? (order[0] = 0, 1u)
                                       : copies_in_order(s, e, order);
    int err = EKV_ECORRUPT;
    for (unsigned i = 0; i < n; i++) {
        const ekv_slot *sl = &e->rep[order[i]];
        if (len)
            *len = sl->size;
        if (cap < sl->size)
            return EKV_ERANGE;
        int rc = read_record(s, order[i], sl, key, key_len, buf);
        if (rc == 0)
            return 0;
        /* Prefer reporting an I/O failure over "corrupt". */
        if (rc != EKV_ECORRUPT)
            err = rc;
    }
    return err;
}

int ekv_get_replica(ekv_store *s, unsigned i, const void *key, size_t key_len,
                    void *buf, size_t cap, size_t *len, uint32_t *generation)
{
    if (!key_args_ok(s, key, key_len) || i >= nrep(s) || (!buf && cap))
        return EKV_EINVAL;
    if (!replica_active(s, i))
        return s->rep[i].status;
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENOENT;
    ekv_entry *e = mode_locate(s, key, key_len);
    if (!e || e->rep[i].desc == EKV_BLOCK_NONE)
        return EKV_ENOENT;
    const ekv_slot *sl = &e->rep[i];
    if (len)
        *len = sl->size;
    if (generation)
        *generation = sl->gen;
    if (buf && cap < sl->size)
        return EKV_ERANGE;
    return read_record(s, i, sl, key, key_len, buf);
}

int ekv_iterate(ekv_store *s, int (*fn)(void *ctx, const ekv_key_info *info),
                void *ctx)
{
    if (!s || !fn)
        return EKV_EINVAL;
    return mode_iterate(s, fn, ctx);
}

/* ---- writing ---------------------------------------------------------- */

#ifndef EKV_READONLY

/* Build block idx of a record in blk. */
FOR_STREAMS void record_block(ekv_store *s, uint8_t *blk, uint32_t idx,
                        uint32_t desc, uint32_t next, uint32_t count,
                        const uint8_t *key, size_t key_len, const uint8_t *val,
                        size_t val_len, size_t *off, uint32_t gen,
                        uint32_t user_flags)
{
    const uint32_t bs = s->bs;
    if (s->sound && s->sound == blk)
        s->sound = NULL; /* its CRC is no longer what was checked */
    memset(blk, 0, bs);
    if (idx == 0) {
        size_t first = val_len;
        if (first > first_capacity(bs, (uint32_t)key_len))
            first = first_capacity(bs, (uint32_t)key_len);
        blk[0] = EKV_TYPE_DESCRIPTOR;
        blk[DESC_HEADER_SIZE] = EKV_DESCRIPTOR_HEADER_SIZE;
        put_le16(blk + DESC_KEY_SIZE, (uint16_t)key_len);
        put_le32(blk + DESC_GENERATION, gen);
        put_le32(blk + DESC_TOTAL_SIZE, (uint32_t)val_len);
        put_le32(blk + DESC_FIRST_SIZE, (uint32_t)first);
        put_le32(blk + DESC_CHUNK_COUNT, count);
        put_le32(blk + DESC_NEXT, next);
        put_le32(blk + DESC_USER_FLAGS, user_flags);
        if (key_len)
            memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, key_len);
        if (first)
            memcpy(blk + EKV_DESCRIPTOR_HEADER_SIZE + key_len, val, first);
        *off = first;
    } else {
        size_t part = val_len - *off;
        if (part > chunk_capacity(bs))
            part = chunk_capacity(bs);
        blk[0] = EKV_TYPE_CHUNK;
        blk[CHUNK_HEADER_SIZE] = EKV_CHUNK_HEADER_SIZE;
        put_le32(blk + CHUNK_OWNER, desc);
        put_le32(blk + CHUNK_INDEX, idx);
        put_le32(blk + CHUNK_PAYLOAD_SIZE, (uint32_t)part);
        put_le32(blk + CHUNK_NEXT, next);
        memcpy(blk + EKV_CHUNK_HEADER_SIZE, val + *off, part);
        *off += part;
    }
    block_seal(blk, bs);
}

/* The scanning build, made for flash drivers that program from any
 * buffer, never asks. */
FOR_STREAMS uint8_t *chunk_buffer(ekv_store *s, unsigned r, uint32_t b)
{
#ifdef EKV_NO_INDEX
    (void)r;
    (void)b;
    return s->wbuf;
#else
    ekv_device *d = s->rep[rep_index(r)].dev;
    uint8_t *lent = d->write_buffer ? d->write_buffer(d, b) : NULL;
    return lent ? lent : s->wbuf;
#endif
}

/* Write a record of count blocks into the lowest free blocks of replica r
 * (descriptor first, then chunk 1, 2, ...: each block is taken when the
 * previous one needs its number). *desc gets the descriptor block; on a
 * failed write *failed gets the block whose content is now unknown. */
static int write_record(ekv_store *s, unsigned r, uint32_t count,
                        const uint8_t *key, size_t key_len,
                        const uint8_t *val, size_t val_len, uint32_t gen,
                        uint32_t user_flags, uint32_t *desc, uint32_t *failed)
{
    uint32_t b = mode_alloc(s, r, EKV_BLOCK_NONE);
    size_t off = 0;
    *desc = b;
    *failed = EKV_BLOCK_NONE;
    for (uint32_t idx = 0; idx < count; idx++) {
        if (b == EKV_BLOCK_NONE)
            return EKV_ENOSPC; /* free_count said otherwise: be safe */
        uint32_t next =
            idx + 1 < count ? mode_alloc(s, r, b) : EKV_BLOCK_NONE;
        uint8_t *blk = idx ? chunk_buffer(s, r, b) : s->wbuf;
        record_block(s, blk, idx, *desc, next, count, key, key_len, val,
                     val_len, &off, gen, user_flags);
        int err = dev_write(s, r, b, blk);
        if (err) {
            *failed = b;
            if (next != EKV_BLOCK_NONE)
                mode_release_block(s, r, next);
            return err;
        }
        b = next;
    }
    return 0;
}

FOR_STREAMS uint32_t erase_chunks(ekv_store *s, unsigned r, uint32_t desc,
                                  uint32_t next, uint32_t count, int *err)
{
    uint8_t *blk = s->rbuf;
    uint32_t idx = 1;
    for (; idx < count && next < s->bc; idx++) {
        /* Only blocks that still say they belong here are ours. */
        if (dev_read(s, r, next, blk) || blk[0] != EKV_TYPE_CHUNK ||
            !read_crc_ok(s, blk) ||
            get_le32(blk + CHUNK_OWNER) != desc ||
            get_le32(blk + CHUNK_INDEX) != idx)
            break;
        uint32_t after = get_le32(blk + CHUNK_NEXT);
        int rc = dev_write(s, r, next, s->ebuf);
        if (rc == 0)
            mode_release_block(s, r, next);
        else if (!*err)
            *err = rc;
        next = after;
    }
    return idx - 1;
}

int erase_chain(ekv_store *s, unsigned r, uint32_t desc, uint32_t count)
{
    uint8_t *blk = s->rbuf;
    uint32_t next = EKV_BLOCK_NONE;
    int err = 0;
    if (count != 1 && dev_read(s, r, desc, blk) == 0 &&
        blk[0] == EKV_TYPE_DESCRIPTOR && read_crc_ok(s, blk)) {
        count = get_le32(blk + DESC_CHUNK_COUNT);
        next = get_le32(blk + DESC_NEXT);
    }
    (void)erase_chunks(s, r, desc, next, count, &err);
    int rc = dev_write(s, r, desc, s->ebuf);
    if (rc && !err)
        err = rc;
    int frc = dev_flush(s, r);
    /* The descriptor block goes back to the free pool only once the whole
     * record is known erased. After a failure the caller may keep pointing
     * at it (a failed delete keeps its index slot): had the block been
     * reused by another key meanwhile, a retried erase would destroy that
     * key. (Chunks are safe to release early: the walk above only erases
     * blocks that still name this descriptor as their owner.) */
    if (!err && !frc)
        mode_release_block(s, r, desc);
    return err ? err : frc;
}

int write_everywhere(ekv_store *s, uint32_t mask, uint32_t count,
                     const uint8_t *key, size_t key_len, const uint8_t *val,
                     size_t val_len, uint32_t gen, uint32_t user_flags,
                     uint32_t desc[])
{
    int err = 0;
    unsigned r;
    uint32_t failed = EKV_BLOCK_NONE;
    for (r = 0; r < nrep(s); r++) {
        desc[r] = EKV_BLOCK_NONE;
        if (!(mask & (1u << r)))
            continue;
        err = write_record(s, r, count, key, key_len, val, val_len, gen,
                           user_flags, &desc[r], &failed);
        if (!err)
            err = dev_flush(s, r);
        if (err)
            break;
    }
    if (!err)
        return 0;
    /* Undo on every replica touched so far, this one included. The block
     * whose write failed may be torn: erase it on its own, as the chain
     * walk cannot reach it. */
    if (failed != EKV_BLOCK_NONE && failed != desc[r] &&
        dev_write(s, r, failed, s->ebuf) == 0)
        mode_release_block(s, r, failed);
    for (unsigned u = 0; u <= r && u < nrep(s); u++)
        if (desc[u] != EKV_BLOCK_NONE)
            (void)erase_chain(s, u, desc[u], u == r ? 0 : count);
    return err;
}

FOR_STREAMS int check_writable(ekv_store *s)
{
    if (!s)
        return EKV_EINVAL;
    return (s->flags & EKV_OPEN_RDONLY) ? EKV_EROFS : 0;
}

FOR_STREAMS int put_prepare(ekv_store *s, const uint8_t *key, size_t key_len,
                            ekv_entry **out, uint32_t *gen, ekv_slot old[])
{
    ekv_entry *e = mode_locate_or_add(s, key, key_len);
    if (!e)
        return EKV_ENOMEM;
    /* Scan mode could not read every block: the key's newest generation
     * (and the copy to retire) may be out of sight, so do not guess. */
    if (s->lookup_err)
        return s->lookup_err;
    uint32_t g = 0;
    for (unsigned r = 0; r < nrep(s); r++)
        if (e->rep[r].desc != EKV_BLOCK_NONE && e->rep[r].gen > g)
            g = e->rep[r].gen;
    /* Generation 0xFFFFFFFF + 1 would wrap to 0 and lose to the old
     * record on the next recovery: refuse instead. */
    if (g == 0xffffffffu) {
        mode_forget(s, e);
        return EKV_ERANGE;
    }
    /* Keep what the old records were: in scan mode e is scratch that
     * writing may not touch, but the erase below needs it. */
    for (unsigned r = 0; r < nrep(s); r++)
        old[r] = e->rep[r];
    *out = e;
    *gen = g + 1;
    return 0;
}

FOR_STREAMS void put_retire(ekv_store *s, ekv_entry *e, const ekv_slot old[],
                uint32_t mask, const uint32_t desc[], uint32_t gen,
                size_t key_len, size_t val_len)
{
    /* Phase two: the new record is durable everywhere; retire old ones.
     * An erase that fails only costs space until the next recovery, and
     * the newer generation wins meanwhile: the put has succeeded. */
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!(mask & (1u << r)))
            continue;
        /* A record left behind here would come back once a delete has
         * erased the newer one: after a failed erase, try once more (a
         * transient error is the common case; the chain walk skips what
         * is already erased). */
        if (old[r].desc != EKV_BLOCK_NONE) {
            uint32_t oldn =
                (uint32_t)record_blocks(s->bs, key_len, old[r].size);
            if (erase_chain(s, r, old[r].desc, oldn) != 0)
                (void)erase_chain(s, r, old[r].desc, oldn);
        }
        e->rep[r].desc = desc[r];
        e->rep[r].gen = gen;
        e->rep[r].size = (uint32_t)val_len;
    }
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
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!replica_active(s, r))
            continue;
        if (mode_free_count(s, r, count) < count)
            return EKV_ENOSPC;
        mask |= 1u << r;
    }

    ekv_entry *e = NULL;
    uint32_t gen = 0;
    ekv_slot old[EKV_MAX_REPLICAS] = {{0}}; /* zeroed: quiets the analyzer */
    err = put_prepare(s, key, key_len, &e, &gen, old);
    if (err)
        return err;
    uint32_t desc[EKV_MAX_REPLICAS];
    err = replica_before_change(s);
    if (!err)
        err = write_everywhere(s, mask, count, key, key_len, val, val_len,
                               gen, user_flags, desc);
    if (err) {
        mode_forget(s, e);
        return err;
    }
    put_retire(s, e, old, mask, desc, gen, key_len, val_len);
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
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENOENT;
    ekv_entry *e = mode_locate(s, key, key_len);
    if (!e)
        return s->lookup_err ? s->lookup_err : EKV_ENOENT;
    err = replica_before_change(s);
    if (err)
        return err;
    for (unsigned r = 0; r < nrep(s); r++) {
        ekv_slot *sl = &e->rep[r];
        if (sl->desc == EKV_BLOCK_NONE)
            continue;
        uint32_t n = (uint32_t)record_blocks(s->bs, key_len, sl->size);
        int rc = erase_chain(s, r, sl->desc, n);
        /* Once more after a failure, as put does: a flush error may have
         * dropped the erasures the cache still shows, and the descriptor
         * written again reaches the device with the next flush. */
        if (rc)
            rc = erase_chain(s, r, sl->desc, n);
        if (rc && !err)
            err = rc;
        /* A failed erase may have left the record whole or broken: a
         * read tells. A copy that no longer verifies is gone for every
         * reader, so it leaves the index (get would call it corrupt);
         * one that still reads whole, or cannot be read, stays. */
        if (!rc || read_record(s, r, sl, key, key_len, NULL) == EKV_ECORRUPT)
            sl->desc = EKV_BLOCK_NONE;
    }
    mode_forget(s, e);
    /* Scan mode: a block it could not read may hold another copy. */
    return err ? err : s->lookup_err;
}

#endif /* !EKV_READONLY */

/* ---- open / close ------------------------------------------------------- */

static int read_header(ekv_store *s, unsigned r, uint8_t *buf)
{
    ekv_device *d = s->rep[rep_index(r)].dev;
    ekv_replica_report *rep = &s->rep[rep_index(r)].report;
    if (!d->read || !geometry_supported(d->block_size, d->block_count))
        return EKV_EDOM;
    /* A replica dropped here misses every write until a repair, and its
     * stale records come back when it is next opened: a failed or
     * invalid header read is tried once more before that happens. */
    int err = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        err = io_result(s, d->read(d, 0, buf));
        if (!err)
            err = header_validate(buf, d->block_size, d->block_count);
        if (!err)
            break;
    }
    if (err == EKV_EBADHDR && replica_header_torn(buf, d->block_size,
                                                  d->block_count)) {
        rep->header_torn = 1; /* replica.c: an interrupted epoch change */
        err = 0;
    }
    if (!err) {
        rep->version_major = get_le16(buf + HDR_VMAJOR);
        rep->version_minor = get_le16(buf + HDR_VMINOR);
        rep->block_size = d->block_size;
        rep->block_count = d->block_count;
        rep->replica_id = get_le32(buf + HDR_REPLICA_ID);
        rep->format_seq = get_le32(buf + HDR_FORMAT_SEQ);
        rep->participants = get_le32(buf + HDR_FLAGS);
    }
    return err;
}

#ifndef EKV_NO_MALLOC
int ekv_read_header(ekv_device *dev, ekv_block_info *info)
{
    if (!dev || !dev->read)
        return EKV_EINVAL;
    if (!geometry_supported(dev->block_size, dev->block_count))
        return EKV_EDOM;
    const ekv_allocator *a = &ekv_default_allocator;
    uint8_t *buf = mem_alloc(a, dev->block_size);
    if (!buf)
        return EKV_ENOMEM;
    int err = dev->read(dev, 0, buf);
    if (err)
        err = err < 0 ? err : EKV_EIO;
    else
        err = header_validate(buf, dev->block_size, dev->block_count);
    if (info)
        ekv_block_decode(buf, dev->block_size, info);
    mem_free(a, buf, dev->block_size);
    return err;
}
#endif

static int rebuild(ekv_store *s)
{
    mode_release(s);
    int err = mode_init(s);
    for (unsigned r = 0; r < nrep(s) && !err; r++)
        if (replica_active(s, r))
            err = mode_recover(s, r);
    return err;
}

static size_t store_size(unsigned n)
{
#ifdef EKV_NO_INDEX
    /* Scan mode keeps its one scratch entry (s->tmp) after the replicas:
     * one allocation less to make and to undo. */
    return sizeof(ekv_store) + n * sizeof(ekv_replica) + sizeof(ekv_entry) +
           n * sizeof(ekv_slot);
#else
    return sizeof(ekv_store) + n * sizeof(ekv_replica);
#endif
}

/* EKV_STORE_MEMORY in embedkv.h must stay an upper bound. */
#ifdef EKV_NO_INDEX
_Static_assert(sizeof(ekv_store) + sizeof(ekv_entry) + 4 * 8 <= 256,
               "EKV_STORE_MEMORY: fixed part too small");
_Static_assert(sizeof(ekv_replica) + sizeof(ekv_slot) <= 128,
               "EKV_STORE_MEMORY: per-replica part too small");
#endif

size_t ekv_store_memory(uint32_t block_size, unsigned replicas)
{
    /* What an open store in scan mode holds; the indexed mode adds the
     * index and free maps (ekv_stats_get reports them). */
    return store_size(replicas) + (size_t)block_size * 3 + 4 * 8;
}

void ekv_close(ekv_store *s)
{
    if (!s)
        return;
    streams_drop(s);
    mode_release(s);
    mem_free(&s->alloc, s->rbuf, (size_t)s->bs * 3);
    ekv_allocator a = s->alloc;
    mem_free(&a, s, store_size(nrep(s)));
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
        opt->allocator ? opt->allocator : EKV_DEFAULT_ALLOCATOR;
    uint32_t hdr_size = 0;
    for (unsigned r = 0; r < n; r++) {
        if (!devs[r])
            return EKV_EINVAL;
        if (devs[r]->block_size > hdr_size &&
            devs[r]->block_size <= EKV_MAX_BLOCK_SIZE)
            hdr_size = devs[r]->block_size;
    }

    /* No allocator at all (EKV_NO_MALLOC and none given): no memory. */
    ekv_store *s = a ? mem_alloc(a, store_size(n)) : NULL;
    if (!s)
        return EKV_ENOMEM;
    memset(s, 0, store_size(n));
    s->alloc = *a;
    s->flags = opt->flags;
#ifdef EKV_READONLY
    s->flags |= EKV_OPEN_RDONLY;
#endif
    s->erase_byte = opt->erase_byte;
    s->n = n;

    /* Headers first; replica.c then settles geometry, identity and epochs
     * and says which replicas are used. One replica's block size is the
     * store's: its header is read into the block buffers, allocated once
     * (ekv_close frees them). A set reads its headers into a buffer of
     * their largest block size, and allocates the block buffers after. */
    const bool single = EKV_MAX_REPLICAS == 1;
    uint8_t *hdr = NULL;
    if (hdr_size)
        hdr = mem_alloc(&s->alloc, single ? (size_t)hdr_size * 3 : hdr_size);
    int err = hdr_size && !hdr ? EKV_ENOMEM : 0;
    for (unsigned r = 0; r < n && err != EKV_ENOMEM; r++) {
        s->rep[r].dev = devs[r];
        int rc = hdr ? read_header(s, r, hdr) : EKV_EDOM;
        if (!rc && !store_rdonly(s) && !devs[r]->write)
            rc = EKV_EROFS;
        s->rep[r].status = s->rep[r].report.status = rc;
    }
    if (single)
        s->rbuf = hdr;
    else
        mem_free(&s->alloc, hdr, hdr_size);
    if (!err)
        err = replica_settle(s);
    if (err)
        goto fail;

    err = EKV_ENOMEM;
    if (!single)
        s->rbuf = mem_alloc(&s->alloc, (size_t)s->bs * 3);
    if (!s->rbuf)
        goto fail;
    s->wbuf = s->rbuf + s->bs;
    s->ebuf = s->wbuf + s->bs;
    memset(s->ebuf, s->erase_byte, s->bs);
    err = rebuild(s);
#if !defined(EKV_READONLY) && !defined(EKV_NO_INDEX)
    if (!err && (s->flags & EKV_OPEN_HEAL) && !(s->flags & EKV_OPEN_RDONLY)) {
        /* A heal that could not finish leaves a usable store (stale
         * replicas stay out of use): the open succeeds and says why. */
        s->heal_err = replica_heal(s);
        if (s->heal_err == EKV_ENOMEM)
            err = EKV_ENOMEM;
    }
#endif
    if (err)
        goto fail;
    *out = s;
    return 0;
fail:
    ekv_close(s);
    return err ? err : EKV_EINVAL;
}

int ekv_recover(ekv_store *s)
{
    if (!s)
        return EKV_EINVAL;
    if (streams_open(s))
        return EKV_EBUSY; /* recovery would erase their chunks */
    return rebuild(s);
}

/* ---- stats and reports -------------------------------------------------- */

int ekv_stats_get(ekv_store *s, ekv_stats *st)
{
    if (!s || !st)
        return EKV_EINVAL;
    memset(st, 0, sizeof(*st));
    st->block_size = s->bs;
    st->block_count = s->bc;
    st->replicas = nrep(s);
    st->free_blocks = 0xffffffffu;
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!replica_active(s, r))
            continue;
        st->active_replicas++;
        uint32_t f = mode_free_count(s, r, s->bc);
        if (f < st->free_blocks)
            st->free_blocks = f;
    }
    if (!st->active_replicas)
        st->free_blocks = 0;
    st->used_blocks = s->bc ? s->bc - 1 - st->free_blocks : 0;
    st->records = mode_records(s);
    st->max_key_size = EKV_MAX_KEY_SIZE(s->bs);
    st->read_only = (s->flags & EKV_OPEN_RDONLY) != 0;
    st->io_errors = s->io_errors;
#if EKV_MAX_REPLICAS > 1
    st->epoch = s->format_seq;
    st->participants = s->mask;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r))
            st->missing |= 1u << (s->rep[r].report.replica_id & 31);
    st->missing = s->mask & ~st->missing;
#endif
#if !defined(EKV_NO_INDEX) && EKV_MAX_REPLICAS > 1
    st->healed_replicas = s->healed_replicas;
    st->healed_records = s->healed_records;
    st->heal_error = s->heal_err;
#endif
    st->memory_bytes = mode_memory(s, &st->index_bytes) + store_size(nrep(s)) +
                       (size_t)s->bs * 3 + streams_memory(s);
    return 0;
}

int ekv_replica_report_get(ekv_store *s, unsigned i, ekv_replica_report *r)
{
    if (!s || !r || i >= nrep(s))
        return EKV_EINVAL;
    if (replica_active(s, i))
        mode_report(s, i); /* read-only scanning build: computed now */
    *r = s->rep[i].report;
    return 0;
}

/* ---- format ------------------------------------------------------------- */

#ifndef EKV_READONLY
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
    const ekv_allocator *a =
        opt->allocator ? opt->allocator : EKV_DEFAULT_ALLOCATOR;
    uint32_t bs = devs[0]->block_size, bc = devs[0]->block_count;
    uint8_t *buf = mem_alloc(a, bs);
    if (!buf)
        return EKV_ENOMEM;
    /* One image keeps the upstream header byte for byte (flags 0); a set
     * records its participants in flags (replica.c). */
    uint32_t mask = opt->participants;
#if EKV_MAX_REPLICAS > 1
    for (unsigned r = 0; r < n && n > 1 && !opt->participants; r++)
        mask |= 1u << ((opt->replica_id_base + r) & 31);
#endif
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
                          opt->format_seq, mask);
            err = d->write(d, 0, buf);
        }
        if (!err && d->flush)
            err = d->flush(d);
        if (err > 0)
            err = EKV_EIO;
    }
    mem_free(a, buf, bs);
    return err;
}
#endif
