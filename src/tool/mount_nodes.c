/*
 * mount_nodes.c - the daemon's table of per-key in-memory state (struct
 * node, see mount.h): a chained hash table keyed by the key bytes, holding
 * each key's current node. The store's own index knows what is stored;
 * this table knows what only this mount knows (the files the kernel
 * holds, times, open handles, cache state). Callers hold fs.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"
#include "names.h"

static size_t slot(uint64_t hash)
{
    return (size_t)(hash & (fs.tab_cap - 1));
}

struct node *node_find(const uint8_t *key, size_t klen)
{
    if (!fs.tab_cap)
        return NULL;
    uint64_t h = key_name_hash(key, klen);
    for (struct node *n = fs.tab[slot(h)]; n; n = n->next)
        if (n->hash == h && n->klen == klen &&
            (klen == 0 || memcmp(n->key, key, klen) == 0))
            return n;
    return NULL;
}

static void insert(struct node *n)
{
    size_t i = slot(n->hash);
    n->next = fs.tab[i];
    fs.tab[i] = n;
    fs.tab_count++;
    n->in_table = true;
}

static void remove_from_table(struct node *n)
{
    if (!n->in_table)
        return;
    struct node **p = &fs.tab[slot(n->hash)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p) {
        *p = n->next;
        fs.tab_count--;
    }
    n->next = NULL;
    n->in_table = false;
}

/* Keep chains short: double when the table is as full as it is long. */
static int grow_table(void)
{
    if (fs.tab_count < fs.tab_cap)
        return 0;
    size_t ncap = fs.tab_cap ? fs.tab_cap * 2 : 256;
    struct node **nt = calloc(ncap, sizeof(struct node *));
    if (!nt)
        return -ENOMEM;
    struct node **old = fs.tab;
    size_t ocap = fs.tab_cap;
    fs.tab = nt;
    fs.tab_cap = ncap;
    fs.tab_count = 0;
    for (size_t i = 0; i < ocap; i++)
        for (struct node *n = old[i], *next; n; n = next) {
            next = n->next;
            insert(n);
        }
    free(old);
    return 0;
}

/* malloc(0) may return NULL; keys may be empty. */
uint8_t *key_dup(const uint8_t *key, size_t klen)
{
    uint8_t *k = malloc(klen ? klen : 1);
    if (k && klen)
        memcpy(k, key, klen);
    return k;
}

struct node *node_get(const uint8_t *key, size_t klen)
{
    struct node *n = node_find(key, klen);
    if (n)
        return n;
    if (grow_table() != 0)
        return NULL;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->key = key_dup(key, klen);
    if (!n->key) {
        free(n);
        return NULL;
    }
    n->klen = klen;
    n->hash = key_name_hash(key, klen);
    n->generation = ++fs.generations;
    n->pages_ok = true; /* a new file to the kernel: no pages yet */
    n->anext = fs.nodes;
    if (fs.nodes)
        fs.nodes->aprev = n;
    fs.nodes = n;
    insert(n);
    return n;
}

static void node_free(struct node *n)
{
    if (n->aprev)
        n->aprev->anext = n->anext;
    else
        fs.nodes = n->anext;
    if (n->anext)
        n->anext->aprev = n->aprev;
    content_free(n->buf, n->cap, n->mapped);
    value_free(&n->frozen);
    free(n->key);
    free(n);
}

void node_maybe_free(struct node *n)
{
    if (n->nopen || n->nlookup)
        return;
    if (!n->in_table || (!n->has_times && !n->has_mode)) {
        remove_from_table(n);
        node_free(n);
    }
}

void node_forget(struct node *n, uint64_t count)
{
    n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
    node_maybe_free(n);
}

void node_unlink(struct node *n)
{
    if (n->unlinked)
        return;
    remove_from_table(n);
    n->unlinked = true;
    stream_drop(n); /* its content goes nowhere */
    node_maybe_free(n);
}

int node_retire(struct node *n, uint64_t size)
{
    remove_from_table(n);
    struct node *succ = node_get(n->key, n->klen);
    if (!succ) {
        insert(n);
        return -ENOMEM;
    }
    succ->has_times = n->has_times;
    succ->atime = n->atime;
    succ->mtime = n->mtime;
    succ->ctime = n->ctime;
    succ->has_mode = n->has_mode;
    succ->mode = n->mode;
    n->retired = true;
    n->frozen_size = size;
    return 0;
}

void node_rekey(struct node *n, uint8_t *key, size_t klen)
{
    stream_drop(n); /* it writes the old key */
    remove_from_table(n);
    free(n->key);
    n->key = key;
    n->klen = klen;
    n->hash = key_name_hash(key, klen);
    insert(n);
}

void nodes_free_all(void)
{
    for (struct node *n = fs.nodes, *next; n; n = next) {
        next = n->anext;
        content_free(n->buf, n->cap, n->mapped);
        value_free(&n->frozen);
        free(n->key);
        free(n);
    }
    fs.nodes = NULL;
    free(fs.tab);
    fs.tab = NULL;
    fs.tab_cap = fs.tab_count = 0;
}
