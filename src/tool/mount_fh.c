/*
 * mount_fh.c - the numbers the kernel holds for open files and listings.
 *
 * The kernel may send the RELEASE of a file while a request on it is
 * still being answered (a process killed in the middle of a read or a
 * readdir stops waiting, closes the file, and its RELEASE overtakes the
 * request on another thread). So a file handle is never a pointer: it is
 * a slot number and the slot's generation, checked under fs.lock at
 * every use; a released one is simply not found (EBADF), never freed
 * memory. Callers hold fs.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "mount.h"

struct slot {
    void *p;
    uint32_t gen;
    uint32_t kind;     /* FH_FILE or FH_DIR, for the end */
    uint32_t next;     /* free list, as index + 1 */
};

static struct slot *slots;
static uint32_t nslots, free_head;

uint64_t fh_new(void *p, unsigned kind)
{
    if (!free_head) {
        uint32_t n = nslots ? nslots * 2 : 64;
        if (n <= nslots)
            return 0;
        struct slot *s = realloc(slots, (size_t)n * sizeof(*s));
        if (!s)
            return 0;
        for (uint32_t i = nslots; i < n; i++) {
            s[i].p = NULL;
            s[i].gen = 0;
            s[i].kind = 0;
            s[i].next = i + 1 < n ? i + 2 : 0;
        }
        slots = s;
        free_head = nslots + 1;
        nslots = n;
    }
    uint32_t i = free_head - 1;
    free_head = slots[i].next;
    slots[i].p = p;
    slots[i].kind = kind;
    slots[i].next = 0;
    return (uint64_t)slots[i].gen << 32 | (i + 1);
}

void *fh_get(uint64_t fh, unsigned kind)
{
    uint32_t i = (uint32_t)fh;
    if (i == 0 || i > nslots)
        return NULL;
    const struct slot *s = &slots[i - 1];
    if (!s->p || s->gen != (uint32_t)(fh >> 32) || s->kind != kind)
        return NULL;
    return s->p;
}

void fh_drop(uint64_t fh)
{
    uint32_t i = (uint32_t)fh;
    if (i == 0 || i > nslots || slots[i - 1].gen != (uint32_t)(fh >> 32))
        return;
    struct slot *s = &slots[i - 1];
    s->p = NULL;
    s->gen++;
    s->next = free_head;
    free_head = i;
}

void fh_free_all(void (*free_dir)(void *))
{
    for (uint32_t i = 0; i < nslots; i++)
        if (slots[i].p && slots[i].kind == FH_DIR)
            free_dir(slots[i].p);
    free(slots);
    slots = NULL;
    nslots = free_head = 0;
}
