/*
 * mount_dir.c - the one directory: listing, unlink, rename, and the
 * refusal of what a flat store of regular files cannot hold.
 *
 * Unlinked open files. The kernel sends fstat() without the file handle,
 * so libfuse must still know a path for an unlinked file that is open:
 * instead of unlinking it, libfuse renames it to ".fuse_hiddenXXXXXXXXYYYYYYYY"
 * (hard_remove off) and unlinks that name at the last close. Here such a
 * rename of an open file is the unlink: the key is deleted (durably, as by
 * unlink) and the node is kept on a short list under the hidden name,
 * which getattr answers and readdir never shows. The unlink of the hidden
 * name at the last close just forgets it. No key is ever stored under a
 * hidden name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* ---- hidden names ------------------------------------------------------ */

#define HIDDEN_PREFIX ".fuse_hidden"

/* Whether path is "/.fuse_hidden" and 16 hex digits, libfuse's form. */
static bool hidden_form(const char *path)
{
    size_t pl = sizeof(HIDDEN_PREFIX) - 1;
    if (path[0] != '/' || strncmp(path + 1, HIDDEN_PREFIX, pl) != 0)
        return false;
    const char *h = path + 1 + pl;
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", h[i]) || !h[i])
            return false;
    return h[16] == 0;
}

struct node *hidden_find(const char *path)
{
    if (!fs.hidden || !hidden_form(path))
        return NULL;
    for (struct node *n = fs.hidden; n; n = n->next)
        if (strcmp(n->hidden, path + 1) == 0)
            return n;
    return NULL;
}

static void hidden_forget(struct node *n)
{
    struct node **p = &fs.hidden;
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p)
        *p = n->next;
    n->next = NULL;
    free(n->hidden);
    n->hidden = NULL;
    node_maybe_free(n);
}

/* ---- listing ----------------------------------------------------------- */

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

int ekvfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
                  off_t off, struct fuse_file_info *fi,
                  enum fuse_readdir_flags flags)
{
    /* path is NULL (nullpath_ok): the root is the only directory. The
     * whole listing is made at offset 0; libfuse hands it out in pieces.
     * (The kernel could keep listings, but libfuse 3.14's high-level API
     * drops cache_readdir and keep_cache from its opendir replies: the
     * open flags on the wire are 0.) */
    (void)path;
    (void)off;
    (void)fi;
    (void)flags; /* never FUSE_READDIR_PLUS: see ekvfs_init */
    struct dirfill d = {buf, filler};
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_mode = S_IFDIR;
    ekvfs_lock();
    filler(buf, ".", &st, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    int err = ekv_iterate(fs.store, fill_entry, &d);
    ekvfs_unlock();
    return err > 0 ? -ENOMEM : err;
}

/* ---- unlink and rename --------------------------------------------------- */

int ekvfs_unlink(const char *path)
{
    if (fs.rdonly)
        return -EROFS;
    keybuf kb;
    ekvfs_lock();
    struct node *hn = hidden_find(path);
    if (hn) {
        hidden_forget(hn); /* the last close of an unlinked file */
        ekvfs_unlock();
        return 0;
    }
    int err = resolve(path, &kb, LOOKUP);
    if (!err)
        err = to_errno(ekv_delete(fs.store, kb.p, kb.len));
    if (!err) {
        struct node *n = node_find(kb.p, kb.len);
        if (n)
            node_unlink(n); /* open handles keep their content */
        root_changed();
    }
    ekvfs_unlock();
    kb_free(&kb);
    return err;
}

/* libfuse hides open file from (see the top): delete its key and keep
 * the node under the hidden name. Needs the lock. */
static int hide(const char *from, const char *to)
{
    keybuf kb;
    ekv_key_info info;
    char *name = strdup(to + 1);
    int err = name ? find_key(from, &kb, &info) : -ENOMEM;
    if (!name)
        kb.p = kb.small;
    struct node *n = err ? NULL : node_find(kb.p, kb.len);
    if (!err && (!n || !n->nopen))
        err = 1; /* not open (any more): an ordinary rename */
    if (!err)
        err = to_errno(ekv_delete(fs.store, kb.p, kb.len));
    if (!err) {
        node_unlink(n);
        n->hidden = name;
        name = NULL;
        n->next = fs.hidden;
        fs.hidden = n;
        root_changed();
    }
    free(name);
    kb_free(&kb);
    return err;
}

/*
 * rename: the value is stored under the new key before the old key is
 * deleted, so a crash in between leaves both, never neither. An exchange
 * would need two puts that a crash could separate (both keys then holding
 * one value), so RENAME_EXCHANGE is refused with EINVAL.
 */
int ekvfs_rename(const char *from, const char *to, unsigned int flags)
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
    ekvfs_lock();
    if (!flags && hidden_form(to)) {
        int herr = hide(from, to);
        if (herr <= 0) {
            ekvfs_unlock();
            return herr;
        }
    }
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
    if (!sn || !newkey) {
        err = -ENOMEM;
        goto out;
    }
    err = load_value(src.p, src.len, si.value_size, &val, &len);
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
    now_ts(&sn->ctime);
    node_rekey(sn, newkey, dst.len); /* open handles follow the file */
    newkey = NULL;
    sn = NULL;
    root_changed();
out:
    if (sn)
        node_maybe_free(sn);
    ekvfs_unlock();
    free(val);
    free(newkey);
    kb_free(&src);
    kb_free(&dst);
    return err;
}

/* ---- what a flat store of regular files cannot hold ------------------- */

/* (libfuse sends mknod of a regular file to create.) */
int ekvfs_mkdir(const char *path, mode_t mode)
{
    (void)path;
    (void)mode;
    return fs.rdonly ? -EROFS : -EPERM;
}

int ekvfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
    (void)path;
    (void)mode;
    (void)rdev;
    return fs.rdonly ? -EROFS : -EPERM;
}

int ekvfs_symlink(const char *target, const char *path)
{
    (void)target;
    (void)path;
    return fs.rdonly ? -EROFS : -EPERM;
}

int ekvfs_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return fs.rdonly ? -EROFS : -EPERM;
}
