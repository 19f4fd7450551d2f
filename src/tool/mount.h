/*
 * mount.h - what the pieces of the embedkvfs FUSE daemon share.
 *
 * mount.c parses the command line, opens the images and runs the FUSE
 * loop; mount_ops.c answers the kernel's requests; mount_nodes.c keeps the
 * per-key state that lives only in memory. Everything below is guarded by
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
#include <sys/types.h>
#include <time.h>

#include "common.h"

struct handle;

/*
 * In-memory state of one key: kept while the key is open, and for a key
 * this mount has changed (its times). A node is in the table under its
 * key; unlink or a rename over it takes it out ("unlinked") and it lives
 * on until its last handle is released.
 */
struct node {
    uint8_t *key;
    size_t klen;
    uint64_t hash;
    struct node *next;        /* hash chain */
    struct handle *handles;   /* open on this key */
    unsigned nopen, nwriters;
    bool has_times;           /* else the key shows the mount time */
    bool unlinked;            /* out of the table: its flushes are dropped */
    bool overlap;             /* writers with different buffers were open at
                                 once since nwriters was last 0: the
                                 kernel's idea of the size may be wrong */
    struct timespec atime, mtime, ctime;
};

/* One open file: the value as this handle sees it. */
struct handle {
    struct node *node;
    struct handle *next, *prev;   /* on node->handles */
    struct handle *gnext, *gprev; /* on the list of all handles */
    uint8_t *buf;
    size_t len, cap;
    bool writable, append;
    bool dirty;                   /* buf differs from what was put */
    bool reported;                /* a put of these changes failed and the
                                     caller was told */
    bool unsynced;                /* created here; its empty value may not
                                     be durable yet */
    uint64_t wseq;                /* when it last became dirty */
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
    uid_t uid;
    gid_t gid;
    mode_t umask;
    struct timespec mount_time;
    struct timespec root_mtime, root_ctime;
    struct node **tab;            /* node table, chained */
    size_t tab_cap, tab_count;
    struct handle all;            /* list head of every open handle */
    uint64_t wseq;
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

/* mount_ops.c: after the FUSE loop ended, free every open handle and node
 * (their dirty buffers were stored by the destroy callback). */
void mount_teardown(void);

/* mount.c: report what no caller can be told (a failed put on release):
 * stderr in the foreground, syslog once detached. */
void mount_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
