/*
 * mount_files.c - open files: open, create, read, write, flush, fsync,
 * release and truncate, on the content that the writable opens of a key
 * share (struct node in mount.h).
 *
 * The kernel keeps one size and one page cache per file. Writable opens
 * share one content, so they use the page cache like any file system
 * (shared mmap works): the first writer of a key starts with an empty
 * cache (keep_cache off), later ones keep it. A read-only open reads the
 * value stored when it was opened, which the shared pages may not hold:
 * it bypasses the page cache (direct_io) and leaves the writers' pages
 * alone.
 *
 * Each function takes fs.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"

#define H(fi) ((struct handle *)(uintptr_t)(fi)->fh)

/* ---- the shared content ------------------------------------------------ */

static int reserve(struct node *n, size_t need)
{
    if (need <= n->cap)
        return 0;
    size_t ncap = n->cap ? n->cap : 4096;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    uint8_t *p = realloc(n->buf, ncap);
    if (!p)
        return -ENOMEM;
    n->buf = p;
    n->cap = ncap;
    return 0;
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
    return 0;
}

static void drop_content(struct node *n)
{
    free(n->buf);
    n->buf = NULL;
    n->len = n->cap = 0;
    n->loaded = n->dirty = n->reported = false;
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
        n->dirty = false;
        return 0;
    }
    int err = put_value(n->key, n->klen, n->buf, n->len, FLUSH_DEFER_ERASE);
    if (err) {
        n->reported = true; /* the old value stays */
        return err;
    }
    n->dirty = false;
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
    h->gnext = fs.all.gnext;
    h->gprev = &fs.all;
    fs.all.gnext->gprev = h;
    fs.all.gnext = h;
}

/*
 * Open key kb for fi (size: its stored size; created: just made empty).
 * A writer joins the node's shared content, loading it if it is the
 * first; a reader takes the stored value. Needs the lock.
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
    struct node *n = node_get(kb->p, kb->len);
    if (!n) {
        free(h);
        return -ENOMEM;
    }
    int err = 0;
    if (!h->writable) {
        if (n->loaded && !n->dirty) {
            /* The shared content is what is stored. */
            h->snap = malloc(n->len ? n->len : 1);
            if (!h->snap)
                err = -ENOMEM;
            else if (n->len)
                memcpy(h->snap, n->buf, n->len);
            h->snap_len = n->len;
        } else if (size) {
            err = load_value(kb->p, kb->len, size, &h->snap, &h->snap_len);
        }
        if (fs.rdonly && fs.cache) {
            /* Nothing can change a value: the page cache stays right. */
            fi->keep_cache = 1;
        } else {
            fi->direct_io = 1;
            fi->keep_cache = 1; /* leave the writers' cached pages alone */
        }
    } else if (!n->loaded) {
        if (!trunc && !created && size) {
            uint8_t *buf;
            size_t len;
            err = load_value(kb->p, kb->len, size, &buf, &len);
            if (!err) {
                n->buf = buf;
                n->len = n->cap = len;
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
    if (err) {
        free(h->snap);
        free(h);
        node_maybe_free(n);
        return err;
    }
    attach(h, n);
    if (trunc) {
        if (n->len)
            n->len = 0;
        mark_dirty(h);
    }
    fi->fh = (uintptr_t)h;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 11)
    /* A handle that can never write needs no FLUSH on close. */
    fi->noflush = !h->writable;
#endif
    return 0;
}

int ekvfs_open(const char *path, struct fuse_file_info *fi)
{
    int acc = fi->flags & O_ACCMODE;
    if (fs.rdonly && (acc != O_RDONLY || (fi->flags & O_TRUNC)))
        return -EROFS;
    keybuf kb;
    ekv_key_info info;
    ekvfs_lock();
    int err = find_key(path, &kb, &info);
    if (!err)
        err = open_key(&kb, fi, info.value_size, false);
    ekvfs_unlock();
    kb_free(&kb);
    return err;
}

/* The file exists from here on: an empty value is stored at once (touch
 * needs nothing more) and made durable by the close. The mode asked for
 * is kept (in memory, as chmod's). */
int ekvfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    keybuf kb;
    ekv_key_info info;
    ekvfs_lock();
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
                struct node *n = H(fi)->node;
                n->unsynced = true;
                now_ts(&n->mtime);
                n->atime = n->ctime = n->mtime;
                n->has_times = true;
                mode_t want = mode & 07777 & ~fs.umask;
                if ((S_IFREG | want) != node_mode(NULL)) {
                    n->mode = want;
                    n->has_mode = true;
                }
                root_changed();
            }
        }
    }
    ekvfs_unlock();
    kb_free(&kb);
    return err;
}

/* ---- read and write ------------------------------------------------------ */

int ekvfs_read(const char *path, char *buf, size_t size, off_t off,
               struct fuse_file_info *fi)
{
    (void)path;
    if (off < 0)
        return -EINVAL;
    ekvfs_lock();
    const struct handle *h = H(fi);
    const uint8_t *src = h->writable ? h->node->buf : h->snap;
    size_t len = h->writable ? h->node->len : h->snap_len;
    size_t n = 0;
    if ((uint64_t)off < len) {
        n = len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, src + off, n);
    }
    ekvfs_unlock();
    return (int)n;
}

int ekvfs_write(const char *path, const char *data, size_t size, off_t off,
                struct fuse_file_info *fi)
{
    (void)path;
    if (off < 0)
        return -EINVAL;
    ekvfs_lock();
    struct handle *h = H(fi);
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
        if (end > n->len)
            err = resize(n, end);
        if (!err && size) {
            memcpy(n->buf + pos, data, size);
            mark_dirty(h);
        }
    }
    ekvfs_unlock();
    return err ? err : (int)size;
}

/* ---- flush, fsync, release ---------------------------------------------- */

/* flush (every close) stores the content if this handle changed it;
 * fsync stores it if anyone did and makes every deferred flush durable. */
static int sync_handle(struct fuse_file_info *fi, bool all)
{
    ekvfs_lock();
    struct handle *h = H(fi);
    struct node *n = h->node;
    int err = 0;
    if (h->writable && (h->wrote || all))
        err = store_node(n);
    if (!err)
        err = all ? to_errno(devsync_now()) : sync_created(n);
    ekvfs_unlock();
    return err;
}

int ekvfs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    return sync_handle(fi, false);
}

int ekvfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    return sync_handle(fi, true);
}

/* Take h off its node and the global list and free it; needs the lock.
 * Returns true when the node's content went with it unstored after a
 * failed put: path then names what the kernel must forget. */
static bool drop_handle(struct handle *h, char *path)
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
    if (h->writable && --n->nwriters == 0) {
        lost = n->dirty && !n->unlinked;
        if (lost)
            node_path(n, path);
        drop_content(n);
    }
    node_maybe_free(n);
    free(h->snap);
    free(h);
    return lost;
}

int ekvfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    char ipath[NAME_MAX_BYTES + 2] = "";
    ekvfs_lock();
    struct handle *h = H(fi);
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
    /* mknod reaches create and release, never flush. */
    int serr = sync_created(n);
    if (serr)
        mount_log("flushing the images: %s", strerror(-serr));
    bool lost = drop_handle(h, ipath);
    ekvfs_unlock();
    if (lost)
        invalidate(ipath);
    return 0;
}

/* ---- truncate ---------------------------------------------------------- */

int ekvfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (size < 0)
        return -EINVAL;
    if (fs.rdonly)
        return -EROFS;
    ekvfs_lock();
    int err = 0;
    if (fi) {
        /* ftruncate, or O_TRUNC: the content only, stored on close. */
        struct handle *h = H(fi);
        if (!h->writable)
            err = -EINVAL;
        else if ((uint64_t)size > max_value(h->node->klen))
            err = -EFBIG;
        else if (!(err = resize(h->node, (size_t)size)))
            mark_dirty(h);
        ekvfs_unlock();
        return err;
    }
    if (is_root(path)) {
        ekvfs_unlock();
        return -EISDIR;
    }
    /* truncate(2) by name: the stored value is read, resized and put
     * (using the length the read returned, whichever copy it was); open
     * writers' shared content is resized too and stays theirs to store. */
    keybuf kb;
    ekv_key_info info;
    uint8_t *val = NULL;
    size_t len = 0;
    err = find_key(path, &kb, &info);
    if (!err && (uint64_t)size > max_value(kb.len))
        err = -EFBIG;
    if (!err)
        err = load_value(kb.p, kb.len, info.value_size, &val, &len);
    if (!err && (uint64_t)size != len) {
        if ((uint64_t)size > len) {
            uint8_t *p = realloc(val, (size_t)size);
            if (!p) {
                err = -ENOMEM;
            } else {
                val = p;
                memset(val + len, 0, (size_t)size - len);
            }
        }
        if (!err)
            err = put_value(kb.p, kb.len, val, (size_t)size,
                            FLUSH_DEFER_ERASE);
    }
    if (!err) {
        struct node *n = node_get(kb.p, kb.len);
        if (n) {
            node_changed(n);
            /* A clean content equals the stored value, and still does;
             * a dirty one stays dirty. */
            if (n->loaded && n->len != (uint64_t)size)
                err = resize(n, (size_t)size);
        }
    }
    ekvfs_unlock();
    free(val);
    kb_free(&kb);
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
    char path[NAME_MAX_BYTES + 2];
    ekvfs_lock();
    while (fs.all.gnext != &fs.all)
        (void)drop_handle(fs.all.gnext, path);
    nodes_free_all();
    ekvfs_unlock();
}
