/*
 * mount_ops.c - the FUSE operations of `embedkvfs mount`: one flat
 * directory whose files are the keys of the store (names per names.h).
 * This file holds what the operations share (locking, errors, sizes,
 * names), the life cycle and the table of operations; the operations
 * themselves are in mount_files.c, mount_attr.c and mount_dir.c.
 *
 * How a file maps onto the store
 * - All writable opens of one key share one content (struct node, like an
 *   inode): it is loaded from the store by the first of them (nothing for
 *   O_TRUNC), every write changes it, and the close (flush) or fsync of a
 *   writer that changed it stores it whole with one ekv_put: an atomic
 *   replace, whose error (ENOSPC, EIO, EFBIG) that close reports. A failed
 *   put leaves the old value. A large content written at its end is
 *   streamed to the images meanwhile (mount_stream.c): the close then
 *   commits that stream instead, with the same result.
 * - Nothing else stores a content: not a signal, not the unmount. What no
 *   writer closed or fsynced is left out, the stored value unchanged, and
 *   the daemon names the key on stderr (or syslog).
 * - A read-only open reads the value stored when it was opened: always a
 *   complete value, never a writer's half-written content.
 * - An unlinked (or renamed-over) file stays usable through its open
 *   handles, like POSIX, fstat included, but its closes store nothing:
 *   the key stays gone. A renamed file's open handles follow it.
 * - Times and modes live in memory only (struct node): set when this
 *   mount changes a key, the mount time and mode otherwise.
 *
 * Every operation takes fs.lock (the store is not thread-safe) and
 * replies 0 or an errno; inside, functions return 0 or -errno, and the
 * library's errors are negative errno values already.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mount.h"

void ekvfs_lock(void)
{
    pthread_mutex_lock(&fs.lock);
}

void ekvfs_unlock(void)
{
    pthread_mutex_unlock(&fs.lock);
}

void now_ts(struct timespec *t)
{
    clock_gettime(CLOCK_REALTIME, t);
}

int to_errno(int ekv_err)
{
    return ekv_err == EKV_ECORRUPT || ekv_err == EKV_ERANGE ? -EIO : ekv_err;
}

mode_t node_mode(const struct node *n)
{
    if (n && n->has_mode)
        return S_IFREG | n->mode;
    return S_IFREG | (0644 & ~fs.umask);
}

mode_t root_mode(void)
{
    return S_IFDIR | (fs.root_has_mode ? fs.root_mode : 0755 & ~fs.umask);
}

static uint64_t first_capacity(size_t klen)
{
    return fs.block_size - EKV_DESCRIPTOR_HEADER_SIZE - EKV_CRC_SIZE - klen;
}

static uint64_t chunk_capacity(void)
{
    return fs.block_size - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
}

uint64_t value_blocks(size_t klen, uint64_t size)
{
    uint64_t first = first_capacity(klen);
    if (size <= first)
        return 1;
    return 1 + (size - first + chunk_capacity() - 1) / chunk_capacity();
}

/* Beyond this a write fails with EFBIG at once instead of growing a
 * buffer that no put could ever store. */
uint64_t max_value(size_t klen)
{
    if (fs.block_count < 2)
        return 0;
    uint64_t m = first_capacity(klen) +
                 (uint64_t)(fs.block_count - 2) * chunk_capacity();
    return m > UINT32_MAX ? UINT32_MAX : m;
}

int put_value(const uint8_t *key, size_t klen, const uint8_t *val,
              size_t len, enum flush_policy p)
{
    return to_errno(devsync_put(fs.store, key, klen, val, len, p));
}

/*
 * The index's size is the newest record's; when that record no longer
 * verifies, ekv_get falls back to an older copy, which may be smaller
 * (then *len says so) or larger (EKV_ERANGE with the size it needs: try
 * again with room for it). The same rule as `embedkvfs get`.
 */
int load_value(const uint8_t *key, size_t klen, size_t hint, struct value *v)
{
    size_t want = hint;
    for (int tries = 0; tries < 8; tries++) {
        int err = value_alloc(v, want);
        if (err)
            return err;
        size_t got = 0;
        err = ekv_get(fs.store, key, klen, v->p, v->cap, &got);
        if (err == EKV_ERANGE && got > v->cap) {
            value_free(v);
            want = got;
            continue;
        }
        if (err) {
            value_free(v);
            return to_errno(err);
        }
        v->len = got;
        return 0;
    }
    return -EIO; /* the copies keep changing size: not reached */
}

/* ---- names ------------------------------------------------------------ */

void kb_free(keybuf *kb)
{
    if (kb->p != kb->small)
        free(kb->p);
}

struct short_search {
    const char *name;
    keybuf *kb;
    int err;
};

static int match_short_name(void *ctx, const ekv_key_info *info)
{
    struct short_search *s = ctx;
    if (!short_name_matches(s->name, info->key, info->key_len))
        return 0;
    s->kb->p = key_dup(info->key, info->key_len);
    s->kb->len = info->key_len;
    s->err = s->kb->p ? 0 : -ENOMEM;
    if (!s->kb->p)
        s->kb->p = s->kb->small;
    return 1;
}

/*
 * The key a name in the root names. A name longer than NAME_MAX_BYTES, or
 * one that decodes to a key longer than the block size allows, is
 * ENAMETOOLONG, for every purpose. A name that is not the canonical name
 * of any key does not exist (ENOENT) and cannot be created (EINVAL).
 * Shortened names of long keys resolve by a search of the index (rare:
 * such keys come from images written elsewhere). Files are not
 * directories: nothing is found in them. Needs the lock.
 */
int resolve(fuse_ino_t parent, const char *name, keybuf *kb,
            enum purpose why)
{
    kb->p = kb->small;
    kb->len = 0;
    if (parent != FUSE_ROOT_ID)
        return -ENOTDIR;
    if (strlen(name) > NAME_MAX_BYTES)
        return -ENAMETOOLONG;
    uint64_t hash;
    switch (name_to_key(name, kb->small, &kb->len, &hash)) {
    case NAME_KEY:
        return kb->len > fs.max_key ? -ENAMETOOLONG : 0;
    case NAME_SHORT: {
        if (why == CREATE)
            return -EINVAL;
        struct short_search s = {name, kb, -ENOENT};
        ekv_iterate(fs.store, match_short_name, &s);
        return s.err;
    }
    default:
        return why == CREATE ? -EINVAL : -ENOENT;
    }
}

int find_key(fuse_ino_t parent, const char *name, keybuf *kb,
             ekv_key_info *info)
{
    int err = resolve(parent, name, kb, LOOKUP);
    if (!err)
        err = ekv_stat_key(fs.store, kb->p, kb->len, info);
    return err;
}

/*
 * Drop the kernel's cached attributes and pages of a file whose stored
 * value may differ from what the kernel saw (a failed put whose content
 * was then dropped). Called without fs.lock: the kernel may wait for a
 * read of that file in flight, which another worker thread answers. With
 * a single thread nobody could, so we skip it and the attribute timeout
 * bounds the staleness.
 */
void invalidate(fuse_ino_t ino)
{
    if (fs.multithreaded && fs.se) {
        loop_may_block();
        fuse_lowlevel_notify_inval_inode(fs.se, ino, 0, 0);
    }
}

void root_changed(void)
{
    now_ts(&fs.root_mtime);
    fs.root_ctime = fs.root_mtime;
    fs.dir_version++;
}

void node_changed(struct node *n)
{
    struct timespec t;
    now_ts(&t);
    if (!n->has_times)
        n->atime = fs.mount_time;
    n->mtime = n->ctime = t;
    n->has_times = true;
}

void reply_entry_unlock(fuse_req_t req, struct node *n,
                        struct fuse_file_info *fi, int err)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    if (!err && n) {
        err = fill_node(&e.attr, n);
        if (!err) {
            e.ino = NODE_ID(n);
            e.generation = n->generation;
            e.attr_timeout = fs.attr_timeout;
            e.entry_timeout = fs.entry_timeout;
            n->nlookup++;
        }
    }
    if (err && n)
        node_maybe_free(n); /* one made for a lookup that failed */
    ekvfs_unlock();
    if (err) {
        fuse_reply_err(req, -err);
        return;
    }
    int rc = fi ? fuse_reply_create(req, &e, fi) : fuse_reply_entry(req, &e);
    if (rc) {
        /* The kernel never got it: it holds no lookup of n, nor a file. */
        if (fi)
            files_abandon(fi);
        ekvfs_lock();
        node_forget(n, 1);
        ekvfs_unlock();
    }
}

/* ---- life cycle ------------------------------------------------------- */

static void ekvfs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* O_TRUNC arrives with open, so a truncating open costs no extra put
     * of an empty value. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Every change passes through this kernel, which keeps its caches
     * right itself, and the daemon sees to the rest (mount_files.c): no
     * need to check the attributes before each use of cached pages. */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* Close must see every byte, and each writer's own: no write-back
     * caching in the kernel. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* Plain listings: readdirplus would make the kernel set up an inode
     * for every key of every listing, which costs more than the lookups
     * it saves (names, attributes and listings are cached anyway). */
    conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
}

/* The loop ended (unmount or signal). A content no writer closed or
 * fsynced is not stored: mount_files.c names each key left unchanged. */
static void ekvfs_destroy(void *userdata)
{
    (void)userdata;
    ekvfs_lock();
    files_report_unstored();
    ekvfs_unlock();
}

const struct fuse_lowlevel_ops ekvfs_ops = {
    .init = ekvfs_init,
    .destroy = ekvfs_destroy,
    .lookup = ekvfs_lookup,
    .forget = ekvfs_forget,
    .forget_multi = ekvfs_forget_multi,
    .getattr = ekvfs_getattr,
    .setattr = ekvfs_setattr,
    .statfs = ekvfs_statfs,
    .opendir = ekvfs_opendir,
    .readdir = ekvfs_readdir,
    .releasedir = ekvfs_releasedir,
    .open = ekvfs_open,
    .create = ekvfs_create,
    .mknod = ekvfs_mknod,
    .read = ekvfs_read,
    .write = ekvfs_write,
    .flush = ekvfs_flush,
    .fsync = ekvfs_fsync,
    .release = ekvfs_release,
    .unlink = ekvfs_unlink,
    .rmdir = ekvfs_rmdir,
    .rename = ekvfs_rename,
    .mkdir = ekvfs_mkdir,
    .symlink = ekvfs_symlink,
    .link = ekvfs_link,
    .getxattr = ekvfs_getxattr,
    .listxattr = ekvfs_listxattr,
    .setxattr = ekvfs_setxattr,
    .removexattr = ekvfs_removexattr,
};
