/*
 * mount_attr.c - attributes of the files and the root: getattr, chmod,
 * chown, utimens, statfs and the read-only extended attributes.
 *
 * Modes and times are kept in memory only (struct node): the store's
 * format has no place for them, and its descriptors must stay readable by
 * the upstream implementation. After a remount every file shows the mount
 * time and the mode the mount options give.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"

#define H(fi) ((struct handle *)(uintptr_t)(fi)->fh)
#define PREFERRED_IO (1u << 20)

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

void fill_stat(struct stat *st, const struct node *n, size_t klen,
               uint64_t size)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = node_mode(n);
    st->st_nlink = n && n->unlinked ? 0 : 1;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
    st->st_size = (off_t)size;
    /* The preferred I/O size: cat and cp move a large value in requests
     * of 1 MiB (the most the kernel sends at once), not 128 KiB; small
     * files keep the block size (Python sizes its buffers by this). */
    st->st_blksize = size >= PREFERRED_IO ? PREFERRED_IO : fs.block_size;
    st->st_blocks = (blkcnt_t)((value_blocks(klen, size) * fs.block_size +
                                511) / 512);
    fill_times(st, n);
}

static void fill_root(struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = root_mode();
    st->st_nlink = 2;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
    st->st_size = 0;
    st->st_atim = fs.mount_time;
    st->st_mtim = fs.root_mtime;
    st->st_ctim = fs.root_ctime;
}

/* An unlinked node: its writers' content, else what a reader holds. */
static uint64_t unlinked_size(const struct node *n)
{
    uint64_t size = 0;
    for (const struct handle *h = n->handles; h; h = h->next)
        if (!h->writable) {
            size = h->snap_len;
            break;
        }
    node_size(n, &size);
    return size;
}

static void fill_node(struct stat *st, const struct node *n)
{
    uint64_t size;
    ekv_key_info info;
    if (n->unlinked)
        size = unlinked_size(n);
    else if (ekv_stat_key(fs.store, n->key, n->klen, &info) == 0)
        size = info.value_size;
    else
        size = 0;
    node_size(n, &size);
    fill_stat(st, n, n->klen, size);
}

int ekvfs_getattr(const char *path, struct stat *st,
                  struct fuse_file_info *fi)
{
    ekvfs_lock();
    if (fi) {
        fill_node(st, H(fi)->node);
        ekvfs_unlock();
        return 0;
    }
    if (is_root(path)) {
        fill_root(st);
        ekvfs_unlock();
        return 0;
    }
    struct node *hn = hidden_find(path);
    if (hn) {
        fill_node(st, hn);
        ekvfs_unlock();
        return 0;
    }
    keybuf kb;
    ekv_key_info info;
    int err = find_key(path, &kb, &info);
    if (!err) {
        const struct node *n = node_find(kb.p, kb.len);
        uint64_t size = info.value_size;
        node_size(n, &size);
        fill_stat(st, n, kb.len, size);
    }
    ekvfs_unlock();
    kb_free(&kb);
    return err;
}

/* The node of an existing file for a change of its attributes (created
 * if need be), or NULL with *root set for the root. Needs the lock. */
static int attr_node(const char *path, struct fuse_file_info *fi,
                     struct node **out, bool *root)
{
    *root = false;
    *out = NULL;
    if (fi) {
        *out = H(fi)->node;
        return 0;
    }
    if (is_root(path)) {
        *root = true;
        return 0;
    }
    if ((*out = hidden_find(path)))
        return 0;
    keybuf kb;
    ekv_key_info info;
    int err = find_key(path, &kb, &info);
    if (!err && !(*out = node_get(kb.p, kb.len)))
        err = -ENOMEM;
    kb_free(&kb);
    return err;
}

/* Any mode is accepted and shown until the unmount (see above). */
int ekvfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    struct node *n;
    bool root;
    struct timespec t;
    now_ts(&t);
    ekvfs_lock();
    int err = attr_node(path, fi, &n, &root);
    if (!err && root) {
        fs.root_mode = mode & 07777;
        fs.root_has_mode = true;
        fs.root_ctime = t;
    } else if (!err) {
        if (!n->has_times) {
            n->atime = n->mtime = fs.mount_time;
            n->has_times = true;
        }
        n->mode = mode & 07777;
        n->has_mode = true;
        n->ctime = t;
    }
    ekvfs_unlock();
    return err;
}

/* Owners are the mount's: a change to what they already are is accepted
 * (cp -p, rsync -a do that), anything else is not possible. */
int ekvfs_chown(const char *path, uid_t uid, gid_t gid,
                struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    struct node *n;
    bool root;
    ekvfs_lock();
    int err = attr_node(path, fi, &n, &root);
    if (n)
        node_maybe_free(n);
    ekvfs_unlock();
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
int ekvfs_utimens(const char *path, const struct timespec tv[2],
                  struct fuse_file_info *fi)
{
    if (fs.rdonly)
        return -EROFS;
    struct timespec t;
    now_ts(&t);
    struct node *n;
    bool root;
    ekvfs_lock();
    int err = attr_node(path, fi, &n, &root);
    if (!err && root) {
        set_time(&fs.root_mtime, &tv[1], &t);
        fs.root_ctime = t;
    } else if (!err) {
        if (!n->has_times) {
            n->atime = n->mtime = fs.mount_time;
            n->has_times = true;
        }
        set_time(&n->atime, &tv[0], &t);
        set_time(&n->mtime, &tv[1], &t);
        n->ctime = t;
    }
    ekvfs_unlock();
    return err;
}

int ekvfs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    ekv_stats st;
    ekvfs_lock();
    int err = ekv_stats_get(fs.store, &st);
    ekvfs_unlock();
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
int ekvfs_getxattr(const char *path, const char *name, char *value,
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
    ekvfs_lock();
    int err = find_key(path, &kb, &info);
    ekvfs_unlock();
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

int ekvfs_listxattr(const char *path, char *list, size_t size)
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

int ekvfs_setxattr(const char *path, const char *name, const char *value,
                   size_t size, int flags)
{
    (void)path, (void)name, (void)value, (void)size, (void)flags;
    if (!fs.xattr)
        return -ENOSYS;
    return fs.rdonly ? -EROFS : -ENOTSUP;
}

int ekvfs_removexattr(const char *path, const char *name)
{
    (void)path, (void)name;
    if (!fs.xattr)
        return -ENOSYS;
    return fs.rdonly ? -EROFS : -ENOTSUP;
}
