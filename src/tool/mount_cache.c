/*
 * mount_cache.c - what the kernel may cache of a file, and how it stays
 * right: the page cache of read-only opens, the page a close hands the
 * kernel, and what a writer or truncate must do first.
 *
 * The kernel keeps one size and one page cache per file (per node). A
 * read-only open reads the value stored when it was opened (its snapshot)
 * and must never see a mix.
 * - While nobody writes the key it reads through the page cache, kept from
 *   open to open as long as the pages can hold nothing but the stored
 *   value (pages_ok).
 * - A writer or a truncate that comes while such readers are open would
 *   change the size and pages under them, so it is not let onto their
 *   node: the node is retired (mount_nodes.c), the request fails with
 *   ESTALE, and the kernel looks the name up again (it retries an open or
 *   truncate that fails so once) and gets the key's new node. The readers
 *   keep the old node, its pages and size: their value, complete. The key
 *   is hot from then on: its readers bypass the page cache for the rest of
 *   the mount, so that a retry, which the kernel makes only once, is never
 *   refused again.
 * - A read-only open while a writer has the key open bypasses the page
 *   cache (direct_io) and leaves the writers' pages alone.
 * - A reader that finds the pages trusted and warm (the kernel likely
 *   holds the whole value, of the length it was told) loads nothing at
 *   open: it is lazy. Its first READ, if the kernel ever sends one, loads
 *   the value into the node (frozen, shared by all lazy readers); so does
 *   anything that is about to delete or replace the key first (a writer,
 *   truncate, unlink, a rename over it). Until then the store holds the
 *   very value the reader opened. If that load finds a value of another
 *   length (its newest copy no longer verifies), the read fails with EIO
 *   rather than mix two copies.
 *
 * Callers hold fs.lock, except where said.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mount.h"

/*
 * The hot keys: a set of key hashes that only grows (a colliding key is
 * merely read without the page cache). When it is three quarters full,
 * every key counts as hot: the mount then reads as if every key were
 * contended, which is always correct, only slower.
 */
#define HOT_CAP 4096

static uint64_t hot_hash(const struct node *n)
{
    return n->hash ? n->hash : 1; /* 0 marks a free slot */
}

bool key_hot(const struct node *n)
{
    if (fs.all_hot)
        return true;
    if (!fs.hot)
        return false;
    uint64_t h = hot_hash(n);
    for (size_t i = (size_t)h & (fs.hot_cap - 1);; i = (i + 1) & (fs.hot_cap - 1)) {
        if (fs.hot[i] == h)
            return true;
        if (!fs.hot[i])
            return false;
    }
}

void mark_hot(const struct node *n)
{
    if (fs.all_hot || key_hot(n))
        return;
    if (!fs.hot) {
        fs.hot = calloc(HOT_CAP, sizeof(*fs.hot));
        if (!fs.hot) {
            fs.all_hot = true;
            return;
        }
        fs.hot_cap = HOT_CAP;
    }
    if (fs.hot_count + 1 > fs.hot_cap / 4 * 3) {
        fs.all_hot = true;
        return;
    }
    uint64_t h = hot_hash(n);
    size_t i = (size_t)h & (fs.hot_cap - 1);
    while (fs.hot[i])
        i = (i + 1) & (fs.hot_cap - 1);
    fs.hot[i] = h;
    fs.hot_count++;
}

int cache_freeze(struct node *n)
{
    if (!n->nlazy || n->frozen.p || n->unlinked || n->retired)
        return 0;
    ekv_key_info info;
    int err = ekv_stat_key(fs.store, n->key, n->klen, &info);
    if (!err)
        err = load_value(n->key, n->klen, info.value_size, &n->frozen);
    return err;
}

/* Retire n for a new node of its key (mount_nodes.c), its lazy readers'
 * value loaded first. */
static int retire(struct node *n)
{
    uint64_t size = 0;
    for (const struct handle *h = n->handles; h; h = h->next)
        if (h->cached) {
            size = h->snap.len;
            break;
        }
    int err = cache_freeze(n);
    return err ? err : node_retire(n, size);
}

/*
 * A reader that just closed the file (cat f; echo x > f) is often still
 * counted: the kernel sends RELEASE without waiting, and another thread
 * may not have taken it yet. Give such releases a moment (1 ms at the
 * most, with other threads to run them) before a writer must retire the
 * node: it only saves the key its page cache, either way is correct.
 * Holds n open meanwhile, so that it cannot be freed. Needs the lock.
 */
static void let_readers_go(struct node *n)
{
    if (!fs.multithreaded || !n->ncached || n->unlinked || n->retired)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 1000 * 1000;
    if (until.tv_nsec >= 1000 * 1000 * 1000) {
        until.tv_sec++;
        until.tv_nsec -= 1000 * 1000 * 1000;
    }
    n->nopen++;
    loop_may_block(); /* the releases come through another thread */
    while (n->ncached &&
           pthread_cond_timedwait(&fs.reader_gone, &fs.lock, &until) == 0)
        ;
    n->nopen--;
}

/*
 * A writer or a truncate is coming for n. If readers have n open through
 * the page cache, n is retired and the caller fails with ESTALE, after
 * which the kernel looks the name up again (see the top). An open of a
 * file whose key was deleted or replaced since the kernel looked it up
 * (another process unlinked it between this one's lookup and open) is
 * ESTALE too: the kernel then looks again, and creates the file anew
 * (O_CREAT), opens its new file, or finds it missing. Needs the lock.
 */
int cache_make_way(struct node *n)
{
    if (n->npush) {
        /* A push of n's last page is under way (see cache_plan_push):
         * let it land first. It needs no request of this thread's. */
        n->nopen++;
        loop_may_block();
        while (n->npush)
            pthread_cond_wait(&fs.reader_gone, &fs.lock);
        n->nopen--;
    }
    let_readers_go(n);
    if (!n->unlinked && !n->retired && !n->ncached)
        return 0;
    /* From now on the key's readers bypass the page cache, and so its
     * current node has no cached readers when the caller's retry comes
     * (the kernel retries once): retire it too if it has. */
    mark_hot(n);
    int err = 0;
    if (!n->unlinked && !n->retired)
        err = retire(n);
    struct node *cur = node_find(n->key, n->klen);
    if (!err && cur && cur != n && cur->ncached)
        err = retire(cur);
    return err ? err : -ESTALE;
}

/* How a read-only open of n reads: through the page cache when the pages
 * can be trusted for its whole life (see the top), else directly. The
 * kernel cuts cached reads at the size a stat shows (the index's, size):
 * a fall-back copy of another length is read directly. */
void cache_reader_mode(struct handle *h, struct node *n,
                       struct fuse_file_info *fi, uint32_t size)
{
    bool whole = h->snap.len == size;
    if (whole && fs.rdonly && fs.cache) {
        /* Nothing can change a value: the page cache stays right. */
        fi->keep_cache = 1;
    } else if (whole && fs.cache && !n->nwriters && !key_hot(n)) {
        fi->keep_cache = n->pages_ok; /* else the kernel drops them */
        h->cached = true;
    } else {
        fi->direct_io = 1;
        fi->keep_cache = 1; /* leave the writers' cached pages alone */
    }
}

/* Whether a read-only open of n may load its value lazily (see the top):
 * it would read through the page cache, which holds the stored value
 * already. Sets fi's flags for that. */
bool cache_lazy_ok(const struct node *n, struct fuse_file_info *fi)
{
    bool cached = fs.rdonly ? fs.cache
                            : fs.cache && !n->nwriters && !key_hot(n);
    if (!cached || !n->pages_ok || !n->pages_warm || n->loaded ||
        n->unlinked || n->retired)
        return false;
    fi->keep_cache = 1;
    return true;
}

/*
 * After a store, the kernel's pages of the file hold the value, except
 * for the last, partly written page, which the kernel does not count as
 * read: a later open would ask for it again, and that READ makes the
 * kernel ask for the attributes again at the next stat. So when the last
 * writer goes (its release, which the kernel sends after close returned,
 * without waiting), the daemon hands that page's bytes to the kernel
 * (notify_store), which makes the whole file cached for the readers to
 * come. Never under fs.lock, and with the reader's role passed on: the
 * kernel may hold the page locked for a READ still to be answered (a
 * readahead of the writer's file outlives its release).
 *
 * The pushed bytes must never land over newer ones: the kernel copies a
 * write into its pages before the daemon hears of it, and a push sets the
 * file's size if it ends past it. So the push waits for the last writer's
 * release, when nothing can write through the file any more, and a new
 * writer or a truncate of the key waits until the push is done
 * (cache_make_way).
 */
void cache_plan_push(struct node *n, struct push *p)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    p->bytes = NULL;
    if (!fs.cache || !fs.multithreaded || !fs.se || n->nwriters != 1 ||
        n->dirty || !n->stored || n->unlinked || !n->loaded)
        return;
    size_t off = n->len - n->len % page;
    if (off == n->len)
        return; /* whole pages only, which the kernel keeps itself */
    p->bytes = malloc(n->len - off);
    if (!p->bytes)
        return;
    memcpy(p->bytes, n->buf + off, n->len - off);
    p->node = n;
    p->ino = NODE_ID(n);
    p->off = (off_t)off;
    p->len = n->len - off;
    n->nopen++;
    n->npush++;
}

void cache_do_push(struct push *p)
{
    if (!p->bytes)
        return;
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(p->len);
    bv.buf[0].mem = p->bytes;
    loop_may_block();
    (void)fuse_lowlevel_notify_store(fs.se, p->ino, p->off, &bv, 0);
    free(p->bytes);
    ekvfs_lock();
    struct node *n = p->node;
    if (--n->npush == 0)
        pthread_cond_broadcast(&fs.reader_gone);
    n->nopen--;
    node_maybe_free(n);
    ekvfs_unlock();
}


void cache_free_all(void)
{
    free(fs.hot);
    fs.hot = NULL;
    fs.hot_cap = fs.hot_count = 0;
}
