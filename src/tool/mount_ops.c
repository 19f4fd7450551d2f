/*
 * mount_ops.c - the FUSE operations of `embedkvfs mount`: one flat
 * directory whose files are the keys of the store (names per names.h).
 *
 * How a file maps onto the store
 * - Opening a file loads its whole value into a buffer of that open file
 *   (nothing for O_TRUNC). read and write work on the buffer; the value is
 *   stored with one ekv_put when the file is flushed (close) or fsynced,
 *   and only if it changed, so close() reports ENOSPC, EIO or EFBIG and
 *   each close is an atomic replace. A failed put leaves the old value.
 * - Two open files of one key have two buffers: each close stores its own
 *   buffer whole, so concurrent writers of one key end with one complete
 *   value, never a mix.
 * - An unlinked (or renamed-over) file stays usable through its open
 *   handles, like POSIX, but its closes store nothing: the key stays gone.
 *   A renamed file's open handles follow it to the new name.
 * - Times live in memory only (struct node): set when this mount changes a
 *   key, the mount time otherwise.
 *
 * Every operation takes fs.lock (the store is not thread-safe) and returns
 * 0 or -errno; the library's errors are negative errno values already.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "mount.h"
#include "names.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static void lock(void)
{
    pthread_mutex_lock(&fs.lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&fs.lock);
}

static void now(struct timespec *t)
{
    clock_gettime(CLOCK_REALTIME, t);
}

/* A record no replica can verify is, to a reader, an I/O error. */
static int to_errno(int ekv_err)
{
    return ekv_err == EKV_ECORRUPT || ekv_err == EKV_ERANGE ? -EIO : ekv_err;
}

static mode_t file_mode(void)
{
    return S_IFREG | (0644 & ~fs.umask);
}

static mode_t dir_mode(void)
{
    return S_IFDIR | (0755 & ~fs.umask);
}

static bool is_root(const char *path)
{
    return path[0] == '/' && path[1] == 0;
}

static uint64_t first_capacity(size_t klen)
{
    return fs.block_size - EKV_DESCRIPTOR_HEADER_SIZE - EKV_CRC_SIZE - klen;
}

static uint64_t chunk_capacity(void)
{
    return fs.block_size - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
}

/* Blocks one replica spends on a record (what du should see). */
static uint64_t record_blocks(size_t klen, uint64_t size)
{
    uint64_t first = first_capacity(klen);
    if (size <= first)
        return 1;
    return 1 + (size - first + chunk_capacity() - 1) / chunk_capacity();
}

/* The largest value a key of klen bytes could have in an empty store:
 * beyond it a write fails with EFBIG at once instead of growing a buffer
 * that no put could ever store. */
static uint64_t max_value(size_t klen)
{
    if (fs.block_count < 2)
        return 0;
    uint64_t m = first_capacity(klen) +
                 (uint64_t)(fs.block_count - 2) * chunk_capacity();
    return m > UINT32_MAX ? UINT32_MAX : m;
}

/* Store a value; p says which of the put's flushes may wait (mount_sync.c).
 * Needs the lock. */
static int put_value(const uint8_t *key, size_t klen, const uint8_t *val,
                     size_t len, enum flush_policy p)
{
    return to_errno(devsync_put(fs.store, key, klen, val, len, p));
}

/* ---- names ------------------------------------------------------------ */

/* A key decoded from a path: short keys inline, long ones (found through a
 * shortened name) on the heap. */
typedef struct keybuf {
    uint8_t *p;
    size_t len;
    uint8_t small[NAME_MAX_BYTES + 1];
} keybuf;

static void kb_free(keybuf *kb)
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

enum purpose { LOOKUP, CREATE };

/*
 * The key a path names. A name that is not the canonical name of any key
 * does not exist (ENOENT) and cannot be created (EINVAL); a key longer
 * than the block size allows is ENAMETOOLONG. Shortened names of long
 * keys resolve by a search of the index (rare: such keys come from
 * images written elsewhere). Needs the lock.
 */
static int resolve(const char *path, keybuf *kb, enum purpose why)
{
    kb->p = kb->small;
    kb->len = 0;
    const char *name = path + 1;
    if (path[0] != '/' || strchr(name, '/'))
        return -ENOENT;
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

/* resolve() for a key that must exist, with its index entry. */
static int find_key(const char *path, keybuf *kb, ekv_key_info *info)
{
    int err = resolve(path, kb, LOOKUP);
    if (!err)
        err = ekv_stat_key(fs.store, kb->p, kb->len, info);
    return err;
}

/* "/" + the file name of n's key, for invalidate(); "" for an unlinked
 * node, which has no name. */
static void node_path(const struct node *n, char *out)
{
    out[0] = 0;
    if (n->unlinked)
        return;
    out[0] = '/';
    key_to_name(n->key, n->klen, out + 1);
}

/*
 * Drop the kernel's cached attributes and pages of a file whose stored
 * value may differ from what the kernel saw (a failed put, or several
 * open files of one key with different buffers). Called without fs.lock:
 * the kernel may wait for a read of that file in flight, which another
 * worker thread answers. With a single thread nobody could, so we skip it
 * and the attribute timeout bounds the staleness.
 */
static void invalidate(const char *path)
{
    if (!path[0] || !fs.multithreaded)
        return;
    struct fuse_context *ctx = fuse_get_context();
    if (ctx && ctx->fuse)
        fuse_invalidate_path(ctx->fuse, path);
}

/* ---- attributes ------------------------------------------------------- */

static void fill_times(struct stat *st, const struct node *n)
{
    if (n && n->has_times) {
        st->st_atim = n->atime;
        st->st_mtim = n->mtime;
        st->st_ctim = n->ctime;
    } else {
        st->st_atim = st->st_mtim = st->st_ctim = fs.mount_time;
    }
}

static void fill_stat(struct stat *st, const struct node *n, size_t klen,
                      uint64_t size)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = file_mode();
    st->st_nlink = n && n->unlinked ? 0 : 1;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
    st->st_size = (off_t)size;
    st->st_blksize = fs.block_size;
    st->st_blocks = (blkcnt_t)((record_blocks(klen, size) * fs.block_size +
                                511) / 512);
    fill_times(st, n);
}

static void fill_root(struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = dir_mode();
    st->st_nlink = 2;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
    st->st_size = 0;
    st->st_atim = fs.mount_time;
    st->st_mtim = fs.root_mtime;
    st->st_ctim = fs.root_ctime;
}

/* The root's entries changed. */
static void root_changed(void)
{
    now(&fs.root_mtime);
    fs.root_ctime = fs.root_mtime;
}

/* This mount changed n's value: it now shows its own times. */
static void node_changed(struct node *n)
{
    struct timespec t;
    now(&t);
    if (!n->has_times)
        n->atime = fs.mount_time;
    n->mtime = n->ctime = t;
    n->has_times = true;
}

/* The newest open buffer not stored yet: what a stat should show. */
static const struct handle *latest_dirty(const struct node *n)
{
    const struct handle *best = NULL;
    for (const struct handle *h = n->handles; h; h = h->next)
        if (h->dirty && (!best || h->wseq > best->wseq))
            best = h;
    return best;
}

static int ekvfs_getattr(const char *path, struct stat *st,
                         struct fuse_file_info *fi)
{
    if (fi) {
        lock();
        const struct handle *h = (const struct handle *)(uintptr_t)fi->fh;
        fill_stat(st, h->node, h->node->klen, h->len);
        unlock();
        return 0;
    }
    lock();
    if (is_root(path)) {
        fill_root(st);
        unlock();
        return 0;
    }
    keybuf kb;
    ekv_key_info info;
    int err = find_key(path, &kb, &info);
    if (!err) {
        const struct node *n = node_find(kb.p, kb.len);
        const struct handle *d = n ? latest_dirty(n) : NULL;
        fill_stat(st, n, kb.len, d ? d->len : info.value_size);
    }
    unlock();
    kb_free(&kb);
    return err;
}

/* Whether path names an existing key (or the root); needs the lock. */
static int exists(const char *path, struct fuse_file_info *fi, bool *root)
{
    *root = false;
    if (fi)
        return 0;
    if (is_root(path)) {
        *root = true;
        return 0;
    }
    keybuf kb;
    ekv_key_info info;
    int err = find_key(path, &kb, &info);
    kb_free(&kb);
    return err;
}

/* Modes and owners are the mount's: a change to what they already are is
 * accepted (cp -p, rsync -a do that), anything else is not possible. */
static int ekvfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    bool root;
    lock();
    int err = exists(path, fi, &root);
    unlock();
    if (err)
        return err;
    mode_t want = root ? dir_mode() : file_mode();
    return (mode & 07777) == (want & 07777) ? 0 : -EPERM;
}

static int ekvfs_chown(const char *path, uid_t uid, gid_t gid,
                       struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    bool root;
    lock();
    int err = exists(path, fi, &root);
    unlock();
    if (err)
        return err;
    if ((uid != (uid_t)-1 && uid != fs.uid) ||
        (gid != (gid_t)-1 && gid != fs.gid))
        return -EPERM;
    return 0;
}

static void set_time(struct timespec *field, const struct timespec *tv,
                     const struct timespec *t)
{
    if (tv->tv_nsec == UTIME_OMIT)
        return;
    *field = tv->tv_nsec == UTIME_NOW ? *t : *tv;
}

/* Times are kept in memory only, so that make and rsync -t work. */
static int ekvfs_utimens(const char *path, const struct timespec tv[2],
                         struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    struct timespec t;
    now(&t);
    lock();
    struct node *n = NULL;
    int err = 0;
    if (fi) {
        n = ((struct handle *)(uintptr_t)fi->fh)->node;
    } else if (is_root(path)) {
        set_time(&fs.root_mtime, &tv[1], &t);
        fs.root_ctime = t;
        unlock();
        return 0;
    } else {
        keybuf kb;
        ekv_key_info info;
        err = find_key(path, &kb, &info);
        if (!err) {
            n = node_get(kb.p, kb.len);
            if (!n)
                err = -ENOMEM;
        }
        kb_free(&kb);
    }
    if (n) {
        if (!n->has_times) {
            n->atime = n->mtime = fs.mount_time;
            n->has_times = true;
        }
        set_time(&n->atime, &tv[0], &t);
        set_time(&n->mtime, &tv[1], &t);
        n->ctime = t;
    }
    unlock();
    return err;
}

static int ekvfs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    ekv_stats st;
    lock();
    int err = ekv_stats_get(fs.store, &st);
    unlock();
    if (err)
        return err;
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = sv->f_frsize = st.block_size;
    sv->f_blocks = st.block_count - 1; /* block 0 is the header */
    sv->f_bfree = sv->f_bavail = st.free_blocks;
    /* Every key needs at least one block: free blocks bound new keys. */
    sv->f_files = (fsfilcnt_t)st.records + st.free_blocks;
    sv->f_ffree = sv->f_favail = st.free_blocks;
    /* Names up to this length always decode to a key that fits. */
    sv->f_namemax = st.max_key_size < NAME_MAX_BYTES ? st.max_key_size
                                                     : NAME_MAX_BYTES;
    if (fs.rdonly)
        sv->f_flag |= ST_RDONLY;
    return 0;
}

/* ---- the directory ---------------------------------------------------- */

struct dirfill {
    void *buf;
    fuse_fill_dir_t filler;
};

static int fill_entry(void *ctx, const ekv_key_info *info)
{
    struct dirfill *d = ctx;
    char name[NAME_MAX_BYTES + 1];
    struct stat st;
    key_to_name(info->key, info->key_len, name);
    memset(&st, 0, sizeof(st));
    st.st_mode = S_IFREG;
    return d->filler(d->buf, name, &st, 0, 0) ? 1 : 0;
}

static int ekvfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
                         off_t off, struct fuse_file_info *fi,
                         enum fuse_readdir_flags flags)
{
    /* path is NULL (nullpath_ok): the root is the only directory. The
     * whole listing is made at offset 0; libfuse hands it out in pieces.
     * (libfuse's high-level API does not let us ask the kernel to cache
     * listings.) */
    (void)path;
    (void)off;
    (void)fi;
    (void)flags; /* never FUSE_READDIR_PLUS: see ekvfs_init */
    struct dirfill d = {buf, filler};
    struct stat st;
    lock();
    fill_root(&st);
    filler(buf, ".", &st, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    int err = ekv_iterate(fs.store, fill_entry, &d);
    unlock();
    return err > 0 ? -ENOMEM : err;
}

/* ---- open files ------------------------------------------------------- */

static void mark_dirty(struct handle *h)
{
    h->dirty = true;
    h->reported = false;
    h->wseq = ++fs.wseq;
    node_changed(h->node);
}

static int reserve(struct handle *h, size_t need)
{
    if (need <= h->cap)
        return 0;
    size_t ncap = h->cap ? h->cap : 4096;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    uint8_t *p = realloc(h->buf, ncap);
    if (!p)
        return -ENOMEM;
    h->buf = p;
    h->cap = ncap;
    return 0;
}

/* Make the buffer len bytes long; new bytes read as zeros. */
static int resize(struct handle *h, size_t len)
{
    int err = reserve(h, len);
    if (err)
        return err;
    if (len > h->len)
        memset(h->buf + h->len, 0, len - h->len);
    h->len = len;
    return 0;
}

/*
 * Open key kb for fi: load its value (size bytes) unless the file is new
 * or truncated, and attach the handle to the key's node. Needs the lock.
 *
 * The kernel keeps one size and one page cache per file, but each open
 * file has its own buffer. So a file opened for reading bypasses the page
 * cache (direct_io): it reads exactly the value it loaded, whatever other
 * open files do meanwhile, and a read costs no attribute refresh. A file
 * opened for writing uses the page cache (shared mmap works), starting
 * from an empty one, unless another writer is open: then it goes direct
 * too, and the stores of both invalidate what the kernel believes.
 */
static int open_key(const keybuf *kb, struct fuse_file_info *fi,
                    uint32_t size, bool created)
{
    int acc = fi->flags & O_ACCMODE;
    bool trunc = (fi->flags & O_TRUNC) && !created;
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->writable = acc != O_RDONLY || trunc;
    h->append = (fi->flags & O_APPEND) != 0;
    if (!created && !trunc && size) {
        size_t len = 0;
        int err = reserve(h, size);
        if (!err)
            err = to_errno(
                ekv_get(fs.store, kb->p, kb->len, h->buf, size, &len));
        if (err) {
            free(h->buf);
            free(h);
            return err;
        }
        h->len = len;
    }
    struct node *n = node_get(kb->p, kb->len);
    if (!n) {
        free(h->buf);
        free(h);
        return -ENOMEM;
    }
    if (!h->writable) {
        fi->direct_io = 1;
        fi->keep_cache = 1; /* leave a writer's cached pages alone */
    } else if (n->nwriters) {
        fi->direct_io = 1;
        fi->keep_cache = 1;
        n->overlap = true;
    } else {
        fi->keep_cache = 0; /* pages of earlier writers may be stale */
    }
    h->node = n;
    h->next = n->handles;
    if (h->next)
        h->next->prev = h;
    n->handles = h;
    n->nopen++;
    if (h->writable)
        n->nwriters++;
    h->gnext = fs.all.gnext;
    h->gprev = &fs.all;
    fs.all.gnext->gprev = h;
    fs.all.gnext = h;
    if (trunc)
        mark_dirty(h);
    fi->fh = (uintptr_t)h;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 11)
    /* A handle that can never be dirty needs no FLUSH on close. */
    fi->noflush = !h->writable;
#endif
    return 0;
}

static int ekvfs_open(const char *path, struct fuse_file_info *fi)
{
    int acc = fi->flags & O_ACCMODE;
    if (fs.rdonly && (acc != O_RDONLY || (fi->flags & O_TRUNC)))
        return -EROFS;
    keybuf kb;
    ekv_key_info info;
    lock();
    int err = find_key(path, &kb, &info);
    if (!err)
        err = open_key(&kb, fi, info.value_size, false);
    unlock();
    kb_free(&kb);
    return err;
}

/* The file exists from here on: an empty value is stored at once (touch
 * needs nothing more). The mode is the mount's, whatever was asked. */
static int ekvfs_create(const char *path, mode_t mode,
                        struct fuse_file_info *fi)
{
    (void)mode;
    if (fs.rdonly)
        return -EROFS;
    keybuf kb;
    ekv_key_info info;
    lock();
    int err = resolve(path, &kb, CREATE);
    if (!err) {
        err = ekv_stat_key(fs.store, kb.p, kb.len, &info);
        if (err == 0) {
            /* Created meanwhile (not through this kernel): an open. */
            err = (fi->flags & O_EXCL)
                      ? -EEXIST
                      : open_key(&kb, fi, info.value_size, false);
        } else if (err == EKV_ENOENT) {
            /* Durable by the close (or an earlier put): see mount_sync.c. */
            err = put_value(kb.p, kb.len, NULL, 0, FLUSH_DEFER_ALL);
            if (!err)
                err = open_key(&kb, fi, 0, true);
            if (!err) {
                struct handle *h = (struct handle *)(uintptr_t)fi->fh;
                h->unsynced = true;
                node_changed(h->node);
                root_changed();
            }
        }
    }
    unlock();
    kb_free(&kb);
    return err;
}

static int ekvfs_read(const char *path, char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    (void)path;
    if (off < 0)
        return -EINVAL;
    lock();
    const struct handle *h = (const struct handle *)(uintptr_t)fi->fh;
    size_t n = 0;
    if ((uint64_t)off < h->len) {
        n = h->len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, h->buf + off, n);
    }
    unlock();
    return (int)n;
}

static int ekvfs_write(const char *path, const char *data, size_t size,
                       off_t off, struct fuse_file_info *fi)
{
    (void)path;
    if (off < 0)
        return -EINVAL;
    lock();
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    /* O_APPEND appends to this file's own buffer, whatever the kernel
     * thinks the size is. */
    uint64_t pos = h->append ? h->len : (uint64_t)off;
    uint64_t max = max_value(h->node->klen);
    int err = 0;
    if (size && pos >= max) {
        err = -EFBIG;
    } else {
        if (pos + size > max)
            size = (size_t)(max - pos); /* a short write, then EFBIG */
        size_t end = (size_t)pos + size;
        if (end > h->len)
            err = resize(h, end);
        if (!err && size) {
            memcpy(h->buf + pos, data, size);
            mark_dirty(h);
        }
    }
    unlock();
    return err ? err : (int)size;
}

/*
 * Store h's buffer if it has changes: one put, an atomic replace. Needs
 * the lock. Sets *inval when the kernel's view may now be wrong. The
 * buffer of a file whose key was unlinked or replaced goes nowhere.
 */
static int store_handle(struct handle *h, bool *inval)
{
    struct node *n = h->node;
    if (!h->dirty)
        return 0;
    if (n->unlinked) {
        h->dirty = false;
        return 0;
    }
    int err = put_value(n->key, n->klen, h->buf, h->len, FLUSH_DEFER_ERASE);
    if (err) {
        /* The old value stays; the kernel saw the new one. */
        h->reported = true;
        *inval = true;
        return err;
    }
    h->dirty = false;
    h->unsynced = false; /* the put's first flush was real */
    now(&n->ctime);
    if (n->overlap)
        *inval = true;
    return 0;
}

/* Make a created file's empty value durable if no put did it yet. */
static int sync_created(struct handle *h)
{
    if (!h->unsynced)
        return 0;
    int err = to_errno(devsync_now());
    if (!err)
        h->unsynced = false;
    return err;
}

/* flush (every close) and fsync: store the changes, report the error.
 * fsync also makes every deferred flush durable. */
static int sync_handle(struct fuse_file_info *fi, bool all)
{
    char path[NAME_MAX_BYTES + 2];
    bool inval = false;
    lock();
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    int err = store_handle(h, &inval);
    if (!err)
        err = all ? to_errno(devsync_now()) : sync_created(h);
    if (inval)
        node_path(h->node, path);
    unlock();
    if (inval)
        invalidate(path);
    return err;
}

static int ekvfs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    return sync_handle(fi, false);
}

static int ekvfs_fsync(const char *path, int datasync,
                       struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    return sync_handle(fi, true);
}

/* Take h off its node and the global list and free it; needs the lock.
 * When *inval is set, path receives the name to invalidate. */
static void drop_handle(struct handle *h, bool *inval, char *path)
{
    struct node *n = h->node;
    if (h->prev)
        h->prev->next = h->next;
    else
        n->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->gprev->gnext = h->gnext;
    h->gnext->gprev = h->gprev;
    n->nopen--;
    if (h->writable && --n->nwriters == 0)
        n->overlap = false;
    if (*inval)
        node_path(n, path);
    node_maybe_free(n);
    free(h->buf);
    free(h);
}

static int ekvfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    char ipath[NAME_MAX_BYTES + 2] = "";
    bool inval = false;
    lock();
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    /* Changes made after the last flush (through a shared mapping) are
     * stored now; nobody is left to hear of an error but the log. */
    if (h->dirty && !h->reported) {
        int err = store_handle(h, &inval);
        if (err) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(h->node->key, h->node->klen, name);
            mount_log("%s: changes not stored on release: %s", name,
                      strerror(-err));
        }
    }
    /* mknod reaches create and release, never flush. */
    int serr = sync_created(h);
    if (serr)
        mount_log("flushing the images: %s", strerror(-serr));
    drop_handle(h, &inval, ipath);
    unlock();
    if (inval)
        invalidate(ipath);
    return 0;
}

static int ekvfs_truncate(const char *path, off_t size,
                          struct fuse_file_info *fi)
{
    if (size < 0)
        return -EINVAL;
    if (fs.rdonly)
        return -EROFS;
    lock();
    int err = 0;
    if (fi) {
        /* ftruncate, or O_TRUNC: the buffer only, stored on close. */
        struct handle *h = (struct handle *)(uintptr_t)fi->fh;
        if ((uint64_t)size > max_value(h->node->klen))
            err = -EFBIG;
        else if (!(err = resize(h, (size_t)size)))
            mark_dirty(h);
        unlock();
        return err;
    }
    if (is_root(path)) {
        unlock();
        return -EISDIR;
    }
    /* truncate(2) by name: get, resize, put (tmp is only a buffer). */
    keybuf kb;
    ekv_key_info info;
    struct handle tmp = {0};
    err = find_key(path, &kb, &info);
    if (!err && (uint64_t)size > max_value(kb.len))
        err = -EFBIG;
    if (!err && (uint64_t)size != info.value_size) {
        size_t keep = (uint64_t)size < info.value_size ? (size_t)size
                                                       : info.value_size;
        size_t len = 0;
        if (keep) {
            err = reserve(&tmp, info.value_size);
            if (!err)
                err = to_errno(ekv_get(fs.store, kb.p, kb.len, tmp.buf,
                                       info.value_size, &len));
        }
        tmp.len = keep;
        if (!err)
            err = resize(&tmp, (size_t)size);
        if (!err)
            err = put_value(kb.p, kb.len, tmp.buf, tmp.len, FLUSH_DEFER_ERASE);
    }
    if (!err) {
        struct node *n = node_get(kb.p, kb.len);
        if (n) {
            node_changed(n);
            /* Open writers' buffers now differ from the store. */
            if (n->nwriters)
                n->overlap = true;
        }
    }
    unlock();
    free(tmp.buf);
    kb_free(&kb);
    return err;
}

/* ---- names in the directory ------------------------------------------ */

static int ekvfs_unlink(const char *path)
{
    if (fs.rdonly)
        return -EROFS;
    keybuf kb;
    lock();
    int err = resolve(path, &kb, LOOKUP);
    if (!err)
        err = to_errno(ekv_delete(fs.store, kb.p, kb.len));
    if (!err) {
        struct node *n = node_find(kb.p, kb.len);
        if (n)
            node_unlink(n); /* open handles keep their buffers */
        root_changed();
    }
    unlock();
    kb_free(&kb);
    return err;
}

/*
 * rename: the value is stored under the new key before the old key is
 * deleted, so a crash in between leaves both, never neither. An exchange
 * would need two puts that a crash could separate (both keys then holding
 * one value), so RENAME_EXCHANGE is refused with EINVAL.
 */
static int ekvfs_rename(const char *from, const char *to, unsigned int flags)
{
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        return -EINVAL;
    if (fs.rdonly)
        return -EROFS;
    keybuf src, dst;
    ekv_key_info si, di;
    struct node *sn = NULL, *dn;
    uint8_t *val = NULL, *newkey = NULL;
    size_t len = 0;
    lock();
    int err = find_key(from, &src, &si);
    int derr = resolve(to, &dst, CREATE);
    if (!err)
        err = derr;
    if (err || (src.len == dst.len && !memcmp(src.p, dst.p, src.len)))
        goto out; /* renaming a file to itself does nothing */
    if ((flags & RENAME_NOREPLACE) &&
        ekv_stat_key(fs.store, dst.p, dst.len, &di) == 0) {
        err = -EEXIST;
        goto out;
    }
    /* Everything that can run out of memory, before the store changes. */
    sn = node_get(src.p, src.len);
    newkey = key_dup(dst.p, dst.len);
    val = malloc(si.value_size ? si.value_size : 1);
    if (!sn || !newkey || !val) {
        err = -ENOMEM;
        goto out;
    }
    err = to_errno(
        ekv_get(fs.store, src.p, src.len, val, si.value_size, &len));
    if (!err)
        err = put_value(dst.p, dst.len, val, len, FLUSH_DEFER_ERASE);
    if (!err)
        err = to_errno(ekv_delete(fs.store, src.p, src.len));
    if (err)
        goto out; /* a failed delete leaves both names: nothing lost */
    dn = node_find(dst.p, dst.len);
    if (dn)
        node_unlink(dn); /* the replaced file's handles store nothing */
    if (!sn->has_times) {
        sn->atime = sn->mtime = fs.mount_time;
        sn->has_times = true;
    }
    now(&sn->ctime);
    node_rekey(sn, newkey, dst.len); /* open handles follow the file */
    newkey = NULL;
    sn = NULL;
    root_changed();
out:
    if (sn)
        node_maybe_free(sn);
    unlock();
    free(val);
    free(newkey);
    kb_free(&src);
    kb_free(&dst);
    return err;
}

/* A flat store of regular files: no directories, links or special files.
 * (libfuse sends mknod of a regular file to create.) */
static int ekvfs_mkdir(const char *path, mode_t mode)
{
    (void)path;
    (void)mode;
    return fs.rdonly ? -EROFS : -EPERM;
}

static int ekvfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
    (void)path;
    (void)mode;
    (void)rdev;
    return fs.rdonly ? -EROFS : -EPERM;
}

static int ekvfs_symlink(const char *target, const char *path)
{
    (void)target;
    (void)path;
    return fs.rdonly ? -EROFS : -EPERM;
}

static int ekvfs_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return fs.rdonly ? -EROFS : -EPERM;
}

/* ---- extended attributes: read-only facts from the index ---------------- */

#define XATTR_GENERATION "user.embedkv.generation"
#define XATTR_REPLICAS "user.embedkv.replicas"

/* "0,2": the replicas that hold the newest generation. */
static void format_mask(uint32_t mask, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (unsigned r = 0; r < 32 && o + 4 < cap; r++)
        if (mask & (1u << r))
            o += (size_t)snprintf(out + o, cap - o, "%s%u", o ? "," : "", r);
}

/*
 * Without -o xattr the answer is ENOSYS, after which the kernel never asks
 * again: otherwise it asks for security.capability before every write,
 * a round trip that costs more than the feature is worth by default.
 */
static int ekvfs_getxattr(const char *path, const char *name, char *value,
                          size_t size)
{
    char text[160];
    keybuf kb;
    ekv_key_info info;
    if (!fs.xattr)
        return -ENOSYS;
    if (strcmp(name, XATTR_GENERATION) != 0 &&
        strcmp(name, XATTR_REPLICAS) != 0)
        return -ENODATA;
    if (is_root(path))
        return -ENODATA;
    lock();
    int err = find_key(path, &kb, &info);
    unlock();
    kb_free(&kb);
    if (err)
        return err;
    if (strcmp(name, XATTR_GENERATION) == 0)
        snprintf(text, sizeof(text), "%u", info.generation);
    else
        format_mask(info.replicas, text, sizeof(text));
    size_t len = strlen(text);
    if (size == 0)
        return (int)len;
    if (size < len)
        return -ERANGE;
    memcpy(value, text, len);
    return (int)len;
}

static int ekvfs_listxattr(const char *path, char *list, size_t size)
{
    static const char names[] = XATTR_GENERATION "\0" XATTR_REPLICAS;
    if (!fs.xattr)
        return -ENOSYS;
    if (is_root(path))
        return 0;
    if (size == 0)
        return (int)sizeof(names);
    if (size < sizeof(names))
        return -ERANGE;
    memcpy(list, names, sizeof(names));
    return (int)sizeof(names);
}

static int ekvfs_setxattr(const char *path, const char *name,
                          const char *value, size_t size, int flags)
{
    (void)path, (void)name, (void)value, (void)size, (void)flags;
    if (!fs.xattr)
        return -ENOSYS;
    return fs.rdonly ? -EROFS : -ENOTSUP;
}

static int ekvfs_removexattr(const char *path, const char *name)
{
    (void)path, (void)name;
    if (!fs.xattr)
        return -ENOSYS;
    return fs.rdonly ? -EROFS : -ENOTSUP;
}

/* ---- life cycle ------------------------------------------------------- */

static void *ekvfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Keys have no numbers of their own: let libfuse number the files. */
    cfg->use_ino = 0;
    /* unlink really deletes the key; without this libfuse would rename an
     * open file to a hidden name, which here would be a visible key. */
    cfg->hard_remove = 1;
    /* Open files outlive their names (unlink, rename): operations on an
     * open file use its handle and need no path. */
    cfg->nullpath_ok = 1;
    /* The daemon is the only writer of its images and every change passes
     * through the kernel, which updates its own caches; where our answer
     * can change behind its back (a failed put, writers with different
     * buffers) we invalidate. So cache names and attributes for long. */
    if (!fs.user_timeouts) {
        cfg->entry_timeout = 30.0;
        cfg->negative_timeout = 30.0;
        /* Single-threaded, invalidate() cannot run: keep the staleness it
         * would have prevented short. */
        cfg->attr_timeout = fs.multithreaded ? 30.0 : 1.0;
    }
    /* Page cache: decided per open (open_key), never blindly. */
    cfg->kernel_cache = 0;
    cfg->auto_cache = 0;
    /* O_TRUNC arrives with open, so a truncating open costs no extra put
     * of an empty value. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Close must see every byte: no write-back caching in the kernel. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* Plain listings: readdirplus would make the kernel set up an inode
     * for every key of every listing, which costs more than the lookups
     * it saves (names and attributes are cached for long anyway). */
    conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
    return NULL;
}

/* The loop ended (unmount or signal): store what open files still hold,
 * as their close would have. */
static void ekvfs_destroy(void *private_data)
{
    (void)private_data;
    lock();
    for (struct handle *h = fs.all.gnext; h != &fs.all; h = h->gnext) {
        bool inval = false;
        if (!h->dirty || h->reported)
            continue;
        int err = store_handle(h, &inval);
        if (err) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(h->node->key, h->node->klen, name);
            mount_log("%s: changes not stored at unmount: %s", name,
                      strerror(-err));
        }
    }
    unlock();
}

void mount_teardown(void)
{
    char path[NAME_MAX_BYTES + 2];
    lock();
    while (fs.all.gnext != &fs.all) {
        bool inval = false;
        drop_handle(fs.all.gnext, &inval, path);
    }
    nodes_free_all();
    unlock();
}

const struct fuse_operations ekvfs_ops = {
    .init = ekvfs_init,
    .destroy = ekvfs_destroy,
    .getattr = ekvfs_getattr,
    .statfs = ekvfs_statfs,
    .readdir = ekvfs_readdir,
    .open = ekvfs_open,
    .create = ekvfs_create,
    .read = ekvfs_read,
    .write = ekvfs_write,
    .flush = ekvfs_flush,
    .fsync = ekvfs_fsync,
    .release = ekvfs_release,
    .truncate = ekvfs_truncate,
    .unlink = ekvfs_unlink,
    .rename = ekvfs_rename,
    .chmod = ekvfs_chmod,
    .chown = ekvfs_chown,
    .utimens = ekvfs_utimens,
    .mkdir = ekvfs_mkdir,
    .mknod = ekvfs_mknod,
    .symlink = ekvfs_symlink,
    .link = ekvfs_link,
    .getxattr = ekvfs_getxattr,
    .listxattr = ekvfs_listxattr,
    .setxattr = ekvfs_setxattr,
    .removexattr = ekvfs_removexattr,
};
