/*
 * mode_scan.c - the EKV_NO_INDEX mode: no key index and no free-block map.
 * Records and free blocks are found by reading the device, so the RAM a
 * store needs is fixed: the store struct and three block buffers
 * (ekv_store_memory() says how much). The price is time: get, put and
 * delete read every block of every replica once (plus the chains of the
 * matching records); recovery and iteration compare every descriptor with
 * every other one, O(blocks^2) reads, which small flash parts can afford.
 *
 * Buffers: rbuf takes every scanning read; wbuf holds the descriptor under
 * judgement while other blocks are read (put uses it only after locating);
 * ebuf stays a block of erase bytes.
 */
#include "ekv_internal.h"

#ifdef EKV_NO_INDEX

static bool is_free(const uint8_t *blk)
{
    /* No block type is 0x00 or 0xFF, so no CRC can make such a block
     * anything but free. */
    return blk[0] == 0x00 || blk[0] == 0xff;
}

/* Whether blk may be a descriptor of key: the cheap filter a scan applies
 * before read_record verifies the whole record (type, CRC, fields, chain).
 * The key comparison stays inside the block, as key_len is a valid key
 * length. */
static bool same_key(const uint8_t *blk, const uint8_t *key, size_t key_len)
{
    if (blk[0] != EKV_TYPE_DESCRIPTOR)
        return false;
    return get_le16(blk + DESC_KEY_SIZE) == key_len &&
           (!key_len ||
            memcmp(blk + EKV_DESCRIPTOR_HEADER_SIZE, key, key_len) == 0);
}

static ekv_slot slot_of(const uint8_t *blk, uint32_t b)
{
    ekv_slot sl;
    sl.desc = b;
    sl.gen = get_le32(blk + DESC_GENERATION);
    sl.size = get_le32(blk + DESC_TOTAL_SIZE);
    return sl;
}

/* The newest complete record of key on replica r, into s->tmp->rep[r]
 * (desc NONE if none). On equal generations the lower block wins, as the
 * scan meets it first. */
static void find_on_replica(ekv_store *s, unsigned r, const uint8_t *key,
                            size_t key_len)
{
    /* The answer goes to the scratch entry's slot r, which every caller
     * reads it from: no output pointer, no slot on a caller's stack. */
    ekv_slot *best = &s->tmp->rep[rep_index(r)];
    best->desc = EKV_BLOCK_NONE;
    for (uint32_t b = 1; b < s->bc; b++) {
        int err = dev_read(s, r, b, s->rbuf);
        if (err) {
            /* The unreadable block may be a newer copy of the key. */
            s->lookup_err = err;
            continue;
        }
        if (!same_key(s->rbuf, key, key_len))
            continue;
        /* Unverified yet: a corrupt block's generation only decides
         * whether read_record looks at it. */
        ekv_slot cand = slot_of(s->rbuf, b);
        if (best->desc != EKV_BLOCK_NONE && cand.gen <= best->gen)
            continue;
        err = read_record(s, r, &cand, key, key_len, NULL);
        if (err == 0)
            *best = cand;
        else if (err != EKV_ECORRUPT)
            s->lookup_err = err;
    }
}

/* Whether the complete record whose descriptor is in wbuf (at block d) is
 * the newest of its key on replica r: whether the record find_on_replica
 * picks (the highest generation, the lowest block on a tie) is d or, should
 * d fail to verify a second time (a read error), not better than d: then
 * the record is kept, the safe side. find_on_replica uses rbuf only, so the
 * key can stay in wbuf; it clobbers lookup_err, which each lookup sets
 * afresh. */
EKV_NOINLINE static bool is_newest(ekv_store *s, unsigned r, uint32_t d)
{
    /* find_on_replica answers in the scratch entry, not on the stack:
     * recovery's deepest path runs through here (mode_iterate, the only
     * other caller of judge, fills the scratch entry afresh after
     * judging). */
    const ekv_slot *best = &s->tmp->rep[rep_index(r)];
    uint32_t gen = get_le32(s->wbuf + DESC_GENERATION);
    find_on_replica(s, r, s->wbuf + EKV_DESCRIPTOR_HEADER_SIZE,
                    get_le16(s->wbuf + DESC_KEY_SIZE));
    return best->desc == EKV_BLOCK_NONE || best->gen < gen ||
           (best->gen == gen && best->desc >= d);
}

enum verdict { V_INCOMPLETE, V_STALE, V_KEPT };

/* Whether the record whose descriptor is at block d is complete; leaves
 * the descriptor in wbuf. Kept apart from judge (never inlined) so that
 * its slot is off the stack while is_newest scans: recovery's deepest
 * path runs through here. */
EKV_NOINLINE static bool complete(ekv_store *s, unsigned r, uint32_t d)
{
    /* read_record reads the descriptor again and verifies all of it
     * (type, CRC, fields) before the key or sizes taken here matter. */
    if (dev_read(s, r, d, s->wbuf) || s->wbuf[0] != EKV_TYPE_DESCRIPTOR)
        return false;
    ekv_slot sl = slot_of(s->wbuf, d);
    return read_record(s, r, &sl, s->wbuf + EKV_DESCRIPTOR_HEADER_SIZE,
                       get_le16(s->wbuf + DESC_KEY_SIZE), NULL) == 0;
}

/* Judge the record whose descriptor is at block d; leaves the descriptor
 * in wbuf. Inline in its callers, so that the stack under recovery is the
 * caller's frame, then complete's or is_newest's. */
EKV_ALWAYS_INLINE static inline enum verdict judge(ekv_store *s, unsigned r,
                                                   uint32_t d)
{
    if (!complete(s, r, d))
        return V_INCOMPLETE;
    return is_newest(s, r, d) ? V_KEPT : V_STALE;
}

/* Whether chunk block c belongs to a kept record: its owner is kept and
 * the owner's chain passes through c. */
static bool chunk_kept(ekv_store *s, unsigned r, uint32_t c, uint32_t owner)
{
    if (owner == 0 || owner >= s->bc || judge(s, r, owner) != V_KEPT)
        return false;
    uint32_t count = get_le32(s->wbuf + DESC_CHUNK_COUNT);
    uint32_t next = get_le32(s->wbuf + DESC_NEXT);
    for (uint32_t idx = 1; idx < count && next < s->bc; idx++) {
        if (next == c)
            return true;
        if (dev_read(s, r, next, s->rbuf))
            return false;
        next = get_le32(s->rbuf + CHUNK_NEXT);
    }
    return false;
}

/* Recovery of replica r: count and judge every block, erase what is not
 * kept (when writable), fill the replica's report. */
static int recover_replica(ekv_store *s, unsigned r)
{
    ekv_replica_report *rep = &s->rep[rep_index(r)].report;
    /* Every counter, free_blocks through keys (one run of eleven fields;
     * a field added among them must be a counter too). */
    _Static_assert(offsetof(ekv_replica_report, keys) -
                           offsetof(ekv_replica_report, free_blocks) ==
                       10 * sizeof(uint32_t),
                   "report counters are one run of fields");
    memset(&rep->free_blocks, 0,
           offsetof(ekv_replica_report, keys) + sizeof(rep->keys) -
               offsetof(ekv_replica_report, free_blocks));

    /* Erase what is not kept only when we may write and every block can
     * be read: an unreadable block might be the missing part of a record.
     * A writable store learns that in a first pass, which also counts the
     * free blocks' first bytes for EKV_OPEN_ERASE_AUTO; a read-only one
     * erases nothing and needs no such pass. */
    bool may_erase = !store_rdonly(s);
#ifndef EKV_READONLY
    for (uint32_t b = 1; b < s->bc && !store_rdonly(s); b++) {
        if (dev_read(s, r, b, s->rbuf)) {
            rep->unreadable_blocks++;
            may_erase = false;
        } else if (s->rbuf[0] == 0xff) {
            s->freeff++;
        } else if (s->rbuf[0] == 0x00) {
            s->free00++;
        }
    }
#endif
    decide_erase_byte(s);

    /* Count and judge every block; erase what is not kept. */
    for (uint32_t b = 1; b < s->bc; b++) {
        uint8_t *blk = s->rbuf;
        if (dev_read(s, r, b, blk)) {
            /* A writable store counted them in the first pass. */
            if (store_rdonly(s))
                rep->unreadable_blocks++;
            continue;
        }
        if (is_free(blk)) {
            rep->free_blocks++;
            continue;
        }
        bool keep = false;
        bool valid = (blk[0] == EKV_TYPE_DESCRIPTOR ||
                      blk[0] == EKV_TYPE_CHUNK) && read_crc_ok(s, blk);
        if (!valid) {
            rep->garbage_blocks++;
        } else if (blk[0] == EKV_TYPE_DESCRIPTOR) {
            rep->descriptor_blocks++;
            enum verdict v = judge(s, r, b);
            keep = v == V_KEPT;
            if (v == V_INCOMPLETE)
                rep->incomplete_records++;
            else
                rep->complete_records++;
            if (v == V_STALE)
                rep->stale_records++;
            if (keep)
                rep->keys++;
        } else {
            rep->chunk_blocks++;
            keep = chunk_sane(blk, s->bs) &&
                   chunk_kept(s, r, b, get_le32(blk + CHUNK_OWNER));
        }
        if (keep)
            continue;
        rep->erasable_blocks++;
        if (may_erase && dev_write(s, r, b, s->ebuf) == 0)
            rep->erased_blocks++;
    }
    if (may_erase && rep->erased_blocks) {
        if (dev_flush(s, r) != 0)
            rep->erased_blocks = 0;
        rep->free_blocks = mode_free_count(s, r, s->bc);
    }
    return 0;
}

#ifdef EKV_READONLY
/* A read-only build never erases and keeps nothing per key: every lookup
 * verifies the records it reads, so opening needs no recovery pass at all.
 * Only the replica's report needs one; it runs when the report is first
 * asked for (ekv_replica_report_get), not on every boot. */
int mode_recover(ekv_store *s, unsigned r)
{
    s->rep[r].report_due = true;
    return 0;
}

void mode_report(ekv_store *s, unsigned r)
{
    if (s->rep[r].report_due) {
        s->rep[r].report_due = false;
        (void)recover_replica(s, r);
    }
}
#else
int mode_recover(ekv_store *s, unsigned r)
{
    return recover_replica(s, r);
}
#endif

ekv_entry *mode_locate_or_add(ekv_store *s, const uint8_t *key,
                              size_t key_len)
{
    ekv_entry *e = s->tmp;
    e->key_len = (uint16_t)key_len;
    s->lookup_err = 0;
    for (unsigned r = 0; r < nrep(s); r++) {
        if (replica_active(s, r))
            find_on_replica(s, r, key, key_len);
        else
            e->rep[r].desc = EKV_BLOCK_NONE;
    }
    return e;
}

ekv_entry *mode_locate(ekv_store *s, const uint8_t *key, size_t key_len)
{
    ekv_entry *e = mode_locate_or_add(s, key, key_len);
    for (unsigned r = 0; r < nrep(s); r++)
        if (e->rep[r].desc != EKV_BLOCK_NONE)
            return e;
    return NULL;
}

/* The lowest free block of replica r from block b on, or EKV_BLOCK_NONE. */
static uint32_t next_free(ekv_store *s, unsigned r, uint32_t b)
{
    for (; b < s->bc; b++)
        if (dev_read(s, r, b, s->rbuf) == 0 && is_free(s->rbuf))
            return b;
    return EKV_BLOCK_NONE;
}

uint32_t mode_free_count(ekv_store *s, unsigned r, uint32_t need)
{
    uint32_t n = 0;
    for (uint32_t b = 0; n < need && (b = next_free(s, r, b + 1)) !=
                                         EKV_BLOCK_NONE;)
        n++;
    return n;
}

uint32_t mode_alloc(ekv_store *s, unsigned r, uint32_t after)
{
    /* EKV_BLOCK_NONE + 1 wraps to 0, and block 0 is the header: start at
     * 1 then. */
    return next_free(s, r, after == EKV_BLOCK_NONE ? 1 : after + 1);
}

int mode_iterate(ekv_store *s, int (*fn)(void *, const ekv_key_info *),
                 void *ctx)
{
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!replica_active(s, r))
            continue;
        for (uint32_t b = 1; b < s->bc; b++) {
            if (judge(s, r, b) != V_KEPT)
                continue;
            const uint8_t *key = s->wbuf + EKV_DESCRIPTOR_HEADER_SIZE;
            size_t key_len = get_le16(s->wbuf + DESC_KEY_SIZE);
            /* Reported already from an earlier replica? */
            bool seen = false;
            for (unsigned q = 0; q < r && !seen; q++) {
                if (!replica_active(s, q))
                    continue;
                find_on_replica(s, q, key, key_len);
                seen = s->tmp->rep[q].desc != EKV_BLOCK_NONE;
            }
            if (seen)
                continue;
            ekv_key_info info;
            fill_info(s, mode_locate_or_add(s, key, key_len), key, &info);
            int rc = fn(ctx, &info);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int count_one(void *ctx, const ekv_key_info *info)
{
    (void)info;
    (*(uint32_t *)ctx)++;
    return 0;
}

uint32_t mode_records(ekv_store *s)
{
    uint32_t n = 0;
    (void)mode_iterate(s, count_one, &n);
    return n;
}

size_t mode_memory(ekv_store *s, size_t *index_bytes)
{
    (void)s;
    *index_bytes = 0;
    return 0; /* the scratch entry is counted with the store */
}


#endif /* EKV_NO_INDEX */
