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
#else
const ekv_allocator ekv_default_allocator = {NULL, NULL, NULL};
#endif

void *mem_alloc(const ekv_allocator *a, size_t size)
{
    return a->alloc ? a->alloc(a->ctx, size) : NULL;
}

void mem_free(const ekv_allocator *a, void *p, size_t size)
{
    if (p && a->free)
        a->free(a->ctx, p, size);
}
