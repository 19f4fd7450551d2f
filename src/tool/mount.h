/*
 * mount.h - what the pieces of the embedkvfs FUSE daemon share.
 *
 * mount.c parses the command line, opens the images and runs the FUSE
 * loop (libfuse's low-level interface: the daemon numbers the files
 * itself, see struct node). The kernel's requests are answered by
 * mount_ops.c (shared helpers, names, life cycle), mount_files.c (open
 * files and their content), mount_attr.c (attributes, statfs, xattrs) and
 * mount_dir.c (lookups and the directory: listing, unlink, rename).
 * mount_cache.c decides what the kernel may cache of a file;
 * mount_nodes.c keeps the per-file state that lives only in memory,
 * mount_fh.c the numbers of open files; mount_sync.c decides which device
 * flushes wait; mount_stream.c streams large contents to the images as
 * they are written. Everything below is
 * guarded by the one mutex in struct ekvfs: the store is not thread-safe
 * and FUSE calls us from several threads.
 */
#ifndef EKVFS_MOUNT_H
#define EKVFS_MOUNT_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

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

/* A value read whole into memory (load_value): malloc'd, or a mapping of
 * its own when large (mount_mem.c), as a large content is. */
struct value {
    uint8_t *p;
    size_t len, cap;
    bool mapped;
};

/*
 * In-memory state of one file the kernel knows, like an inode; its
 * address is the file's FUSE node id. A node is in the table under its
 * key while it is that key's current file. It lives while the kernel
 * holds lookups of it (nlookup) or it is open, and for a key this mount
 * has given times or a mode.
 *
 * It leaves the table three ways, and then serves only what the kernel
 * still holds of it:
 * - unlinked: its key was deleted or replaced by a rename; its open
 *   handles keep working, their closes store nothing;
 * - retired: a writer or truncate came for the key while readers had
 *   the file open through the page cache (see mount_files.c). Those
 *   readers keep this node, its pages and its size; the change is
 *   refused with ESTALE, the kernel looks the name up again and gets
 *   the key's new node, on which the change is made.
 *
 * Every writable open of a key shares the node's one content (buf, len):
 * a write through one is seen by the others, O_APPEND appends at its end,
 * and the close or fsync of a writer stores it whole with one put.
 */
struct node {
    uint8_t *key;
    size_t klen;
    uint64_t hash;
    struct node *next;        /* hash chain */
    struct node *anext, *aprev; /* on the list of every node */
    uint64_t generation;      /* with the node id, unique for the mount */
    uint64_t nlookup;         /* lookups the kernel has not forgotten */
    struct handle *handles;   /* open on this node */
    unsigned nopen, nwriters;
    unsigned ncached;         /* read-only opens using the page cache */
    bool in_table;
    bool has_times;           /* else the key shows the mount time */
    bool has_mode;            /* chmod: mode holds the permission bits */
    bool unlinked;            /* see above: its flushes are dropped */
    bool retired;             /* see above */
    bool pages_ok;            /* the kernel's pages of this file can hold
                                 nothing but the stored value */
    unsigned npush;           /* pushes under way (mount_cache.c); each
                                 holds the node open */
    bool pages_warm;          /* and the stored value's length is known
                                 to be what the kernel was told: readers
                                 may load it lazily (mount_files.c) */
    unsigned nlazy;           /* readers that have not loaded their value */
    struct value frozen;      /* the value the lazy readers read, loaded
                                 at their first READ or before the key
                                 changes (frozen.p NULL until then) */
    uint64_t frozen_size;     /* retired: the size its readers see */
    mode_t mode;
    /* The shared content of the writable opens. */
    uint8_t *buf;
    size_t len, cap;
    bool mapped;              /* buf is a mapping of its own (mount_mem.c) */
    bool loaded;              /* buf holds the content (nwriters > 0) */
    bool dirty;               /* the content differs from what was stored */
    bool stored;              /* a put stored it since it was loaded */
    bool reported;            /* a put of these changes failed and the
                                 caller was told */
    bool unsynced;            /* created here; its empty value may not be
                                 durable yet */
    ekv_stream *stream;       /* a streamed put following the content
                                 (mount_stream.c), or NULL */
    size_t streamed;          /* content bytes handed to it */
    bool no_stream;           /* do not stream these changes again */
    struct timespec atime, mtime, ctime;
};

/* One open file. A writable one works on its node's shared content; a
 * read-only one reads the value stored when it was opened (snap). */
struct handle {
    struct node *node;
    struct handle *next, *prev;   /* on node->handles */
    struct handle *gnext, *gprev; /* on the list of all handles */
    struct value snap;            /* read-only: the value at open; a lazy
                                     reader's holds only its length */
    bool writable, append;
    bool cached;                  /* read-only through the page cache */
    bool lazy;                    /* reads node->frozen, snap.len long */
    bool wrote;                   /* changed the content since it was
                                     last stored: its close stores it */
    uint64_t fh;                  /* its number in the kernel (mount_fh.c) */
};

/* The one mounted store. */
struct ekvfs {
    pthread_mutex_t lock;
    pthread_cond_t reader_gone;   /* a cached reader was released, or the
                                     pushes of a node ended */
    images im;
    ekv_store *store;
    struct fuse_session *se;
    uint32_t block_size, block_count, max_key;
    bool rdonly;
    bool multithreaded;           /* see invalidate() in mount_ops.c */
    bool foreground;              /* log to stderr, not syslog */
    bool xattr;                   /* -o xattr: read-only user.embedkv.* */
    bool cache;                   /* kernel caching (off with -o nocache) */
    double entry_timeout, attr_timeout, negative_timeout;
    uid_t uid;
    gid_t gid;
    mode_t umask;
    struct timespec mount_time;
    struct timespec root_mtime, root_ctime;
    uint64_t dir_version;         /* bumped by every change of the names */
    uint64_t dir_listed;          /* dir_version of the last listing */
    uint64_t generations;         /* node generations handed out */
    struct node *nodes;           /* every node (anext, aprev) */
    uint64_t *hot;                /* keys read and written at once (hashes,
                                     open addressing; see mount_nodes.c) */
    size_t hot_cap, hot_count;
    bool all_hot;                 /* the set filled up: every key is */
    struct node **tab;            /* node table, chained */
    size_t tab_cap, tab_count;
    struct handle all;            /* list head of every open handle */
    bool root_has_mode;
    mode_t root_mode;
};

extern struct ekvfs fs;
extern const struct fuse_lowlevel_ops ekvfs_ops;

#define NODE(ino) ((struct node *)(uintptr_t)(ino))
#define NODE_ID(n) ((fuse_ino_t)(uintptr_t)(n))

/* mount_nodes.c: the node table. All need fs.lock held. */
struct node *node_find(const uint8_t *key, size_t klen);
/* Find or create; NULL when out of memory. */
struct node *node_get(const uint8_t *key, size_t klen);
/* Take a node out of the table (its key was deleted or replaced); it is
 * freed now if nothing holds it. */
void node_unlink(struct node *n);
/* Take a node out of the table for a new node of its key, which inherits
 * its times and mode and bypasses the page cache (see struct node).
 * -ENOMEM leaves everything as it was. */
int node_retire(struct node *n, uint64_t size);
/* Move a node to another key (rename); takes ownership of key, a malloc'd
 * copy, so that it cannot fail after the store was changed. */
void node_rekey(struct node *n, uint8_t *key, size_t klen);
/* A malloc'd copy of a key (never NULL for klen 0 unless out of memory). */
uint8_t *key_dup(const uint8_t *key, size_t klen);
/* Free the node if nothing needs it any more. */
void node_maybe_free(struct node *n);
/* The kernel forgot count lookups of n. */
void node_forget(struct node *n, uint64_t count);
void nodes_free_all(void);

/* mount_fh.c: file handle numbers, checked at every use (see there).
 * All need fs.lock held. */
enum { FH_FILE = 1, FH_DIR = 2 };
/* A new number for p, or 0 when out of memory. */
uint64_t fh_new(void *p, unsigned kind);
/* What fh stands for, or NULL for a released or foreign number. */
void *fh_get(uint64_t fh, unsigned kind);
void fh_drop(uint64_t fh);
/* At the end: free the listings still held (files are freed before). */
void fh_free_all(void (*free_dir)(void *));

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
/* ekv_stream_commit with the flushes that policy p lets wait deferred. */
int devsync_commit(ekv_stream *w, enum flush_policy p);
/* Make every deferred flush durable now. Returns 0 or the first error. */
int devsync_now(void);

/* mount_stream.c: large contents streamed to the images as they are
 * written (see there). All need fs.lock held. */
/* n's content got size bytes at pos (already in n->buf). */
void stream_wrote(struct node *n, uint64_t pos, size_t size);
/* n's content became len bytes long. */
void stream_cut(struct node *n, size_t len);
/* Abandon n's stream, if it has one. */
void stream_drop(struct node *n);
/* Store n's content by committing its stream: *done says whether it had
 * one that could; if not, the caller puts the content. 0 or -errno. */
int stream_store(struct node *n, enum flush_policy p, bool *done);

/* mount_mem.c: memory for contents (callers hold fs.lock). Grow *buf
 * (cap bytes, of which len are used, mapped: its kind) to hold need bytes;
 * 0 or -ENOMEM, which leaves it as it was. content_drop gives it back,
 * or keeps it as the spare for the next large buffer; content_free gives
 * it back, and content_free_spare the spare. */
int content_grow(uint8_t **buf, size_t *cap, bool *mapped, size_t len,
                 size_t need);
void content_drop(uint8_t *buf, size_t cap, bool mapped);
void content_free(uint8_t *buf, size_t cap, bool mapped);
void content_free_spare(void);
/* Make the empty *v able to hold size bytes (the spare, or exactly, or
 * in a mapping of its own from the size a content gets one); 0 or
 * -ENOMEM. value_free gives it back (content_drop) and empties it. */
int value_alloc(struct value *v, size_t size);
void value_free(struct value *v);

/* ---- mount_loop.c: the request loop (one reader at a time). ---- */
/* loop_run returns 0 when unmounted or stopped, else -errno. loop_kick
 * stops it, or libfuse's single-threaded loop running in main_thread,
 * and may need repeating. A handler calls loop_may_block before anything
 * that can wait for the kernel or for another request (a notify, a wait
 * for releases), so that another thread reads meanwhile. */
int loop_run(struct fuse_session *se);
void loop_kick(struct fuse_session *se, pthread_t main_thread);
void loop_may_block(void);

/* ---- mount_ops.c: what the operations share. ---- */
void ekvfs_lock(void);
void ekvfs_unlock(void);
void now_ts(struct timespec *t);
/* A record no replica can verify is, to a reader, an I/O error. */
int to_errno(int ekv_err);
/* The mode of a file (its chmod, or the mount's) and of the root. */
mode_t node_mode(const struct node *n);
mode_t root_mode(void);
/* Blocks one replica spends on a record (what du should see). */
uint64_t value_blocks(size_t klen, uint64_t size);
/* The largest value a key of klen bytes could have in an empty store. */
uint64_t max_value(size_t klen);
/* ekv_put with the flushes policy p lets wait (mount_sync.c). */
int put_value(const uint8_t *key, size_t klen, const uint8_t *val,
              size_t len, enum flush_policy p);
/* Read key's whole value into the empty *v (value_alloc'd, v->len
 * bytes), whatever copy ekv_get falls back to: its length, never the
 * index's, counts. */
int load_value(const uint8_t *key, size_t klen, size_t hint, struct value *v);

/* A key decoded from a file name: short keys inline, long ones (found
 * through a shortened name) on the heap. */
typedef struct keybuf {
    uint8_t *p;
    size_t len;
    uint8_t small[NAME_MAX_BYTES + 1];
} keybuf;
void kb_free(keybuf *kb);
enum purpose { LOOKUP, CREATE };
/* The key a name in the root names (see mount_ops.c). */
int resolve(fuse_ino_t parent, const char *name, keybuf *kb,
            enum purpose why);
/* resolve() for a key that must exist, with its index entry. */
int find_key(fuse_ino_t parent, const char *name, keybuf *kb,
             ekv_key_info *info);
/* Drop the kernel's cached attributes and pages of file ino, whose stored
 * value may differ from what the kernel saw; call unlocked. */
void invalidate(fuse_ino_t ino);
/* The root's entries changed. */
void root_changed(void);
/* This mount changed n's value: it now shows its own times. */
void node_changed(struct node *n);
/* Reply to a lookup, create or mknod with n's entry (one more lookup of
 * it), or with err. Call with the lock held; it is released. */
void reply_entry_unlock(fuse_req_t req, struct node *n,
                        struct fuse_file_info *fi, int err);

/* ---- mount_cache.c: what the kernel may cache (see there). ---- */
/* Keys that readers and writers used at once: their readers bypass the
 * page cache from then on. */
bool key_hot(const struct node *n);
void mark_hot(const struct node *n);
/* Before n's key is deleted or replaced: give n's lazy readers their
 * value. */
int cache_freeze(struct node *n);
/* A writer or a truncate is coming for n: 0, or ESTALE after making way
 * (the kernel then looks again), or an error. */
int cache_make_way(struct node *n);
/* How a read-only open h of n (stored size: size) reads: sets fi. */
void cache_reader_mode(struct handle *h, struct node *n,
                       struct fuse_file_info *fi, uint32_t size);
/* Whether a read-only open of n may load its value lazily; sets fi. */
bool cache_lazy_ok(const struct node *n, struct fuse_file_info *fi);
/* The last partly written page that the last writer's release hands the
 * kernel: planned under the lock, done without it (cache_do_push takes
 * the lock). A planned push holds its node open until done. */
struct push {
    struct node *node;
    fuse_ino_t ino;
    off_t off;
    size_t len;
    uint8_t *bytes;
};
void cache_plan_push(struct node *n, struct push *p);
void cache_do_push(struct push *p);
void cache_free_all(void);

/* ---- mount_files.c: open files. ---- */
void ekvfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ekvfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi);
void ekvfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode, dev_t rdev);
void ekvfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void ekvfs_write(fuse_req_t req, fuse_ino_t ino, const char *data,
                 size_t size, off_t off, struct fuse_file_info *fi);
void ekvfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ekvfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                 struct fuse_file_info *fi);
void ekvfs_release(fuse_req_t req, fuse_ino_t ino,
                   struct fuse_file_info *fi);
/* Free the handle of an open or create whose reply the kernel never got
 * (nobody will close it); call unlocked. */
void files_abandon(struct fuse_file_info *fi);
/* truncate(2) or ftruncate(2) (fi) of n to size; needs the lock. */
int files_truncate(struct node *n, struct fuse_file_info *fi, off_t size);
/* The size a stat of n shows: its shared content's while loaded. *size
 * holds the stored size (or the opener's) on entry. */
void node_size(const struct node *n, uint64_t *size);
/* At the end: name every key whose changes were never stored. */
void files_report_unstored(void);

/* ---- mount_attr.c: attributes. ---- */
void ekvfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ekvfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi);
void ekvfs_statfs(fuse_req_t req, fuse_ino_t ino);
void ekvfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    size_t size);
void ekvfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void ekvfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    const char *value, size_t size, int flags);
void ekvfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
/* Fill st for a file (n NULL: a key this mount never touched). */
void fill_stat(struct stat *st, const struct node *n, const uint8_t *key,
               size_t klen, uint64_t size);
/* Fill st for node n (its stored or open size); needs the lock. */
int fill_node(struct stat *st, const struct node *n);
void fill_root(struct stat *st);

/* ---- mount_dir.c: lookups and the directory. ---- */
void ekvfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void ekvfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void ekvfs_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets);
void ekvfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ekvfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void ekvfs_releasedir(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info *fi);
void ekvfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void ekvfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void ekvfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname,
                  unsigned int flags);
void ekvfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode);
void ekvfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                   const char *name);
void ekvfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                const char *newname);
/* At the end: free the listings the kernel never released. */
void dirs_free_all(void);
/* The file number a listing and a stat show for a key. */
uint64_t key_ino(const uint8_t *key, size_t klen);

/* After the FUSE loop ended, free every open handle and node. */
void mount_teardown(void);

/* mount.c: report what no caller can be told (a failed put on release):
 * stderr in the foreground, syslog once detached. */
void mount_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
