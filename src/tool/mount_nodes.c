/*
 * mount_nodes.c - the daemon's table of per-key in-memory state (struct
 * node, see mount.h): a chained hash table keyed by the key bytes. The
 * store's own index knows what is stored; this table knows what only this
 * mount knows (times, open handles, cache state). Callers hold fs.lock.
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
}

static void remove_from_table(struct node *n)
{
    struct node **p = &fs.tab[slot(n->hash)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p) {
        *p = n->next;
        fs.tab_count--;
    }
    n->next = NULL;
}

/* Keep chains short: double when the table is as full as it is long. */
static int grow_table(void)
{
    if (fs.tab_count < fs.tab_cap)
        return 0;
    size_t ncap = fs.tab_cap ? fs.tab_cap * 2 : 256;
    struct node **nt = calloc(ncap, sizeof(*nt));
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
    insert(n);
    return n;
}

static void node_free(struct node *n)
{
    free(n->buf);
    free(n->hidden);
    free(n->key);
    free(n);
}

void node_maybe_free(struct node *n)
{
    if (n->nopen)
        return;
    if (n->unlinked) {
        if (!n->hidden)
            node_free(n);
        return;
    }
    if (!n->has_times && !n->has_mode) {
        remove_from_table(n);
        node_free(n);
    }
}

void node_unlink(struct node *n)
{
    if (n->unlinked)
        return;
    remove_from_table(n);
    n->unlinked = true;
    node_maybe_free(n);
}

void node_rekey(struct node *n, uint8_t *key, size_t klen)
{
    remove_from_table(n);
    free(n->key);
    n->key = key;
    n->klen = klen;
    n->hash = key_name_hash(key, klen);
    insert(n);
}

void nodes_free_all(void)
{
    for (size_t i = 0; i < fs.tab_cap; i++)
        for (struct node *n = fs.tab[i], *next; n; n = next) {
            next = n->next;
            node_free(n);
        }
    for (struct node *n = fs.hidden, *next; n; n = next) {
        next = n->next;
        node_free(n);
    }
    fs.hidden = NULL;
    free(fs.tab);
    fs.tab = NULL;
    fs.tab_cap = fs.tab_count = 0;
}
