/*
 * mount.h - what the pieces of the embedkvfs FUSE daemon share.
 *
 * mount.c parses the command line, opens the images and runs the FUSE
 * loop. The kernel's requests are answered by mount_ops.c (shared
 * helpers, names, life cycle), mount_files.c (open files and their
 * content), mount_attr.c (attributes, statfs, xattrs) and mount_dir.c
 * (the directory: listing, unlink, rename). mount_nodes.c keeps the
 * per-key state that lives only in memory; mount_sync.c decides which
 * device flushes wait. Everything below is guarded by
 * the one mutex in struct ekvfs: the store is not thread-safe and FUSE
 * calls us from several threads.
 */
#ifndef EKVFS_MOUNT_H
#define EKVFS_MOUNT_H

#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "common.h"
#include "names.h"

struct handle;

/*
 * In-memory state of one key, like an inode: kept while the key is open,
 * and for a key this mount has given times or a mode. A node is in the
 * table under its key; unlink or a rename over it takes it out
 * ("unlinked") and it lives on until its last handle is released (and,
 * while libfuse knows it under a hidden name, until libfuse drops that).
 *
 * Every writable open of a key shares the node's one content (buf, len):
 * a write through one is seen by the others, O_APPEND appends at its end,
 * and the close or fsync of a writer stores it whole with one put.
 */
struct node {
    uint8_t *key;
    size_t klen;
    uint64_t hash;
    struct node *next;        /* hash chain, or the list of hidden nodes */
    struct handle *handles;   /* open on this key */
    unsigned nopen, nwriters;
    bool has_times;           /* else the key shows the mount time */
    bool has_mode;            /* chmod: mode holds the permission bits */
    bool unlinked;            /* out of the table: its flushes are dropped */
    char *hidden;             /* libfuse's hidden name of an unlinked open
                                 node (see mount_dir.c), or NULL */
    mode_t mode;
    /* The shared content of the writable opens. */
    uint8_t *buf;
    size_t len, cap;
    bool loaded;              /* buf holds the content (nwriters > 0) */
    bool dirty;               /* the content differs from what was stored */
    bool reported;            /* a put of these changes failed and the
                                 caller was told */
    bool unsynced;            /* created here; its empty value may not be
                                 durable yet */
    struct timespec atime, mtime, ctime;
};

/* One open file. A writable one works on its node's shared content; a
 * read-only one reads the value stored when it was opened (snap). */
struct handle {
    struct node *node;
    struct handle *next, *prev;   /* on node->handles */
    struct handle *gnext, *gprev; /* on the list of all handles */
    uint8_t *snap;                /* read-only: the value at open */
    size_t snap_len;
    bool writable, append;
    bool wrote;                   /* changed the content since it was
                                     last stored: its close stores it */
};

/* The one mounted store. */
struct ekvfs {
    pthread_mutex_t lock;
    images im;
    ekv_store *store;
    uint32_t block_size, block_count, max_key;
    bool rdonly;
    bool multithreaded;           /* see invalidate() in mount_ops.c */
    bool foreground;              /* log to stderr, not syslog */
    bool user_timeouts;           /* -o *_timeout= given: keep them */
    bool xattr;                   /* -o xattr: read-only user.embedkv.* */
    bool cache;                   /* kernel caching (off with -o nocache) */
    uid_t uid;
    gid_t gid;
    mode_t umask;
    struct timespec mount_time;
    struct timespec root_mtime, root_ctime;
    struct node **tab;            /* node table, chained */
    size_t tab_cap, tab_count;
    struct handle all;            /* list head of every open handle */
    struct node *hidden;          /* unlinked open nodes libfuse names */
    bool root_has_mode;
    mode_t root_mode;
};

extern struct ekvfs fs;
extern const struct fuse_operations ekvfs_ops;

/* mount_nodes.c: the node table. All need fs.lock held. */
struct node *node_find(const uint8_t *key, size_t klen);
/* Find or create; NULL when out of memory. */
struct node *node_get(const uint8_t *key, size_t klen);
/* Take a node out of the table (its key was deleted or replaced); it is
 * freed now if nothing holds it. */
void node_unlink(struct node *n);
/* Move a node to another key (rename); takes ownership of key, a malloc'd
 * copy, so that it cannot fail after the store was changed. */
void node_rekey(struct node *n, uint8_t *key, size_t klen);
/* A malloc'd copy of a key (never NULL for klen 0 unless out of memory). */
uint8_t *key_dup(const uint8_t *key, size_t klen);
/* Free the node if nothing needs it any more. */
void node_maybe_free(struct node *n);
void nodes_free_all(void);

/* mount_sync.c: deferred device flushes (see there). */
enum flush_policy {
    FLUSH_ALWAYS,      /* every flush reaches the device */
    FLUSH_DEFER_ERASE, /* a flush after erasures only waits */
    FLUSH_DEFER_ALL,   /* every flush waits (a new file's empty value) */
};
/* Wrap the writable devices of the open store. */
void devsync_install(ekv_device *const devs[], unsigned n);
/* ekv_put with the flushes that policy p lets wait deferred. */
int devsync_put(ekv_store *s, const void *key, size_t klen, const void *val,
                size_t len, enum flush_policy p);
/* Make every deferred flush durable now. Returns 0 or the first error. */
int devsync_now(void);

/* ---- mount_ops.c: what the operations share. ---- */
void ekvfs_lock(void);
void ekvfs_unlock(void);
void now_ts(struct timespec *t);
/* A record no replica can verify is, to a reader, an I/O error. */
int to_errno(int ekv_err);
/* The mode of a file (its chmod, or the mount's) and of the root. */
mode_t node_mode(const struct node *n);
mode_t root_mode(void);
bool is_root(const char *path);
/* Blocks one replica spends on a record (what du should see). */
uint64_t value_blocks(size_t klen, uint64_t size);
/* The largest value a key of klen bytes could have in an empty store. */
uint64_t max_value(size_t klen);
/* ekv_put with the flushes policy p lets wait (mount_sync.c). */
int put_value(const uint8_t *key, size_t klen, const uint8_t *val,
              size_t len, enum flush_policy p);
/* Read key's whole value into a malloc'd *buf (*len bytes), whatever
 * copy ekv_get falls back to: its length, never the index's, counts. */
int load_value(const uint8_t *key, size_t klen, size_t hint, uint8_t **buf,
               size_t *len);

/* A key decoded from a path: short keys inline, long ones (found through a
 * shortened name) on the heap. */
typedef struct keybuf {
    uint8_t *p;
    size_t len;
    uint8_t small[NAME_MAX_BYTES + 1];
} keybuf;
void kb_free(keybuf *kb);
enum purpose { LOOKUP, CREATE };
/* The key a path names (see mount_ops.c). */
int resolve(const char *path, keybuf *kb, enum purpose why);
/* resolve() for a key that must exist, with its index entry. */
int find_key(const char *path, keybuf *kb, ekv_key_info *info);
/* "/" + the file name of n, or "" for an unlinked node. out needs
 * NAME_MAX_BYTES + 2 bytes. */
void node_path(const struct node *n, char *out);
/* Drop the kernel's cached attributes and pages of path; call unlocked. */
void invalidate(const char *path);
/* The root's entries changed. */
void root_changed(void);
/* This mount changed n's value: it now shows its own times. */
void node_changed(struct node *n);

/* ---- mount_files.c: open files. ---- */
int ekvfs_open(const char *path, struct fuse_file_info *fi);
int ekvfs_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int ekvfs_read(const char *path, char *buf, size_t size, off_t off,
               struct fuse_file_info *fi);
int ekvfs_write(const char *path, const char *data, size_t size, off_t off,
                struct fuse_file_info *fi);
int ekvfs_flush(const char *path, struct fuse_file_info *fi);
int ekvfs_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int ekvfs_release(const char *path, struct fuse_file_info *fi);
int ekvfs_truncate(const char *path, off_t size, struct fuse_file_info *fi);
/* The size a stat of n shows: its shared content's while loaded. *size
 * holds the stored size (or the opener's) on entry. */
void node_size(const struct node *n, uint64_t *size);
/* At the end: name every key whose changes were never stored. */
void files_report_unstored(void);

/* ---- mount_attr.c: attributes. ---- */
int ekvfs_getattr(const char *path, struct stat *st,
                  struct fuse_file_info *fi);
int ekvfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int ekvfs_chown(const char *path, uid_t uid, gid_t gid,
                struct fuse_file_info *fi);
int ekvfs_utimens(const char *path, const struct timespec tv[2],
                  struct fuse_file_info *fi);
int ekvfs_statfs(const char *path, struct statvfs *sv);
int ekvfs_getxattr(const char *path, const char *name, char *value,
                   size_t size);
int ekvfs_listxattr(const char *path, char *list, size_t size);
int ekvfs_setxattr(const char *path, const char *name, const char *value,
                   size_t size, int flags);
int ekvfs_removexattr(const char *path, const char *name);
/* Fill st for a node (NULL: a key this mount never touched). */
void fill_stat(struct stat *st, const struct node *n, size_t klen,
               uint64_t size);

/* ---- mount_dir.c: the directory. ---- */
int ekvfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
                  off_t off, struct fuse_file_info *fi,
                  enum fuse_readdir_flags flags);
int ekvfs_unlink(const char *path);
int ekvfs_rename(const char *from, const char *to, unsigned int flags);
int ekvfs_mkdir(const char *path, mode_t mode);
int ekvfs_mknod(const char *path, mode_t mode, dev_t rdev);
int ekvfs_symlink(const char *target, const char *path);
int ekvfs_link(const char *from, const char *to);
/* The unlinked open node libfuse knows as path, or NULL. */
struct node *hidden_find(const char *path);

/* After the FUSE loop ended, free every open handle and node. */
void mount_teardown(void);

/* mount.c: report what no caller can be told (a failed put on release):
 * stderr in the foreground, syslog once detached. */
void mount_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
