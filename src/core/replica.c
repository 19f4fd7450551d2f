/*
 * replica.c - every rule about a set of replicas, in one place.
 *
 * The format (FORMAT.md) gives each storage header a replica_id, a
 * format_seq and a flags field. Upstream (Go, Rust) stores format_seq and
 * flags and never acts on them; this library gives them a meaning:
 *
 * - format_seq is the set's EPOCH. Every replica that took part in every
 *   write of the store carries the newest epoch, E (the highest format_seq
 *   among valid headers).
 * - flags is the PARTICIPANT MASK of that epoch: bit (replica_id & 31) is
 *   set for each replica that received every write made at epoch E. Zero
 *   means "every replica named" (what upstream writes and what one image
 *   keeps, byte for byte the upstream header).
 *
 * Rules at open (replica_settle):
 * - geometry: every replica must have the block size and count of the
 *   others, else EKV_EDOM. Degraded, the geometry most replicas share wins
 *   (a tie goes to the first image named with a valid header); the others
 *   are dropped with EKV_EDOM.
 * - identity: two valid headers with one replica_id (or one mask bit) are
 *   two stores, not one: EKV_ENOTUNIQ, whatever the flags (EKV_OPEN_FORCE,
 *   for repair only, keeps the first and drops the rest).
 * - epochs: a replica whose format_seq is below E missed writes: it is
 *   STALE (EKV_ESTALE), never read nor copied from, provided a replica at
 *   E took part in its epoch (its mask names one): that one holds every
 *   write made then. Replicas at E must carry one mask and be in it; if
 *   not, or if no replica at E took part in a lower replica's epoch, they
 *   were written apart (opened without each other and changed):
 *   EKV_ENOTUNIQ, nothing is merged.
 * - a participant of E that is not in use (stale, dropped, not given) makes
 *   the set incomplete. Read-only opens go on with what is current. A
 *   writable open needs EKV_OPEN_DEGRADED for a dropped or absent replica
 *   (else the drop error, or EKV_ENXIO), and EKV_OPEN_DEGRADED or
 *   EKV_OPEN_HEAL for a stale one (else EKV_ESTALE).
 *
 * The bump (replica_before_change): before the first change of a store
 * whose epoch has a participant not in use, every active replica gets a
 * header with format_seq E+1 and the mask of the active replicas, each
 * written and flushed in turn. A crash at any write of it is safe: replicas
 * already at E+1 are the current ones (they hold everything, as no data was
 * written yet); those still at E are stale from then on and get rebuilt; a
 * torn header makes its replica invalid, dropped until repair. Whatever
 * survives, no replica that misses the writes to come can carry the epoch
 * of the replicas that get them.
 *
 * Heal and repair (replica_heal, ekv_repair; indexed mode only): current
 * replicas that diverged (a crash between the replicas of one put) get
 * each key's newest record, written and flushed before the older copy is
 * erased; a stale replica (and, for repair, a dropped one) is emptied,
 * refilled with every key, and only then do the headers change: every
 * current replica first, the rebuilt ones last, all to E+1 with the full
 * mask. A crash before that leaves the rebuilt replica stale (or invalid),
 * rebuilt again next time; a crash in between leaves some replicas at E+1
 * (all holding every key) and the rest stale: never two masks at one
 * epoch.
 */
#include "ekv_internal.h"

#if EKV_MAX_REPLICAS > 1

static uint32_t id_bit(uint32_t id)
{
    return 1u << (id & 31);
}

static uint32_t active_mask(const ekv_store *s)
{
    uint32_t m = 0;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r))
            m |= id_bit(s->rep[r].report.replica_id);
    return m;
}

/* Torn headers. The only header writes after format are this file's
 * (bump, heal, repair), and each rewrites format_seq and flags (bytes 20
 * to 27) and the CRC, nothing else. A write cut half way leaves the fixed
 * fields whole and the CRC wrong, with format_seq (and flags) old or new.
 * Such a replica is used: when its header was written it held every
 * record the others held (no data is written while headers change), and
 * the epoch it shows is the old or the new one, so it ranks with the
 * replicas written before or after it. Its mask is not trusted. Dropping
 * it instead would lose the store when it is the only replica left. */
bool replica_header_torn(const uint8_t *buf, uint32_t bs, uint32_t bc)
{
    if (buf[0] != EKV_TYPE_HEADER || memcmp(buf + HDR_MAGIC, "EKV", 3) != 0 ||
        get_le16(buf + HDR_VMAJOR) != EKV_FORMAT_VERSION_MAJOR ||
        get_le32(buf + HDR_BLOCK_SIZE) != bs ||
        get_le32(buf + HDR_BLOCK_COUNT) != bc || block_crc_ok(buf, bs))
        return false;
    /* The padding is zero in the old and the new header alike: anything
     * else there is damage, not a torn rewrite. */
    for (uint32_t i = HDR_SIZE; i < bs - EKV_CRC_SIZE; i++)
        if (buf[i])
            return false;
    return true;
}

static void drop(ekv_store *s, unsigned r, int why)
{
    s->rep[r].status = s->rep[r].report.status = why;
}

/* The geometry most valid headers share; a tie goes to the first. */
static int settle_geometry(ekv_store *s)
{
    int best = -1;
    unsigned best_votes = 0;
    bool mixed = false;
    for (unsigned r = 0; r < s->n; r++) {
        if (!replica_active(s, r))
            continue;
        const ekv_device *d = s->rep[r].dev;
        unsigned votes = 0;
        for (unsigned q = 0; q < s->n; q++)
            if (replica_active(s, q) &&
                s->rep[q].dev->block_size == d->block_size &&
                s->rep[q].dev->block_count == d->block_count)
                votes++;
            else if (replica_active(s, q))
                mixed = true;
        if (votes > best_votes) {
            best_votes = votes;
            best = (int)r;
        }
    }
    if (best < 0)
        return 0; /* no valid header: the caller reports the first error */
    s->bs = s->rep[best].dev->block_size;
    s->bc = s->rep[best].dev->block_count;
    /* A device of another geometry is no replica of this store, whatever
     * else is wrong with it (an unreadable header included). */
    for (unsigned r = 0; r < s->n; r++)
        if (s->rep[r].dev->block_size != s->bs ||
            s->rep[r].dev->block_count != s->bc)
            drop(s, r, EKV_EDOM);
    return mixed && !(s->flags & EKV_OPEN_DEGRADED) ? EKV_EDOM : 0;
}

/* Two valid headers with one replica_id are two stores. */
static int settle_identity(ekv_store *s)
{
    int err = 0;
    for (unsigned r = 0; r < s->n; r++)
        for (unsigned q = r + 1; q < s->n; q++)
            if (replica_active(s, r) && replica_active(s, q) &&
                id_bit(s->rep[r].report.replica_id) ==
                    id_bit(s->rep[q].report.replica_id)) {
                drop(s, q, EKV_ENOTUNIQ);
                err = EKV_ENOTUNIQ;
            }
    return (s->flags & EKV_OPEN_FORCE) ? 0 : err;
}

/* Epochs and participants: stale replicas, split brain, the mask. */
static int settle_epoch(ekv_store *s)
{
    uint32_t epoch = 0;
    int first = -1;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r) && s->rep[r].report.format_seq >= epoch) {
            epoch = s->rep[r].report.format_seq;
        }
    /* A replica below E is stale only if a replica at E took part in its
     * epoch (its mask names one, or is 0: every replica named): that one
     * received every write made at that epoch and carried it on. If none
     * did, the replica was changed apart from them (opened without them
     * and written, at an epoch of its own) and may hold writes they never
     * saw: refused like two masks at E, never rebuilt over. A torn
     * header's mask is not trusted: stale, as before. */
    uint32_t at_epoch = 0;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r) && s->rep[r].report.format_seq == epoch)
            at_epoch |= id_bit(s->rep[r].report.replica_id);
    bool apart = false;
    for (unsigned r = 0; r < s->n; r++) {
        if (!replica_active(s, r))
            continue;
        const ekv_replica_report *rp = &s->rep[r].report;
        if (rp->format_seq < epoch) {
            if (!rp->header_torn && rp->participants &&
                !(rp->participants & at_epoch)) {
                drop(s, r, EKV_ENOTUNIQ);
                apart = true;
            } else {
                drop(s, r, EKV_ESTALE);
            }
        } else if (first < 0) {
            first = (int)r;
        }
    }
    if (apart && !(s->flags & EKV_OPEN_FORCE))
        return EKV_ENOTUNIQ;
    if (first < 0)
        return 0;
    /* The mask of the first whole header at E (a torn one's is not
     * trusted). */
    for (unsigned r = (unsigned)first; r < s->n; r++)
        if (replica_active(s, r) && !s->rep[r].report.header_torn) {
            first = (int)r;
            break;
        }
    uint32_t mask = s->rep[first].report.header_torn
                        ? 0
                        : s->rep[first].report.participants;
    int err = 0;
    bool torn = false;
    for (unsigned r = 0; r < s->n; r++) {
        if (!replica_active(s, r))
            continue;
        const ekv_replica_report *rp = &s->rep[r].report;
        if (rp->header_torn) {
            torn = true;
            continue;
        }
        if (rp->participants != mask ||
            (mask && !(mask & id_bit(rp->replica_id)))) {
            /* Written apart: refused, or (forced) the first one kept. */
            drop(s, r, EKV_ENOTUNIQ);
            err = EKV_ENOTUNIQ;
        }
    }
    if (err && !(s->flags & EKV_OPEN_FORCE))
        return err;
    s->format_seq = epoch;
    s->id_base = s->rep[first].report.replica_id - (uint32_t)first;
    if (!mask) {
        /* Every replica named took part: those whose header tells their
         * id by it, the others by their place in the list. */
        for (unsigned r = 0; r < s->n; r++)
            mask |= id_bit(s->rep[r].report.status == 0 ||
                                   s->rep[r].report.status == EKV_ESTALE
                               ? s->rep[r].report.replica_id
                               : s->id_base + r);
    }
    s->mask = mask;
    /* A torn header is rewritten by the next change (a new epoch). */
    s->need_bump = torn;
    return 0;
}

int replica_settle(ekv_store *s)
{
    int err = settle_geometry(s);
    if (!err)
        err = settle_identity(s);
    if (!err)
        err = settle_epoch(s);
    if (err)
        return err;
    const bool writable = !(s->flags & EKV_OPEN_RDONLY);
    const bool degraded = (s->flags & EKV_OPEN_DEGRADED) != 0;
    int dropped = 0, first_err = 0;
    uint32_t stale = 0;
    for (unsigned r = 0; r < s->n; r++) {
        int st = s->rep[r].status;
        if (st == EKV_ESTALE)
            stale |= id_bit(s->rep[r].report.replica_id);
        else if (st && !dropped)
            dropped = st;
        if (st && !first_err)
            first_err = st;
    }
    uint32_t active = active_mask(s);
    if (!active)
        return first_err ? first_err : EKV_EINVAL;
    if (dropped && !degraded)
        return dropped;
    uint32_t missing = s->mask & ~active;
#ifdef EKV_NO_INDEX
    const bool can_heal = false; /* heal walks the index */
#else
    const bool can_heal = (s->flags & EKV_OPEN_HEAL) != 0;
#endif
    if (writable && stale && !degraded && !can_heal)
        return EKV_ESTALE;
    if (writable && (missing & ~stale) && !degraded)
        return EKV_ENXIO;
    s->need_bump = writable && (missing || s->need_bump);
    return 0;
}

#ifndef EKV_READONLY

/* Write replica r's header: its id, this epoch and mask; flushed. */
static int write_header(ekv_store *s, unsigned r, uint32_t id, uint32_t epoch,
                        uint32_t mask)
{
    if (s->sound == s->wbuf)
        s->sound = NULL;
    header_encode(s->wbuf, s->bs, s->bc, id, epoch, mask);
    /* A failed header write may have scrambled the block: once more, so a
     * transient error does not cost the replica its header. */
    int err = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        err = dev_write(s, r, 0, s->wbuf);
        if (!err)
            err = dev_flush(s, r);
        if (!err)
            break;
    }
    if (!err) {
        ekv_replica_report *rp = &s->rep[r].report;
        rp->replica_id = id;
        rp->format_seq = epoch;
        rp->participants = mask;
        rp->version_major = EKV_FORMAT_VERSION_MAJOR;
        rp->version_minor = EKV_FORMAT_VERSION_MINOR;
        rp->block_size = s->bs;
        rp->block_count = s->bc;
        rp->header_torn = 0;
    }
    return err;
}

int replica_before_change(ekv_store *s)
{
    if (!s->need_bump)
        return 0;
    if (s->format_seq == 0xffffffffu)
        return EKV_ERANGE;
    uint32_t epoch = s->format_seq + 1, mask = active_mask(s);
    /* From the first header written on, some replica may carry the new
     * epoch: a retry after a failure must go one further. */
    s->format_seq = epoch;
    s->mask = mask;
    for (unsigned r = 0; r < s->n; r++) {
        if (!replica_active(s, r))
            continue;
        int err = write_header(s, r, s->rep[r].report.replica_id, epoch,
                               mask);
        if (err)
            return err;
    }
    s->need_bump = false;
    return 0;
}

#endif /* !EKV_READONLY */

/* ---- heal and repair (indexed mode) ----------------------------------- */

#if !defined(EKV_READONLY) && !defined(EKV_NO_INDEX)

/* Erase every data block of replica r and flush: from here on it holds
 * nothing, and its header (untouched) still keeps it out of use. Every
 * block is written, even one that reads free: after a failed flush the
 * device may hold what reads no longer show. */
static int empty_replica(ekv_store *s, unsigned r)
{
    ekv_device *d = s->rep[r].dev;
    if (d->block_size != s->bs || d->block_count != s->bc || !d->write)
        return s->rep[r].status;
    int err = 0;
    for (uint32_t b = 1; b < s->bc && !err; b++)
        err = dev_write(s, r, b, s->ebuf);
    if (!err)
        err = dev_flush(s, r);
    if (!err)
        err = mode_reset_replica(s, r);
    return err;
}

/* Make replica r hold generation best->gen of entry e with value val:
 * written and flushed before the copy it replaces is erased. */
static int copy_to_replica(ekv_store *s, ekv_entry *e, unsigned r,
                           const uint8_t *val, const ekv_slot *best,
                           uint32_t user_flags)
{
    uint32_t count = (uint32_t)record_blocks(s->bs, e->key_len, best->size);
    if (mode_free_count(s, r, count) < count)
        return EKV_ENOSPC;
    uint32_t desc[EKV_MAX_REPLICAS];
    int err = write_everywhere(s, 1u << r, count, entry_key(e, s->n),
                               e->key_len, val, best->size, best->gen,
                               user_flags, desc);
    if (err)
        return err;
    ekv_slot *sl = &e->rep[r];
    if (sl->desc != EKV_BLOCK_NONE)
        (void)erase_chain(s, r, sl->desc, 0);
    sl->desc = desc[r];
    sl->gen = best->gen;
    sl->size = best->size;
    s->rep[r].report.copied++;
    s->healed_records++;
    return 0;
}

typedef struct valbuf {
    uint8_t *p;
    size_t cap; /* each half: the source value, and a copy to compare */
} valbuf;

static int valbuf_fit(ekv_store *s, valbuf *v, uint32_t size)
{
    if (v->p && size <= v->cap)
        return 0;
    mem_free(&s->alloc, v->p, 2 * v->cap);
    v->cap = size ? size : 1;
    v->p = mem_alloc(&s->alloc, 2 * v->cap);
    return v->p ? 0 : EKV_ENOMEM;
}

/* Bring every replica of `targets` (a mask of list positions) to the
 * newest verifying record of entry e. full: compare
 * the bytes of copies of equal generation too (repair). */
static int reconcile_entry(ekv_store *s, ekv_entry *e, uint32_t targets,
                           bool full, valbuf *v, int *first_err,
                           uint32_t *lacking)
{
    const uint8_t *key = entry_key(e, s->n);
    unsigned order[EKV_MAX_REPLICAS];
    unsigned n = copies_in_order(s, e, order);
    if (!n)
        return 0;
    const ekv_slot *top = &e->rep[order[0]];
    if (!full) {
        /* Heal trusts the index: replicas that list one generation and
         * size agree (only replicas written apart, which the epochs
         * refuse, could differ there). No I/O for an agreeing key. */
        bool agree = true;
        for (unsigned r = 0; r < s->n && agree; r++)
            if ((targets & (1u << r)) &&
                (e->rep[r].desc == EKV_BLOCK_NONE ||
                 e->rep[r].gen != top->gen || e->rep[r].size != top->size))
                agree = false;
        if (agree)
            return 0;
    }
    /* The best copy that verifies is the source. */
    int src = -1, ioerr = 0;
    for (unsigned k = 0; k < n && src < 0; k++) {
        ekv_slot *sl = &e->rep[order[k]];
        if (valbuf_fit(s, v, sl->size))
            return EKV_ENOMEM;
        int rc = read_record(s, order[k], sl, key, e->key_len, v->p);
        if (rc == 0)
            src = (int)order[k];
        else if (rc != EKV_ECORRUPT && !ioerr)
            ioerr = rc;
    }
    /* No copy verifies. One that could not be read may be sound, so the
     * replicas are not known to agree: say so. */
    if (src < 0) {
        if (ioerr && !*first_err)
            *first_err = ioerr;
        if (ioerr)
            *lacking = targets; /* nobody is known to hold it */
        return 0;
    }
    ekv_slot best = e->rep[src];
    uint32_t user_flags = 0;
    if (dev_read(s, (unsigned)src, best.desc, s->rbuf) == 0)
        user_flags = get_le32(s->rbuf + DESC_USER_FLAGS);
    for (unsigned r = 0; r < s->n; r++) {
        if (!(targets & (1u << r)) || (int)r == src)
            continue;
        ekv_slot *sl = &e->rep[r];
        /* Repair: the same generation is not enough, keep a copy only if
         * it holds the source's bytes. */
        if (sl->desc != EKV_BLOCK_NONE && sl->gen == best.gen &&
            sl->size == best.size &&
            (!full ||
             (read_record(s, r, sl, key, e->key_len, v->p + v->cap) == 0 &&
              (!best.size || memcmp(v->p, v->p + v->cap, best.size) == 0))))
            continue;
        /* No new epoch before this copy, even with a participant absent:
         * it spreads a record some current replica already holds, and a
         * crash half way through a bump now could leave the only complete
         * copy of a key on a replica that the bump made stale. */
        int rc = copy_to_replica(s, e, r, v->p, &best, user_flags);
        if (rc && !*first_err)
            *first_err = rc;
        if (rc)
            *lacking |= 1u << r;
    }
    return 0;
}

/* An id for a revived replica at list position r: its place in the
 * numbering if free, else the first free one. */
static uint32_t free_id(ekv_store *s, unsigned r, uint32_t used)
{
    uint32_t id = s->id_base + r;
    for (uint32_t k = 0; k < 32 && (used & id_bit(id)); k++)
        id = s->id_base + k;
    return id;
}

static int heal_steps(ekv_store *s, bool full, uint32_t *emptied);

/* A replica emptied for a rebuild that did not finish holds copies the
 * index points at: forget them, it stays out of use (and is emptied again
 * by the next heal or repair). */
static int heal(ekv_store *s, bool full)
{
    uint32_t emptied = 0;
    int err = heal_steps(s, full, &emptied);
    for (unsigned r = 0; r < s->n; r++) {
        if (!(emptied & (1u << r)) || replica_active(s, r))
            continue;
        uint32_t pos = 0;
        ekv_entry *e;
        while ((e = mode_next_entry(s, &pos)) != NULL)
            e->rep[r].desc = EKV_BLOCK_NONE;
    }
    return err;
}

static int heal_steps(ekv_store *s, bool full, uint32_t *emptied)
{
    int first_err = 0, revive_err = 0;
    uint32_t rebuilding = 0;
    /* Stale replicas (and, for repair, dropped ones) are emptied: none of
     * their records can be trusted (a key deleted since, or re-created
     * with a generation they already hold). One that cannot be (another
     * geometry, a failing device) stays out of use; the others go on. */
    for (unsigned r = 0; r < s->n; r++) {
        int st = s->rep[r].status;
        if (!st || (st != EKV_ESTALE && !full))
            continue;
        int err = empty_replica(s, r);
        if (err == EKV_ENOMEM)
            return err;
        if (err && !revive_err)
            revive_err = err;
        if (!err)
            rebuilding |= 1u << r;
    }
    *emptied = rebuilding;
    uint32_t targets = rebuilding;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r))
            targets |= 1u << r;

    valbuf v = {NULL, 0};
    uint32_t pos = 0, lacking = 0;
    ekv_entry *e;
    int err = 0;
    while (!err && (e = mode_next_entry(s, &pos)) != NULL)
        err = reconcile_entry(s, e, targets, full, &v, &first_err, &lacking);
    mem_free(&s->alloc, v.p, 2 * v.cap);
    if (err)
        return err;
    /* A new epoch only once every current replica and every rebuilt one
     * that joins holds every key: after a failed copy to a current
     * replica, a crash during the header writes could make stale the one
     * replica that holds some key. A rebuilt replica that missed a copy
     * stays out of use (stale or invalid) until a later heal or repair. */
    rebuilding &= ~lacking;
    bool current_lacks = false;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r) && (lacking & (1u << r)))
            current_lacks = true;
    if (!rebuilding || current_lacks)
        return revive_err ? revive_err : first_err;

    /* Every rebuilt replica holds every key: a new epoch with all of them,
     * current replicas first, rebuilt ones last. */
    if (s->format_seq == 0xffffffffu)
        return EKV_ERANGE;
    uint32_t epoch = s->format_seq + 1, mask = active_mask(s);
    uint32_t ids[EKV_MAX_REPLICAS] = {0};
    for (unsigned r = 0; r < s->n; r++) {
        if (!(rebuilding & (1u << r)))
            continue;
        ids[r] = s->rep[r].status == EKV_ESTALE
                     ? s->rep[r].report.replica_id
                     : free_id(s, r, mask);
        mask |= id_bit(ids[r]);
    }
    s->format_seq = epoch;
    s->mask = mask;
    s->need_bump = true; /* until every header below is written */
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned r = 0; r < s->n; r++) {
            bool rebuilt = (rebuilding & (1u << r)) != 0;
            if (rebuilt != (pass == 1) || (!rebuilt && !replica_active(s, r)))
                continue;
            uint32_t id = rebuilt ? ids[r] : s->rep[r].report.replica_id;
            err = write_header(s, r, id, epoch, mask);
            if (err)
                return err; /* the rest stay out of use: stale or invalid */
            if (rebuilt) {
                s->rep[r].status = s->rep[r].report.status = 0;
                s->rep[r].report.healed = 1;
                s->healed_replicas++;
            }
        }
    s->need_bump = false;
    return revive_err ? revive_err : first_err;
}

int replica_heal(ekv_store *s)
{
    int err = heal(s, false);
    /* A header an interrupted epoch change left torn is rewritten now (a
     * new epoch, header writes only), so upstream can read it again. */
    bool torn = false;
    for (unsigned r = 0; r < s->n; r++)
        if (replica_active(s, r) && s->rep[r].report.header_torn)
            torn = true;
    if (!err && torn)
        err = replica_before_change(s);
    return err;
}

#endif /* !EKV_READONLY && !EKV_NO_INDEX (scan mode cannot heal:
          replica_settle refused or dropped every stale replica) */

#endif /* EKV_MAX_REPLICAS > 1 */

#ifndef EKV_READONLY
/* ekv_repair: heal with everything: dropped replicas revived, copies of
 * equal generation compared byte for byte. */
int ekv_repair(ekv_store *s, uint32_t *copied)
{
    if (copied)
        *copied = 0;
    if (!s)
        return EKV_EINVAL;
    if (s->flags & EKV_OPEN_RDONLY)
        return EKV_EROFS;
#if defined(EKV_NO_INDEX) || EKV_MAX_REPLICAS == 1
    return EKV_ENOSYS; /* repair walks the index, over several replicas */
#else
    if (streams_open(s))
        return EKV_EBUSY; /* rebuilding would erase their chunks */
    uint32_t before = s->healed_records;
    int err = heal(s, true);
    if (copied)
        *copied = s->healed_records - before;
    return err;
#endif
}
#endif
