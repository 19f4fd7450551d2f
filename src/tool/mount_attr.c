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

void fill_stat(struct stat *st, const struct node *n, const uint8_t *key,
               size_t klen, uint64_t size)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = (ino_t)key_ino(key, klen);
    st->st_mode = node_mode(n);
    st->st_nlink = n && n->unlinked ? 0 : 1;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
    st->st_size = (off_t)size;
    /* The preferred I/O size: cat and cp move a large value in requests
     * of 1 MiB (the most the kernel sends at once), not 128 KiB. So does
     * cp into a new or truncated file, whose size is 0 when it asks. Other
     * small files keep the block size (Python sizes its buffers by it). */
    st->st_blksize = size >= PREFERRED_IO || size == 0 ? PREFERRED_IO
                                                       : fs.block_size;
    st->st_blocks = (blkcnt_t)((value_blocks(klen, size) * fs.block_size +
                                511) / 512);
    fill_times(st, n);
}

void fill_root(struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_ROOT_ID;
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
            size = h->snap.len;
            break;
        }
    node_size(n, &size);
    return size;
}

/* A retired node shows its readers' value, with the mode and times of the
 * key's current node (one set per key). */
int fill_node(struct stat *st, const struct node *n)
{
    uint64_t size = 0;
    ekv_key_info info;
    const struct node *meta = n;
    if (n->unlinked) {
        size = unlinked_size(n);
    } else if (n->retired) {
        size = n->frozen_size;
        const struct node *cur = node_find(n->key, n->klen);
        if (cur)
            meta = cur;
    } else if (ekv_stat_key(fs.store, n->key, n->klen, &info) == 0) {
        size = info.value_size;
    }
    if (!n->retired)
        node_size(n, &size);
    fill_stat(st, meta, n->key, n->klen, size);
    if (n->unlinked)
        st->st_nlink = 0;
    return 0;
}

static void reply_attr(fuse_req_t req, const struct stat *st, int err)
{
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_attr(req, st, fs.attr_timeout);
}

void ekvfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    ekvfs_lock();
    if (ino == FUSE_ROOT_ID)
        fill_root(&st);
    else
        (void)fill_node(&st, NODE(ino));
    ekvfs_unlock();
    reply_attr(req, &st, 0);
}

static void set_time(struct timespec *field, const struct stat *attr,
                     int to_set, int bit, int now_bit, bool atime,
                     const struct timespec *t)
{
    if (to_set & now_bit)
        *field = *t;
    else if (to_set & bit)
        *field = atime ? attr->st_atim : attr->st_mtim;
}

/*
 * chmod, chown, truncate and utimensat. Modes and times are kept in
 * memory only (see the top): any mode is accepted and shown until the
 * unmount, so that make, cp -p and rsync -t work. Owners are the
 * mount's: a change to what they already are is accepted (cp -p, rsync
 * -a do that), anything else is not possible.
 */
void ekvfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi)
{
    struct stat st;
    if (fs.rdonly) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != fs.uid) ||
        ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != fs.gid)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    bool times = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                           FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW);
    bool mode = to_set & FUSE_SET_ATTR_MODE;
    struct timespec t;
    now_ts(&t);
    int err = 0;
    ekvfs_lock();
    if (ino == FUSE_ROOT_ID) {
        if (to_set & FUSE_SET_ATTR_SIZE)
            err = -EISDIR;
        if (!err && mode) {
            fs.root_mode = attr->st_mode & 07777;
            fs.root_has_mode = true;
        }
        if (!err && times)
            set_time(&fs.root_mtime, attr, to_set, FUSE_SET_ATTR_MTIME,
                     FUSE_SET_ATTR_MTIME_NOW, false, &t);
        if (!err && (mode || times))
            fs.root_ctime = t;
        fill_root(&st);
        ekvfs_unlock();
        reply_attr(req, &st, err);
        return;
    }
    struct node *n = NODE(ino);
    if (to_set & FUSE_SET_ATTR_SIZE)
        err = files_truncate(n, fi, attr->st_size);
    /* The key's current node keeps its mode and times. */
    struct node *m = n;
    if (n->retired && !(m = node_find(n->key, n->klen)))
        m = n;
    if (!err && (mode || times) && !m->has_times) {
        m->atime = m->mtime = fs.mount_time;
        m->has_times = true;
    }
    if (!err && mode) {
        m->mode = attr->st_mode & 07777;
        m->has_mode = true;
    }
    if (!err && times) {
        set_time(&m->atime, attr, to_set, FUSE_SET_ATTR_ATIME,
                 FUSE_SET_ATTR_ATIME_NOW, true, &t);
        set_time(&m->mtime, attr, to_set, FUSE_SET_ATTR_MTIME,
                 FUSE_SET_ATTR_MTIME_NOW, false, &t);
    }
    if (!err && (mode || times))
        m->ctime = t;
    if (!err)
        (void)fill_node(&st, n);
    ekvfs_unlock();
    reply_attr(req, &st, err);
}

void ekvfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    ekv_stats st;
    struct statvfs sv;
    ekvfs_lock();
    int err = ekv_stats_get(fs.store, &st);
    ekvfs_unlock();
    if (err) {
        fuse_reply_err(req, -err);
        return;
    }
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = sv.f_frsize = st.block_size;
    sv.f_blocks = st.block_count - 1; /* block 0 is the header */
    sv.f_bfree = sv.f_bavail = st.free_blocks;
    /* Every key needs at least one block: free blocks bound new keys. */
    sv.f_files = (fsfilcnt_t)st.records + st.free_blocks;
    sv.f_ffree = sv.f_favail = st.free_blocks;
    /* Names up to this length always decode to a key that fits. */
    sv.f_namemax = st.max_key_size < NAME_MAX_BYTES ? st.max_key_size
                                                    : NAME_MAX_BYTES;
    if (fs.rdonly)
        sv.f_flag |= ST_RDONLY;
    fuse_reply_statfs(req, &sv);
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

/* An extended attribute's value, or its length when size is 0. */
static void reply_xattr(fuse_req_t req, const char *value, size_t len,
                        size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, value, len);
}

/*
 * Without -o xattr the answer is ENOSYS, after which the kernel never asks
 * again: otherwise it asks for security.capability before every write,
 * a round trip that costs more than the feature is worth by default.
 */
void ekvfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    size_t size)
{
    char text[160];
    ekv_key_info info;
    if (!fs.xattr) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    if ((strcmp(name, XATTR_GENERATION) != 0 &&
         strcmp(name, XATTR_REPLICAS) != 0) ||
        ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    ekvfs_lock();
    const struct node *n = NODE(ino);
    int err = n->unlinked ? -ENOENT
                          : ekv_stat_key(fs.store, n->key, n->klen, &info);
    ekvfs_unlock();
    if (err) {
        fuse_reply_err(req, err == EKV_ENOENT ? ENODATA : -err);
        return;
    }
    if (strcmp(name, XATTR_GENERATION) == 0)
        snprintf(text, sizeof(text), "%u", info.generation);
    else
        format_mask(info.replicas, text, sizeof(text));
    reply_xattr(req, text, strlen(text), size);
}

void ekvfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    static const char names[] = XATTR_GENERATION "\0" XATTR_REPLICAS;
    if (!fs.xattr)
        fuse_reply_err(req, ENOSYS);
    else if (ino == FUSE_ROOT_ID)
        reply_xattr(req, "", 0, size);
    else
        reply_xattr(req, names, sizeof(names), size);
}

void ekvfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    const char *value, size_t size, int flags)
{
    (void)ino, (void)name, (void)value, (void)size, (void)flags;
    fuse_reply_err(req, !fs.xattr ? ENOSYS : fs.rdonly ? EROFS : ENOTSUP);
}

void ekvfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino, (void)name;
    fuse_reply_err(req, !fs.xattr ? ENOSYS : fs.rdonly ? EROFS : ENOTSUP);
}
