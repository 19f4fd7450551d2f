/*
 * stream.c - streamed puts (embedkv.h: ekv_stream_open and after).
 *
 * A record is written front to back, as ekv_put writes it, except for
 * two blocks: the descriptor, which holds the total size and the first
 * payload, is written last, by the commit; and the chunk being filled,
 * whose header must say whether another chunk follows, is written once
 * the first byte after it arrives (or by the commit, as the last one).
 * Blocks are taken in the order ekv_put takes them: the descriptor and
 * chunk 1 when the first byte past the first payload arrives, chunk i + 1
 * when chunk i is written. While a stream is open its blocks are marked
 * used in the free maps, and written chunks name a descriptor that does
 * not exist yet: to recovery they are orphans, erased after a crash.
 *
 * Indexed builds only: the scanning build finds free blocks by reading
 * them, and would hand out a block a stream holds but has not written.
 */
#include "ekv_internal.h"

#ifndef EKV_READONLY

#ifndef EKV_NO_INDEX

struct ekv_stream {
    ekv_store *s;
    ekv_stream *next; /* on s->streams */
    uint32_t user_flags;
    uint32_t mask;    /* replicas the stream writes */
    int err;          /* the first failure: the stream is dead */
    bool bumped;      /* replica_before_change done */
    uint32_t total;   /* value bytes received */
    uint32_t written; /* chunks written: 1 .. written */
    uint32_t held_len; /* bytes in the chunk being filled */
    uint32_t torn;    /* replicas whose held block saw a failed write */
    uint32_t desc[EKV_MAX_REPLICAS];  /* descriptor block, or NONE */
    uint32_t first[EKV_MAX_REPLICAS]; /* block of chunk 1, or NONE */
    uint32_t held[EKV_MAX_REPLICAS];  /* block of chunk written + 1 */
    size_t key_len;
    uint8_t *key;     /* key_len bytes, then the first payload, then the
                         chunk being filled (in this allocation) */
    uint8_t *head;
    uint8_t *chunk;
};

static size_t stream_bytes(const ekv_store *s, size_t key_len)
{
    return sizeof(ekv_stream) + key_len +
           first_capacity(s->bs, (uint32_t)key_len) + chunk_capacity(s->bs);
}

static bool stream_has(const ekv_stream *w, unsigned r)
{
    return (w->mask & (1u << r)) != 0;
}

int ekv_stream_open(ekv_store *s, ekv_stream **out, const void *key,
                    size_t key_len, uint32_t user_flags)
{
    if (!out)
        return EKV_EINVAL;
    *out = NULL;
    int err = check_writable(s);
    if (err)
        return err;
    if (!key && key_len)
        return EKV_EINVAL;
    if (key_len > EKV_MAX_KEY_SIZE(s->bs))
        return EKV_ENAMETOOLONG;
    ekv_stream *w = mem_alloc(&s->alloc, stream_bytes(s, key_len));
    if (!w)
        return EKV_ENOMEM;
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->user_flags = user_flags;
    w->key_len = key_len;
    w->key = (uint8_t *)(w + 1);
    w->head = w->key + key_len;
    w->chunk = w->head + first_capacity(s->bs, (uint32_t)key_len);
    if (key_len)
        memcpy(w->key, key, key_len);
    for (unsigned r = 0; r < nrep(s); r++) {
        w->desc[r] = w->first[r] = w->held[r] = EKV_BLOCK_NONE;
        if (replica_active(s, r))
            w->mask |= 1u << r;
    }
    w->next = s->streams;
    s->streams = w;
    *out = w;
    return 0;
}

/* Take a free block of replica r for w, or fail the stream. */
static int take(ekv_stream *w, unsigned r, uint32_t *b)
{
    *b = mode_alloc(w->s, r, EKV_BLOCK_NONE);
    return *b == EKV_BLOCK_NONE ? EKV_ENOSPC : 0;
}

/* The first byte past the first payload: take the descriptor's block and
 * chunk 1's, in that order, on every replica. */
static int start_chunks(ekv_stream *w)
{
    ekv_store *s = w->s;
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!stream_has(w, r))
            continue;
        int err = take(w, r, &w->desc[r]);
        if (!err)
            err = take(w, r, &w->held[r]);
        if (err)
            return err;
        w->first[r] = w->held[r];
    }
    return 0;
}

/* Write the chunk being filled, whose payload is p[0, len) (w->chunk, or
 * the caller's data when a whole chunk came in one piece), to its blocks,
 * pointing at `next[r]` (the block of the chunk after it, or NONE for the
 * last). */
static int write_held(ekv_stream *w, const uint32_t next[], const uint8_t *p,
                      uint32_t len)
{
    ekv_store *s = w->s;
    uint32_t idx = w->written + 1;
    if (!w->bumped) {
        /* Before the first change, as ekv_put does it. */
        int err = replica_before_change(s);
        if (err)
            return err;
        w->bumped = true;
    }
    for (unsigned r = 0; r < nrep(s); r++) {
        if (!stream_has(w, r))
            continue;
        size_t off = 0;
        uint8_t *blk = chunk_buffer(s, r, w->held[r]);
        record_block(s, blk, idx, w->desc[r], next[r], 0, w->key,
                     w->key_len, p, len, &off, 0, w->user_flags);
        int err = dev_write(s, r, w->held[r], blk);
        if (err) {
            w->torn |= 1u << r;
            return err;
        }
    }
    return 0;
}

/* The chunk being filled is full (payload p, ccap bytes) and more data
 * came: write it, pointing at a new block for the next one. */
static int emit(ekv_stream *w, const uint8_t *p, uint32_t ccap)
{
    ekv_store *s = w->s;
    uint32_t next[EKV_MAX_REPLICAS];
    int err = 0;
    unsigned r;
    for (r = 0; r < EKV_MAX_REPLICAS; r++)
        next[r] = EKV_BLOCK_NONE;
    for (r = 0; r < nrep(s) && !err; r++)
        if (stream_has(w, r))
            err = take(w, r, &next[r]);
    if (!err)
        err = write_held(w, next, p, ccap);
    if (err) {
        /* Give back what this call took: r replicas got a block. */
        for (unsigned u = 0; u < r; u++)
            if (next[u] != EKV_BLOCK_NONE)
                mode_release_block(s, u, next[u]);
        return err;
    }
    for (r = 0; r < nrep(s); r++)
        if (stream_has(w, r))
            w->held[r] = next[r];
    w->written++;
    w->held_len = 0;
    return 0;
}

int ekv_stream_write(ekv_stream *w, const void *data_, size_t len)
{
    const uint8_t *data = data_;
    if (!w || (!data && len))
        return EKV_EINVAL;
    if (w->err)
        return w->err;
    ekv_store *s = w->s;
    const uint32_t fcap = first_capacity(s->bs, (uint32_t)w->key_len);
    const uint32_t ccap = chunk_capacity(s->bs);
    if (len > 0xffffffffu - w->total ||
        record_blocks(s->bs, w->key_len, w->total + len) > s->bc - 1) {
        w->err = EKV_EFBIG;
        return w->err;
    }
    while (len) {
        size_t n;
        if (w->total < fcap) {
            n = fcap - w->total;
            if (n > len)
                n = len;
            memcpy(w->head + w->total, data, n);
        } else {
            int err = 0;
            if (w->total == fcap)
                err = start_chunks(w);
            else if (w->held_len == ccap)
                err = emit(w, w->chunk, ccap);
            if (!err && w->held_len == 0 && len > ccap) {
                /* A whole chunk with more after it in this call: written
                 * from data itself, the same chunk, one copy fewer. */
                err = emit(w, data, ccap);
                n = ccap;
            } else if (!err) {
                n = ccap - w->held_len;
                if (n > len)
                    n = len;
                memcpy(w->chunk + w->held_len, data, n);
                w->held_len += (uint32_t)n;
            }
            if (err) {
                w->err = err;
                return err;
            }
        }
        w->total += (uint32_t)n;
        data += n;
        len -= n;
    }
    return 0;
}

static void unlink_stream(ekv_stream *w)
{
    ekv_stream **p = &w->s->streams;
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p)
        *p = w->next;
}

/* Erase and give back everything w wrote or holds on replica r. The
 * erasures are flushed before any block goes back: the next put takes the
 * same blocks in the same order, so its descriptor would land where this
 * stream's would have, and a chunk of the stream still on the device
 * after a crash would name it as its owner, with the right index, and
 * pass for that put's chunk. */
static int undo_replica(ekv_stream *w, unsigned r, bool desc_written)
{
    ekv_store *s = w->s;
    int err = 0;
    bool wrote = desc_written || (w->torn & (1u << r)) != 0;
    if (w->first[r] != EKV_BLOCK_NONE &&
        erase_chunks(s, r, w->desc[r], w->first[r], w->written + 2, &err) >
            0)
        wrote = true;
    if (w->torn & (1u << r)) {
        int rc = dev_write(s, r, w->held[r], s->ebuf);
        if (rc && !err)
            err = rc;
    }
    if (desc_written) {
        int rc = dev_write(s, r, w->desc[r], s->ebuf);
        if (rc && !err)
            err = rc;
    }
    if (wrote) {
        int rc = dev_flush(s, r);
        if (rc && !err)
            err = rc;
    }
    /* The held and descriptor blocks: reserved, or erased now. After a
     * failure they stay out of use until the next recovery erases them:
     * the chunks erase_chunks gave back then name a descriptor block that
     * nothing else can be given. (Nothing takes a block between their
     * release and the flush above.) */
    if (!err) {
        if (w->held[r] != EKV_BLOCK_NONE)
            mode_release_block(s, r, w->held[r]);
        if (w->desc[r] != EKV_BLOCK_NONE)
            mode_release_block(s, r, w->desc[r]);
    }
    return err;
}

static void stream_free(ekv_stream *w)
{
    unlink_stream(w);
    mem_free(&w->s->alloc, w, stream_bytes(w->s, w->key_len));
}

size_t streams_memory(const ekv_store *s)
{
    size_t n = 0;
    for (const ekv_stream *w = s->streams; w; w = w->next)
        n += stream_bytes(s, w->key_len);
    return n;
}

void streams_lost(ekv_store *s, unsigned r, int err)
{
    /* A stream that has written nothing yet lost nothing. */
    for (ekv_stream *w = s->streams; w; w = w->next)
        if (stream_has(w, r) && (w->written || w->torn) && !w->err)
            w->err = err;
}

void streams_drop(ekv_store *s)
{
    while (s->streams)
        stream_free(s->streams);
}

/* Undo w on every replica (`described`: those whose descriptor write
 * began) and free it. */
static void undo_and_free(ekv_stream *w, uint32_t described)
{
    for (unsigned r = 0; r < nrep(w->s); r++)
        if (stream_has(w, r))
            (void)undo_replica(w, r, (described & (1u << r)) != 0);
    stream_free(w);
}

void ekv_stream_abandon(ekv_stream *w)
{
    if (w)
        undo_and_free(w, 0);
}

int ekv_stream_commit(ekv_stream *w)
{
    if (!w)
        return EKV_EINVAL;
    ekv_store *s = w->s;
    int err = w->err;
    if (err) {
        ekv_stream_abandon(w);
        return err;
    }
    const bool chained = w->total >
                         first_capacity(s->bs, (uint32_t)w->key_len);
    const uint32_t count = chained ? w->written + 2 : 1;
    ekv_entry *e = NULL;
    uint32_t gen = 0;
    ekv_slot old[EKV_MAX_REPLICAS] = {{0}};
    err = put_prepare(s, w->key, w->key_len, &e, &gen, old);
    if (err) {
        ekv_stream_abandon(w);
        return err;
    }
    if (!w->bumped) {
        err = replica_before_change(s);
        w->bumped = !err;
    }
    /* A record that fits its descriptor takes its block now. */
    for (unsigned r = 0; r < nrep(s) && !err && !chained; r++)
        if (stream_has(w, r))
            err = take(w, r, &w->desc[r]);
    uint32_t last[EKV_MAX_REPLICAS];
    for (unsigned r = 0; r < EKV_MAX_REPLICAS; r++)
        last[r] = EKV_BLOCK_NONE;
    if (!err && chained)
        err = write_held(w, last, w->chunk, w->held_len);
    /* Then the descriptor and a flush, replica after replica. */
    uint32_t described = 0; /* replicas whose descriptor write began */
    for (unsigned r = 0; r < nrep(s) && !err; r++) {
        if (!stream_has(w, r))
            continue;
        size_t off = 0;
        record_block(s, s->wbuf, 0, w->desc[r],
                     chained ? w->first[r] : EKV_BLOCK_NONE, count, w->key,
                     w->key_len, w->head, w->total, &off, gen,
                     w->user_flags);
        described |= 1u << r;
        err = dev_write(s, r, w->desc[r], s->wbuf);
        if (!err)
            err = dev_flush(s, r);
    }
    if (err) {
        /* Nothing of the new value may survive: erase it everywhere (some
         * descriptors may be on the devices, flushed) and make that
         * durable before the caller hears of the failure. */
        mode_forget(s, e);
        undo_and_free(w, described);
        return err;
    }
    put_retire(s, e, old, w->mask, w->desc, gen, w->key_len, w->total);
    stream_free(w);
    return 0;
}

#else /* EKV_NO_INDEX */

int ekv_stream_open(ekv_store *s, ekv_stream **out, const void *key,
                    size_t key_len, uint32_t user_flags)
{
    (void)s, (void)key, (void)key_len, (void)user_flags;
    if (out)
        *out = NULL;
    return EKV_ENOSYS;
}

int ekv_stream_write(ekv_stream *w, const void *data, size_t len)
{
    (void)w, (void)data, (void)len;
    return EKV_EINVAL;
}

int ekv_stream_commit(ekv_stream *w)
{
    (void)w;
    return EKV_EINVAL;
}

void ekv_stream_abandon(ekv_stream *w)
{
    (void)w;
}

#endif /* EKV_NO_INDEX */

#endif /* !EKV_READONLY */
