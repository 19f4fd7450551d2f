/*
 * mount_files.c - open files: open, create, mknod, read, write, flush,
 * fsync, release and truncate, on the content that the writable opens of
 * a key share (struct node in mount.h).
 *
 * Writable opens share one content, so they use the page cache like any
 * file system (shared mmap works): the first writer of a key starts with
 * the pages dropped (keep_cache off), later ones keep them. A read-only
 * open reads the value stored when it was opened, and never a mix: how it
 * may use the page cache for that, and what a writer must do first, is
 * mount_cache.c's.
 *
 * Each function takes fs.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mount.h"

/* The open file fi stands for, or NULL for one released meanwhile. */
#define H(fi) ((struct handle *)fh_get((fi)->fh, FH_FILE))

static void reply_status(fuse_req_t req, int err)
{
    fuse_reply_err(req, err < 0 ? -err : err);
}

/* ---- the shared content ------------------------------------------------ */

static int reserve(struct node *n, size_t need)
{
    return content_grow(&n->buf, &n->cap, &n->mapped, n->len, need);
}

/* Make the content len bytes long; new bytes read as zeros. */
static int resize(struct node *n, size_t len)
{
    int err = reserve(n, len);
    if (err)
        return err;
    if (len > n->len)
        memset(n->buf + n->len, 0, len - n->len);
    n->len = len;
    stream_cut(n, len);
    return 0;
}

static void drop_content(struct node *n)
{
    stream_drop(n);
    n->no_stream = false;
    content_drop(n->buf, n->cap, n->mapped);
    n->buf = NULL;
    n->len = n->cap = 0;
    n->mapped = false;
    n->loaded = n->dirty = n->reported = n->stored = false;
}

/* h changed the shared content. */
static void mark_dirty(struct handle *h)
{
    h->node->dirty = true;
    h->node->reported = false;
    h->wrote = true;
    node_changed(h->node);
}

void node_size(const struct node *n, uint64_t *size)
{
    if (n && n->loaded)
        *size = n->len;
}

/*
 * Store n's content: one put, an atomic replace. The content of a file
 * whose key was unlinked or replaced goes nowhere. After a put, no writer
 * has unstored changes of its own any more.
 */
static int store_node(struct node *n)
{
    if (!n->dirty)
        return 0;
    if (n->unlinked) {
        stream_drop(n);
        n->dirty = false;
        return 0;
    }
    bool streamed;
    int err = stream_store(n, FLUSH_DEFER_ERASE, &streamed);
    if (!streamed)
        err = put_value(n->key, n->klen, n->buf, n->len, FLUSH_DEFER_ERASE);
    n->no_stream = false; /* the next changes may stream again */
    if (err) {
        n->reported = true; /* the old value stays */
        return err;
    }
    n->dirty = false;
    n->stored = true;
    n->unsynced = false; /* the put's first flush was real */
    for (struct handle *h = n->handles; h; h = h->next)
        h->wrote = false;
    now_ts(&n->ctime);
    return 0;
}

/* Make a created file's empty value durable if no put did it yet. */
static int sync_created(struct node *n)
{
    if (!n->unsynced)
        return 0;
    int err = to_errno(devsync_now());
    if (!err)
        n->unsynced = false;
    return err;
}

/* ---- open ---------------------------------------------------------------- */

static void attach(struct handle *h, struct node *n)
{
    h->node = n;
    h->next = n->handles;
    if (h->next)
        h->next->prev = h;
    n->handles = h;
    n->nopen++;
    if (h->writable)
        n->nwriters++;
    if (h->cached)
        n->ncached++;
    h->gnext = fs.all.gnext;
    h->gprev = &fs.all;
    fs.all.gnext->gprev = h;
    fs.all.gnext = h;
}

/*
 * A writer whose lookup found the file just before another process
 * unlinked it (or renamed another file over it) opens that file, as on
 * any file system: the unlink came after its open, and what it writes
 * goes nowhere when it closes. That needs no readers reading it through
 * the page cache, and no old value, which is gone with the key: a
 * truncating open, one whose content other writers hold, or one that
 * can only write (it starts empty; only its fstat could tell). Any other
 * open of such a file (O_RDWR, O_APPEND) is ESTALE, and the kernel looks
 * the name up again.
 */

/*
 * Open node n for fi (size: its stored size; created: just made empty).
 * A writer joins the node's shared content, loading it if it is the
 * first; a reader takes the stored value. Needs the lock.
 */
static int open_node(struct node *n, struct fuse_file_info *fi,
                     uint32_t size, bool created)
{
    int acc = fi->flags & O_ACCMODE;
    bool trunc = (fi->flags & O_TRUNC) && !created;
    bool writable = acc != O_RDONLY || trunc;
    /* An orphan open (see above) needs no way made. */
    bool orphan = n->unlinked && !n->retired && !n->ncached &&
                  (trunc || n->loaded ||
                   (acc == O_WRONLY && !(fi->flags & O_APPEND)));
    int err = writable && !orphan ? cache_make_way(n) : 0;
    if (err)
        return err;
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->writable = writable;
    h->append = (fi->flags & O_APPEND) != 0;
    if (!h->writable && (n->unlinked || n->retired)) {
        /* The kernel's file for the name was deleted or replaced while
         * this open was under way: it reads the key's value as it is now
         * (stored after the open began), straight from the daemon, or
         * finds the name gone. */
        ekv_key_info info;
        err = ekv_stat_key(fs.store, n->key, n->klen, &info);
        if (!err && info.value_size)
            err = load_value(n->key, n->klen, info.value_size, &h->snap);
        fi->direct_io = 1;
        fi->keep_cache = 1;
    } else if (!h->writable && cache_lazy_ok(n, fi)) {
        h->lazy = true;
        h->snap.len = size;
        if (!fs.rdonly)
            h->cached = true;
    } else if (!h->writable) {
        if (n->loaded && !n->dirty) {
            /* The shared content is what is stored. */
            err = value_alloc(&h->snap, n->len);
            if (!err && n->len)
                memcpy(h->snap.p, n->buf, n->len);
            h->snap.len = n->len;
        } else if (size) {
            err = load_value(n->key, n->klen, size, &h->snap);
        }
        cache_reader_mode(h, n, fi, size);
    } else if (!n->loaded) {
        if (!trunc && !created && size) {
            struct value v;
            err = load_value(n->key, n->klen, size, &v);
            if (!err) {
                n->buf = v.p;
                n->len = v.len;
                n->cap = v.cap;
                n->mapped = v.mapped;
            }
        }
        if (!err) {
            n->loaded = true;
            n->dirty = n->reported = false;
        }
        fi->keep_cache = 0; /* pages cached before may be stale */
    } else {
        fi->keep_cache = fs.cache; /* the pages are the shared content's */
    }
    if (!err && !(h->fh = fh_new(h, FH_FILE)))
        err = -ENOMEM;
    if (err) {
        value_free(&h->snap);
        free(h);
        return err;
    }
    if (h->cached && !h->lazy) {
        n->pages_ok = true; /* dropped at this open if they were not */
        n->pages_warm = h->snap.len == size;
    }
    if (h->lazy)
        n->nlazy++;
    if (h->writable)
        n->pages_ok = n->pages_warm = false; /* the writers' pages */
    attach(h, n);
    if (trunc) {
        if (n->len)
            n->len = 0;
        stream_cut(n, 0);
        mark_dirty(h);
    }
    fi->fh = h->fh;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 11)
    /* A handle that can never write needs no FLUSH on close. */
    fi->noflush = !h->writable;
#endif
    return 0;
}

/*
 * Open the key's current node *n from a create (the kernel had no file
 * for the name): a reply with a new node is as good as the old one, so
 * readers holding the old one through the page cache retire it here and
 * the opener gets the new node, with no ESTALE round. Needs the lock.
 */
static int open_current(struct node **n, struct fuse_file_info *fi,
                        uint32_t size)
{
    int acc = fi->flags & O_ACCMODE;
    bool writable = acc != O_RDONLY || (fi->flags & O_TRUNC);
    if (writable && (*n)->ncached) {
        int err = cache_make_way(*n);
        if (err != -ESTALE)
            return err ? err : -EIO;
        struct node *succ = node_find((*n)->key, (*n)->klen);
        if (!succ)
            return -ESTALE;
        *n = succ;
    }
    return open_node(*n, fi, size, false);
}

/* The stored size of n's key (0 for a node whose key is gone). */
static uint32_t stored_size(const struct node *n)
{
    ekv_key_info info;
    if (n->unlinked || n->retired)
        return 0;
    return ekv_stat_key(fs.store, n->key, n->klen, &info) == 0
               ? info.value_size
               : 0;
}

static bool drop_handle(struct handle *h);

/* A handle whose open reply the kernel never got: nobody will close it. */
static void abandon(struct fuse_file_info *fi)
{
    ekvfs_lock();
    struct handle *h = H(fi);
    if (h)
        (void)drop_handle(h);
    ekvfs_unlock();
}

void ekvfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    int acc = fi->flags & O_ACCMODE;
    if (fs.rdonly && (acc != O_RDONLY || (fi->flags & O_TRUNC))) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    ekvfs_lock();
    struct node *n = NODE(ino);
    int err = open_node(n, fi, stored_size(n), false);
    ekvfs_unlock();
    if (err)
        reply_status(req, err);
    else if (fuse_reply_open(req, fi) != 0)
        abandon(fi);
}

/* The file exists from here on: an empty value is stored at once (touch
 * needs nothing more) and made durable by the close. The mode asked for
 * is kept (in memory, as chmod's). */
static int create_key(const keybuf *kb, mode_t mode, struct node **out)
{
    /* Durable by the close (or an earlier put): see mount_sync.c. */
    int err = put_value(kb->p, kb->len, NULL, 0, FLUSH_DEFER_ALL);
    if (err)
        return err;
    root_changed();
    struct node *n = node_get(kb->p, kb->len);
    if (!n)
        return -ENOMEM;
    n->unsynced = true;
    now_ts(&n->mtime);
    n->atime = n->ctime = n->mtime;
    n->has_times = true;
    mode_t want = mode & 07777 & ~fs.umask;
    if ((S_IFREG | want) != node_mode(NULL)) {
        n->mode = want;
        n->has_mode = true;
    }
    *out = n;
    return 0;
}

/* The key a new name stands for: 0 with *exists set, or an error. */
static int key_to_create(fuse_ino_t parent, const char *name, keybuf *kb,
                         ekv_key_info *info, bool *exists)
{
    int err = resolve(parent, name, kb, CREATE);
    if (err)
        return err;
    err = ekv_stat_key(fs.store, kb->p, kb->len, info);
    *exists = err == 0;
    return err == EKV_ENOENT ? 0 : err;
}

void ekvfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi)
{
    if (fs.rdonly) {
        fuse_reply_err(req, EROFS);
        return;
    }
    keybuf kb;
    ekv_key_info info;
    struct node *n = NULL;
    bool exists = false;
    ekvfs_lock();
    int err = key_to_create(parent, name, &kb, &info, &exists);
    if (!err && exists) {
        /* Created meanwhile (not through this kernel): an open. */
        if (fi->flags & O_EXCL)
            err = -EEXIST;
        else if (!(n = node_get(kb.p, kb.len)))
            err = -ENOMEM;
        else
            err = open_current(&n, fi, info.value_size);
    } else if (!err) {
        err = create_key(&kb, mode, &n);
        if (!err)
            err = open_node(n, fi, 0, true);
    }
    kb_free(&kb);
    reply_entry_unlock(req, n, fi, err);
}

/* mknod(2) of a regular file: an empty value, durable when it returns. */
void ekvfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (fs.rdonly || !S_ISREG(mode)) {
        fuse_reply_err(req, fs.rdonly ? EROFS : EPERM);
        return;
    }
    keybuf kb;
    ekv_key_info info;
    struct node *n = NULL;
    bool exists = false;
    ekvfs_lock();
    int err = key_to_create(parent, name, &kb, &info, &exists);
    if (!err)
        err = exists ? -EEXIST : create_key(&kb, mode, &n);
    if (n && n->unsynced) {
        int serr = to_errno(devsync_now());
        if (!serr)
            n->unsynced = false;
        if (!err)
            err = serr;
    }
    kb_free(&kb);
    reply_entry_unlock(req, n, NULL, err);
}

void files_abandon(struct fuse_file_info *fi)
{
    abandon(fi);
}

/* ---- read and write ------------------------------------------------------ */

void ekvfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi)
{
    (void)ino;
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    ekvfs_lock();
    const struct handle *h = H(fi);
    if (!h) {
        ekvfs_unlock();
        fuse_reply_err(req, EBADF);
        return;
    }
    const uint8_t *src = h->writable ? h->node->buf : h->snap.p;
    size_t len = h->writable ? h->node->len : h->snap.len;
    if (h->lazy) {
        struct node *nd = h->node;
        int err = nd->frozen.p ? 0 : nd->unlinked || nd->retired
                                       ? -EIO
                                       : cache_freeze(nd);
        if (!err && nd->frozen.len != h->snap.len)
            err = -EIO; /* the value that verifies now is another copy */
        if (err) {
            ekvfs_unlock();
            reply_status(req, err);
            return;
        }
        src = nd->frozen.p;
    }
    size_t n = 0;
    if ((uint64_t)off < len) {
        n = len - (size_t)off;
        if (n > size)
            n = size;
    }
    /* Replied under the lock: a writer's content may move. */
    fuse_reply_buf(req, n ? (const char *)src + off : NULL, n);
    ekvfs_unlock();
}

void ekvfs_write(fuse_req_t req, fuse_ino_t ino, const char *data,
                 size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    ekvfs_lock();
    struct handle *h = H(fi);
    if (!h) {
        ekvfs_unlock();
        fuse_reply_err(req, EBADF);
        return;
    }
    struct node *n = h->node;
    /* O_APPEND appends at the end of the shared content. */
    uint64_t pos = h->append ? n->len : (uint64_t)off;
    uint64_t max = max_value(n->klen);
    int err = 0;
    if (!h->writable) {
        err = -EBADF;
    } else if (size && pos >= max) {
        err = -EFBIG;
    } else {
        if (pos + size > max)
            size = (size_t)(max - pos); /* a short write, then EFBIG */
        size_t end = (size_t)pos + size;
        /* Past the end: zeros up to pos (a gap reads as zeros), the data
         * after; a write of nothing changes nothing. */
        if (size && end > n->len && !(err = reserve(n, end))) {
            if (pos > n->len)
                memset(n->buf + n->len, 0, (size_t)pos - n->len);
            n->len = end;
        }
    }
    if (err) {
        ekvfs_unlock();
        reply_status(req, err);
        return;
    }
    /* Nothing can fail from here on, and nobody sees the content before
     * fs.lock is let go: the writer may send its next write while this
     * one is copied in and the stream takes its bytes to the images. */
    fuse_reply_write(req, size);
    if (size) {
        memcpy(n->buf + pos, data, size);
        mark_dirty(h);
        stream_wrote(n, pos, size);
    }
    ekvfs_unlock();
}

/* ---- flush, fsync, release ---------------------------------------------- */

/* flush (every close) stores the content if this handle changed it;
 * fsync stores it if anyone did and makes every deferred flush durable. */
static int sync_handle(struct fuse_file_info *fi, bool all)
{
    ekvfs_lock();
    struct handle *h = H(fi);
    if (!h) {
        ekvfs_unlock();
        return -EBADF;
    }
    struct node *n = h->node;
    int err = 0;
    if (h->writable && (h->wrote || all))
        err = store_node(n);
    if (!err)
        err = all ? to_errno(devsync_now()) : sync_created(n);
    ekvfs_unlock();
    return err;
}

void ekvfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    reply_status(req, sync_handle(fi, false));
}

void ekvfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                 struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    reply_status(req, sync_handle(fi, true));
}

/* Take h off its node and the global list and free it; needs the lock.
 * Returns true when the node's content went with it unstored after a
 * failed put: the kernel must then forget what it cached of the node. */
static bool drop_handle(struct handle *h)
{
    struct node *n = h->node;
    bool lost = false;
    if (h->prev)
        h->prev->next = h->next;
    else
        n->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->gprev->gnext = h->gnext;
    h->gnext->gprev = h->gprev;
    n->nopen--;
    if (h->cached && --n->ncached == 0)
        pthread_cond_broadcast(&fs.reader_gone);
    if (h->lazy && --n->nlazy == 0) {
        value_free(&n->frozen);
    }
    if (h->writable && --n->nwriters == 0) {
        lost = n->dirty && !n->unlinked;
        drop_content(n);
        /* The writers' pages are the stored value, unless they held
         * changes that were lost. */
        n->pages_ok = n->pages_warm = !lost;
    }
    node_maybe_free(n);
    fh_drop(h->fh);
    value_free(&h->snap);
    free(h);
    return lost;
}

void ekvfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    ekvfs_lock();
    struct handle *h = H(fi);
    if (!h) {
        ekvfs_unlock();
        fuse_reply_err(req, EBADF);
        return;
    }
    struct node *n = h->node;
    /* Changes this handle made after its last flush (through a shared
     * mapping) are stored now; nobody is left to hear of an error but
     * the log. */
    if (h->wrote && n->dirty && !n->reported) {
        int err = store_node(n);
        if (err) {
            char name[NAME_MAX_BYTES + 1];
            key_to_name(n->key, n->klen, name);
            mount_log("%s: changes not stored on release: %s", name,
                      strerror(-err));
        }
    }
    int serr = sync_created(n);
    if (serr)
        mount_log("flushing the images: %s", strerror(-serr));
    struct push p = {0};
    if (h->writable)
        cache_plan_push(n, &p);
    fuse_ino_t id = NODE_ID(n);
    bool lost = drop_handle(h);
    ekvfs_unlock();
    if (lost)
        invalidate(id);
    cache_do_push(&p);
    fuse_reply_err(req, 0);
}

/* ---- truncate ---------------------------------------------------------- */

int files_truncate(struct node *n, struct fuse_file_info *fi, off_t size)
{
    if (size < 0)
        return -EINVAL;
    if (fs.rdonly)
        return -EROFS;
    if (fi) {
        /* ftruncate, or O_TRUNC: the content only, stored on close. */
        struct handle *h = H(fi);
        int err = 0;
        if (!h)
            err = -EBADF;
        else if (!h->writable)
            err = -EINVAL;
        else if ((uint64_t)size > max_value(h->node->klen))
            err = -EFBIG;
        else if (!(err = resize(h->node, (size_t)size)))
            mark_dirty(h);
        return err;
    }
    /* truncate(2) by name: the stored value is read, resized and put
     * (using the length the read returned, whichever copy it was); open
     * writers' shared content is resized too and stays theirs to store. */
    int err = cache_make_way(n);
    if (err)
        return err;
    ekv_key_info info;
    struct value val = {0};
    err = ekv_stat_key(fs.store, n->key, n->klen, &info);
    if (!err && (uint64_t)size > max_value(n->klen))
        err = -EFBIG;
    if (!err)
        err = load_value(n->key, n->klen, info.value_size, &val);
    if (!err && (uint64_t)size != val.len) {
        if ((uint64_t)size > val.len) {
            err = content_grow(&val.p, &val.cap, &val.mapped, val.len,
                               (size_t)size);
            if (!err)
                memset(val.p + val.len, 0, (size_t)size - val.len);
        }
        if (!err)
            err = put_value(n->key, n->klen, val.p, (size_t)size,
                            FLUSH_DEFER_ERASE);
    }
    if (!err) {
        node_changed(n);
        if (!n->nwriters)
            n->pages_ok = n->pages_warm = false; /* the kernel cut or
                                                     grew its pages */
        /* A clean content equals the stored value, and still does;
         * a dirty one stays dirty. */
        if (n->loaded && n->len != (uint64_t)size)
            err = resize(n, (size_t)size);
    }
    value_free(&val);
    return err;
}

/* ---- the end -------------------------------------------------------------- */

void files_report_unstored(void)
{
    for (struct handle *h = fs.all.gnext; h != &fs.all; h = h->gnext) {
        struct node *n = h->node;
        if (!n->dirty || n->unlinked)
            continue;
        char name[NAME_MAX_BYTES + 1];
        key_to_name(n->key, n->klen, name);
        mount_log("%s: left unchanged: changes never closed or fsynced "
                  "were not stored",
                  name);
        n->dirty = false; /* named once */
    }
}

void mount_teardown(void)
{
    ekvfs_lock();
    while (fs.all.gnext != &fs.all)
        (void)drop_handle(fs.all.gnext);
    dirs_free_all();
    cache_free_all();
    nodes_free_all();
    content_free_spare();
    ekvfs_unlock();
}
