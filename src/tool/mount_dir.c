/*
 * mount_dir.c - names: lookups, the one directory (its listing, unlink,
 * rename), the kernel's forgetting of files, and the refusal of what a
 * flat store of regular files cannot hold.
 *
 * A name's file is its key's current node (mount_nodes.c); a lookup
 * creates it if need be and counts the lookup, FORGET gives the counts
 * back. A key that does not exist is answered with a negative entry the
 * kernel may keep (negative_timeout). An unlinked file stays a node while
 * open or known to the kernel, so fstat(2) of it works; its key is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

uint64_t key_ino(const uint8_t *key, size_t klen)
{
    /* Stable for the key across mounts and versions, never 0 or 1 (the
     * root), so that listings and stat agree. */
    uint64_t h = key_name_hash(key, klen) & 0x7fffffffffffffffull;
    return h < 2 ? h + 2 : h;
}

/* ---- lookups ------------------------------------------------------------- */

void ekvfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    keybuf kb;
    ekv_key_info info;
    struct node *n = NULL;
    ekvfs_lock();
    int err = find_key(parent, name, &kb, &info);
    if (!err && !(n = node_get(kb.p, kb.len)))
        err = -ENOMEM;
    kb_free(&kb);
    if (err == EKV_ENOENT && fs.negative_timeout > 0) {
        /* The kernel may remember that the name is missing. */
        ekvfs_unlock();
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = fs.negative_timeout;
        fuse_reply_entry(req, &e);
        return;
    }
    reply_entry_unlock(req, n, NULL, err);
}

void ekvfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    if (ino != FUSE_ROOT_ID) {
        ekvfs_lock();
        node_forget(NODE(ino), nlookup);
        ekvfs_unlock();
    }
    fuse_reply_none(req);
}

void ekvfs_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets)
{
    ekvfs_lock();
    for (size_t i = 0; i < count; i++)
        if (forgets[i].ino != FUSE_ROOT_ID)
            node_forget(NODE(forgets[i].ino), forgets[i].nlookup);
    ekvfs_unlock();
    fuse_reply_none(req);
}

/* ---- listing ----------------------------------------------------------- */

/* A listing, made whole at opendir and handed out in pieces. */
struct listing {
    char *buf;
    size_t len, cap;
    fuse_req_t req;
    int err;
};

static void free_listing(void *p)
{
    struct listing *l = p;
    free(l->buf);
    free(l);
}

static void add_entry(struct listing *l, const char *name, uint64_t ino,
                      mode_t type)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = (ino_t)ino;
    st.st_mode = type;
    size_t need = fuse_add_direntry(l->req, NULL, 0, name, NULL, 0);
    if (l->len + need > l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16384;
        while (ncap < l->len + need)
            ncap *= 2;
        char *p = realloc(l->buf, ncap);
        if (!p) {
            l->err = -ENOMEM;
            return;
        }
        l->buf = p;
        l->cap = ncap;
    }
    /* The offset of an entry is where the next one starts. */
    fuse_add_direntry(l->req, l->buf + l->len, need, name, &st,
                      (off_t)(l->len + need));
    l->len += need;
}

static int list_entry(void *ctx, const ekv_key_info *info)
{
    struct listing *l = ctx;
    char name[NAME_MAX_BYTES + 1];
    key_to_name(info->key, info->key_len, name);
    add_entry(l, name, key_ino(info->key, info->key_len), S_IFREG);
    return l->err ? 1 : 0;
}

/*
 * The kernel may keep listings (cache_readdir): every change of the names
 * passes through it, and it drops its copy itself. Besides, a listing is
 * kept from one opendir to the next only while no name changed here.
 */
void ekvfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    struct listing *l = calloc(1, sizeof(*l));
    if (!l) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    l->req = req;
    ekvfs_lock();
    add_entry(l, ".", FUSE_ROOT_ID, S_IFDIR);
    add_entry(l, "..", FUSE_ROOT_ID, S_IFDIR);
    int err = l->err ? l->err : ekv_iterate(fs.store, list_entry, l);
    if (err > 0)
        err = l->err;
    if (fs.cache) {
        fi->cache_readdir = 1;
        fi->keep_cache = fs.dir_listed == fs.dir_version;
        fs.dir_listed = fs.dir_version;
    }
    l->req = NULL;
    if (!err && !(fi->fh = fh_new(l, FH_DIR)))
        err = -ENOMEM;
    ekvfs_unlock();
    if (err) {
        free_listing(l);
        fuse_reply_err(req, -err);
        return;
    }
    if (fuse_reply_open(req, fi) != 0) {
        ekvfs_lock();
        fh_drop(fi->fh);
        ekvfs_unlock();
        free_listing(l);
    }
}

void ekvfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    (void)ino;
    ekvfs_lock(); /* against a RELEASEDIR that overtook us (mount_fh.c) */
    const struct listing *l = fh_get(fi->fh, FH_DIR);
    if (!l) {
        ekvfs_unlock();
        fuse_reply_err(req, EBADF);
        return;
    }
    if (off < 0 || (size_t)off >= l->len) {
        ekvfs_unlock();
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* Whole entries only, from the one that starts at off. Each entry
     * on the wire holds the offset of the next one, the 64-bit field
     * after its 64-bit node number (struct fuse_dirent). */
    size_t end = (size_t)off, lim = (size_t)off + size;
    while (end < l->len) {
        uint64_t next;
        memcpy(&next, l->buf + end + 8, sizeof(next));
        if (next > lim)
            break;
        end = (size_t)next;
    }
    fuse_reply_buf(req, l->buf + off, end - (size_t)off);
    ekvfs_unlock();
}

void ekvfs_releasedir(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info *fi)
{
    (void)ino;
    ekvfs_lock();
    struct listing *l = fh_get(fi->fh, FH_DIR);
    fh_drop(fi->fh);
    ekvfs_unlock();
    if (l)
        free_listing(l);
    fuse_reply_err(req, 0);
}

void dirs_free_all(void)
{
    fh_free_all(free_listing);
}

/* ---- unlink and rename --------------------------------------------------- */

void ekvfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (fs.rdonly) {
        fuse_reply_err(req, EROFS);
        return;
    }
    keybuf kb;
    ekvfs_lock();
    int err = resolve(parent, name, &kb, LOOKUP);
    struct node *n = err ? NULL : node_find(kb.p, kb.len);
    if (n)
        err = cache_freeze(n); /* its readers keep their value */
    if (!err)
        err = to_errno(ekv_delete(fs.store, kb.p, kb.len));
    if (!err) {
        if (n)
            node_unlink(n); /* open handles keep their content */
        root_changed();
    }
    ekvfs_unlock();
    kb_free(&kb);
    fuse_reply_err(req, -err);
}

void ekvfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    keybuf kb;
    ekv_key_info info;
    ekvfs_lock();
    int err = find_key(parent, name, &kb, &info);
    ekvfs_unlock();
    kb_free(&kb);
    fuse_reply_err(req, err ? -err : ENOTDIR);
}

/*
 * rename: the value is stored under the new key before the old key is
 * deleted, so a crash in between leaves both, never neither. An exchange
 * would need two puts that a crash could separate (both keys then holding
 * one value), so RENAME_EXCHANGE is refused with EINVAL. A rename over a
 * file that is open is one step like any other: the open target keeps
 * its content, its closes store nothing.
 */
static int rename_keys(fuse_ino_t parent, const char *name,
                       fuse_ino_t newparent, const char *newname,
                       unsigned int flags)
{
    keybuf src, dst;
    ekv_key_info si, di;
    struct node *sn = NULL, *dn;
    uint8_t *newkey = NULL;
    struct value val = {0};
    int err = find_key(parent, name, &src, &si);
    int derr = resolve(newparent, newname, &dst, CREATE);
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
    if (!sn || !newkey) {
        err = -ENOMEM;
        goto out;
    }
    dn = node_find(dst.p, dst.len);
    err = dn ? cache_freeze(dn) : 0; /* its readers keep their value */
    if (!err)
        err = load_value(src.p, src.len, si.value_size, &val);
    if (!err)
        err = put_value(dst.p, dst.len, val.p, val.len, FLUSH_DEFER_ERASE);
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
    now_ts(&sn->ctime);
    node_rekey(sn, newkey, dst.len); /* open handles follow the file */
    newkey = NULL;
    sn = NULL;
    root_changed();
out:
    if (sn)
        node_maybe_free(sn);
    value_free(&val);
    free(newkey);
    kb_free(&src);
    kb_free(&dst);
    return err;
}

void ekvfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname,
                  unsigned int flags)
{
    int err;
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        err = -EINVAL;
    } else if (fs.rdonly) {
        err = -EROFS;
    } else {
        ekvfs_lock();
        err = rename_keys(parent, name, newparent, newname, flags);
        ekvfs_unlock();
    }
    fuse_reply_err(req, -err);
}

/* ---- what a flat store of regular files cannot hold ------------------- */

void ekvfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode)
{
    (void)parent, (void)name, (void)mode;
    fuse_reply_err(req, fs.rdonly ? EROFS : EPERM);
}

void ekvfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                   const char *name)
{
    (void)link, (void)parent, (void)name;
    fuse_reply_err(req, fs.rdonly ? EROFS : EPERM);
}

void ekvfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                const char *newname)
{
    (void)ino, (void)newparent, (void)newname;
    fuse_reply_err(req, fs.rdonly ? EROFS : EPERM);
}
