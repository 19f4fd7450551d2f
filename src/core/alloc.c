/*
 * alloc.c - the allocation hook. The default allocator is the C library's
 * malloc/free; a build with EKV_NO_MALLOC has none, and every open must
 * then pass one (for example a pool over static memory).
 */
#include "ekv_internal.h"

#ifndef EKV_NO_MALLOC
#include <stdlib.h>

static void *libc_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size ? size : 1);
}

static void libc_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    free(p);
}

const ekv_allocator ekv_default_allocator = {libc_alloc, libc_free, NULL};
#endif

void *mem_alloc(const ekv_allocator *a, size_t size)
{
    return a && a->alloc ? a->alloc(a->ctx, size) : NULL;
}

void mem_free(const ekv_allocator *a, void *p, size_t size)
{
    if (p && a->free)
        a->free(a->ctx, p, size);
}

static void *bump_alloc(void *ctx, size_t size)
{
    ekv_bump *b = ctx;
    size_t at = (b->used + 7u) & ~(size_t)7u;
    if (at < b->used || size > b->size || at > b->size - size)
        return NULL;
    b->used = at + size;
    return b->mem + at;
}

static void bump_free(void *ctx, void *p, size_t size)
{
    ekv_bump *b = ctx;
    size_t at = (size_t)((uint8_t *)p - b->mem);
    /* Memory comes back in the reverse order it was taken (a store frees
     * what it allocated last first), so only the top of the stack can be
     * given back; anything else waits for the arena to be reset. */
    if (at <= b->used && size <= b->used - at)
        if (b->used - (at + size) < 8)
            b->used = at;
}

void ekv_bump_init(ekv_allocator *a, ekv_bump *b, void *mem, size_t size)
{
    b->mem = mem;
    b->size = size;
    b->used = 0;
    a->alloc = bump_alloc;
    a->free = bump_free;
    a->ctx = b;
}
