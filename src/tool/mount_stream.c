/*
 * mount_stream.c - a large file written front to back reaches the images
 * while it is written, not all at its close.
 *
 * A writer's content lives in memory (struct node) and the close stores
 * it with one put, an atomic replace. For a large value most of that put
 * is writing blocks that could have been written while the data came in.
 * So once a node's content reaches STREAM_FROM bytes through writes at
 * its end, a streamed put (libembedkv's ekv_stream_*) follows the content:
 * every write at or past the streamed part passes the new bytes on, and
 * the close that stores the content hands the stream the rest and
 * commits it, which writes the last chunk and the descriptor and flushes.
 * Nothing of a stream is a value until that commit: the stored value, and
 * what every reader sees, is exactly what it was without streaming.
 *
 * The stream only follows; the content in memory stays the truth. When
 * the content changes below what was streamed (a write there, a truncate
 * below it, a rename, an unlink), or the stream fails (ENOSPC, EIO), the
 * stream is abandoned, and the store falls back to one put of the content
 * as before. Callers hold fs.lock.
 */
#define _GNU_SOURCE
#include "mount.h"

/* Smaller values are stored by one put at close: streaming would save
 * nothing worth a stream's bookkeeping. */
#define STREAM_FROM (256u * 1024u)

/* A feed of this much passes the reader's role on first (see feed). */
#define FEED_PASS (128u * 1024u)

void stream_drop(struct node *n)
{
    if (!n->stream)
        return;
    ekv_stream_abandon(n->stream);
    n->stream = NULL;
    n->streamed = 0;
}

void stream_cut(struct node *n, size_t len)
{
    if (len < n->streamed)
        stream_drop(n);
}

/*
 * Hand the stream what the content holds past the streamed part. The
 * write that brought it is answered already, and the writer's next one
 * is on its way: a large feed lets another thread read it (the kernel's
 * copy of up to 1 MiB into our buffer) while this one writes the blocks,
 * instead of after. That thread then waits for fs.lock, as it would have.
 */
static int feed(struct node *n)
{
    if (n->len <= n->streamed)
        return 0;
    if (n->len - n->streamed >= FEED_PASS)
        loop_may_block();
    int err = ekv_stream_write(n->stream, n->buf + n->streamed,
                               n->len - n->streamed);
    if (err)
        return err;
    n->streamed = n->len;
    return 0;
}

void stream_wrote(struct node *n, uint64_t pos, size_t size)
{
    if (n->stream && pos < n->streamed) {
        stream_drop(n); /* what was streamed changed */
        n->no_stream = true;
        return;
    }
    if (!n->stream) {
        /* Start only for a content growing at its end, once large. */
        if (n->no_stream || n->unlinked || fs.rdonly ||
            n->len < STREAM_FROM || pos + size != n->len)
            return;
        if (ekv_stream_open(fs.store, &n->stream, n->key, n->klen, 0)) {
            n->stream = NULL;
            n->no_stream = true;
            return;
        }
        n->streamed = 0;
    }
    if (feed(n)) {
        /* The put at close tells the error, if it is one for the put. */
        stream_drop(n);
        n->no_stream = true;
    }
}

int stream_store(struct node *n, enum flush_policy p, bool *done)
{
    *done = false;
    if (!n->stream)
        return 0;
    if (n->len < n->streamed || feed(n)) {
        stream_drop(n);
        return 0;
    }
    ekv_stream *w = n->stream;
    n->stream = NULL;
    n->streamed = 0;
    *done = true;
    return to_errno(devsync_commit(w, p));
}
