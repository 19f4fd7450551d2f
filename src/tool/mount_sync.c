/*
 * mount_sync.c - which device flushes the daemon lets through at once.
 *
 * Each ekv_put flushes a replica twice: after writing the new record (the
 * barrier that makes it safe to erase the old one) and after erasing the
 * old record. Only the first matters for what a crash can leave: if the
 * erasure is lost, recovery finds both records and keeps the newer
 * generation. (A put that fails erases what it wrote instead:
 * devsync_put() makes that durable at once.) A new file's empty value
 * (create) matters only once the file is closed. So the daemon wraps the
 * image devices and, while a put runs under a deferring policy, turns
 * those flushes into a note; the next real flush of the device (fdatasync
 * covers every earlier write of the file), an fsync, the close of a
 * created file, or unmount makes them durable. What close() promises is
 * unchanged: when it returns 0 the file's value is durable, and a crash at
 * any point leaves each key with its old or its new value.
 * tests/fuse/test_devsync.c sweeps power cuts over this.
 *
 * Record blocks start with their type byte (0x01-0x03), erased blocks
 * with the erase byte (0x00 or 0xFF): that tells a write of data from an
 * erasure. Callers hold fs.lock.
 */
#define _GNU_SOURCE
#include <string.h>

#include "mount.h"

struct wrap {
    ekv_device *dev;
    int (*write)(ekv_device *d, uint32_t block, const void *buf);
    int (*flush)(ekv_device *d);
    bool data;    /* a record block was written since the last real flush */
    bool pending; /* a flush was deferred since the last real flush */
};

static struct wrap wraps[EKV_MAX_REPLICAS];
static unsigned nwraps;
static enum flush_policy policy = FLUSH_ALWAYS;

static struct wrap *wrap_of(const ekv_device *d)
{
    for (unsigned i = 0; i < nwraps; i++)
        if (wraps[i].dev == d)
            return &wraps[i];
    return NULL; /* not reached: only wrapped devices call us */
}

static int wrapped_write(ekv_device *d, uint32_t block, const void *buf)
{
    struct wrap *w = wrap_of(d);
    uint8_t type = *(const uint8_t *)buf;
    if (type >= 0x01 && type <= 0x03)
        w->data = true;
    return w->write(d, block, buf);
}

static int real_flush(struct wrap *w)
{
    int err = w->flush ? w->flush(w->dev) : 0;
    if (!err)
        w->data = w->pending = false;
    return err;
}

static int wrapped_flush(ekv_device *d)
{
    struct wrap *w = wrap_of(d);
    if (policy == FLUSH_DEFER_ALL || (policy == FLUSH_DEFER_ERASE && !w->data)) {
        w->pending = true;
        return 0;
    }
    return real_flush(w);
}

void devsync_install(ekv_device *const devs[], unsigned n)
{
    nwraps = 0;
    for (unsigned i = 0; i < n; i++) {
        ekv_device *d = devs[i];
        if (!d || !d->write)
            continue; /* read-only, or a dropped stand-in: never written */
        struct wrap *w = &wraps[nwraps++];
        memset(w, 0, sizeof(*w));
        w->dev = d;
        w->write = d->write;
        w->flush = d->flush;
        d->write = wrapped_write;
        d->flush = wrapped_flush;
    }
}

/* After a put (or a commit) under a deferring policy. */
static int put_done(int err)
{
    policy = FLUSH_ALWAYS;
    /* A failed put erased what it had written: that must be durable
     * before anyone is told, or a crash could bring the new value back. */
    if (err)
        (void)devsync_now();
    return err;
}

int devsync_put(ekv_store *s, const void *key, size_t klen, const void *val,
                size_t len, enum flush_policy p)
{
    policy = p;
    return put_done(ekv_put(s, key, klen, val, len));
}

int devsync_commit(ekv_stream *w, enum flush_policy p)
{
    policy = p;
    return put_done(ekv_stream_commit(w));
}

int devsync_now(void)
{
    int first = 0;
    for (unsigned i = 0; i < nwraps; i++) {
        struct wrap *w = &wraps[i];
        if (!w->pending && !w->data)
            continue;
        int err = real_flush(w);
        if (err && !first)
            first = err;
    }
    return first;
}
