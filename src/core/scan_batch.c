/*
 * scan_batch.c - recovery's scan of a replica, many blocks per device call.
 *
 * A device with the optional read_blocks hook (an image file) is read in
 * batches into a buffer that lives only for the scan; one without it (a
 * flash with block-sized I/O) keeps one read() per block. Either way each
 * block is judged as dev_read() judges it, and a block whose CRC was
 * checked is marked sound (s->sound), so recovery checks it once:
 * - a batch that the device fails (any non-zero return) proves nothing:
 *   every block of its range is read again through dev_read(), with its
 *   retry;
 * - a block of a good batch that is neither a valid block nor uniformly
 *   erased (torn, or a bit flipped on the way) is read again through
 *   dev_read() as well, so a transient flip costs reads, never a record.
 * A device that also has zero_run tells where its storage reads as zeros
 * without being read (the holes of a sparse file): those blocks are free,
 * and the scan skips them.
 */
#include "ekv_internal.h"

#ifndef EKV_NO_INDEX

/* Bytes per batch: large enough that a system call per batch costs little
 * beside the CRC work, small enough to stay in a CPU cache. */
#define BATCH_BYTES (64u * 1024u)

void batch_open(ekv_store *s, unsigned r, scan_batch *sb)
{
    ekv_device *d = s->rep[r].dev;
    memset(sb, 0, sizeof(*sb));
    if (!d->read_blocks)
        return;
    uint32_t cap = BATCH_BYTES / s->bs;
    if (cap > s->bc - 1)
        cap = s->bc - 1;
    if (cap < 2)
        return; /* a block per call already: nothing to gain */
    sb->buf = mem_alloc(&s->alloc, (size_t)cap * s->bs);
    if (sb->buf)
        sb->cap = cap; /* else one read() per block, as without the hook */
}

void batch_close(ekv_store *s, scan_batch *sb)
{
    if (s->sound && sb->buf && s->sound >= sb->buf &&
        s->sound < sb->buf + (size_t)sb->cap * s->bs)
        s->sound = NULL;
    mem_free(&s->alloc, sb->buf, (size_t)sb->cap * s->bs);
    memset(sb, 0, sizeof(*sb));
}

uint32_t batch_zeros(ekv_store *s, unsigned r, scan_batch *sb, uint32_t b)
{
    ekv_device *d = s->rep[r].dev;
    if (!sb->cap || !d->zero_run ||
        (b >= sb->first && b - sb->first < sb->count))
        return 0;
    uint32_t z = d->zero_run(d, b, s->bc - b);
    return z > s->bc - b ? 0 : z; /* a wrong answer is not believed */
}

/* Read the batch that starts at block b. */
static void refill(ekv_store *s, unsigned r, scan_batch *sb, uint32_t b)
{
    ekv_device *d = s->rep[r].dev;
    uint32_t n = s->bc - b < sb->cap ? s->bc - b : sb->cap;
    sb->first = b;
    sb->count = n;
    sb->failed = d->read_blocks(d, b, n, sb->buf) != 0;
    if (sb->failed)
        s->io_errors++;
}

int batch_read(ekv_store *s, unsigned r, scan_batch *sb, uint32_t b,
               const uint8_t **out)
{
    if (sb->cap) {
        if (b < sb->first || b - sb->first >= sb->count)
            refill(s, r, sb, b);
        if (!sb->failed) {
            const uint8_t *p = sb->buf + (size_t)(b - sb->first) * s->bs;
            if (read_plausible(p, s->bs)) {
                /* read_plausible checked the CRC of a typed block. */
                s->sound = p[0] >= EKV_TYPE_HEADER && p[0] <= EKV_TYPE_CHUNK
                               ? p
                               : NULL;
                *out = p;
                return 0;
            }
        }
    }
    *out = s->rbuf;
    return dev_read(s, r, b, s->rbuf);
}

#endif /* !EKV_NO_INDEX */
