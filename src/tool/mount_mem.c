/*
 * mount_mem.c - memory for the contents of open files.
 *
 * A writer's content is copied into memory as its writes arrive. For a
 * large one, most of that copy's cost is not the copy but the page faults
 * of fresh memory: one per 4 KiB page, each one dearer on a virtual
 * machine than copying the page. So a content of MEM_MAP_FROM bytes or
 * more gets a mapping of its own, aligned to and sized in huge pages and
 * advised for them: a fault then brings 2 MiB. Where the kernel has no
 * huge page to give, or transparent huge pages are off, the mapping works
 * with small pages as malloc's would. Smaller contents stay in malloc'd
 * memory, so a mount of small files costs no more than before.
 *
 * A mapping reserves GROW_ROOM bytes of address space (on 64-bit
 * systems), of which only the first cap are accessible: a content written
 * front to back grows within it by opening more of it, with no copy and
 * no fault of pages it already had (growing 1, 2, 4 to 8 MiB by copying
 * would clear and fault 14 MiB for an 8 MiB value). Past its room, a
 * mapped buffer grows in place when the address space after it is free,
 * else into a new mapping. Reserved, untouched address space costs no
 * memory; where there is no address space to reserve (a ulimit -v), a
 * buffer gets heap memory instead, as a small one does. The owner keeps the flag that says which kind of buffer it
 * holds, and gives it back to content_free.
 *
 * A value read whole (a reader's snapshot, the lazy readers' value, what
 * a rename or truncate moves) is no different: loading 8 MiB into fresh
 * small pages costs more than reading and checking it. It gets memory of
 * the same two kinds, sized exactly where it is malloc'd (struct value).
 *
 * Even huge pages cost a fault and a clearing of 2 MiB each. So the
 * largest buffer let go (content_drop, value_free), up to SPARE_MAX, is
 * kept as the spare, its pages mapped, and the next buffer that needs at
 * least SPARE_TAKE bytes and fits in it takes it. Callers hold fs.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mount.h"

#define HUGE_PAGE ((size_t)2 << 20)

/* Under AddressSanitizer every content stays in malloc'd memory, which it
 * guards; a mapping of our own it would not. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_MAP_FROM SIZE_MAX
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_MAP_FROM SIZE_MAX
#endif
#endif
#ifndef MEM_MAP_FROM
#define MEM_MAP_FROM ((size_t)1 << 20)
#endif

/* The address space a mapping reserves to grow into (none where address
 * space is scarce). */
#if UINTPTR_MAX > 0xffffffffu
#define GROW_ROOM ((size_t)64 << 20)
#else
#define GROW_ROOM ((size_t)0)
#endif

#define SPARE_MIN ((size_t)1 << 20)  /* smaller buffers are not kept */
#define SPARE_MAX ((size_t)64 << 20) /* nor larger ones */
#define SPARE_TAKE ((size_t)64 << 10)
static struct value spare;

/* Take the spare for a buffer of need bytes, if it fits and is worth it. */
static bool take_spare(size_t need, struct value *v)
{
    if (!spare.p || spare.cap < need || need < SPARE_TAKE)
        return false;
    *v = spare;
    spare = (struct value){0};
    return true;
}

/* The address space a mapping of cap accessible bytes holds. */
static size_t span_of(size_t cap)
{
    return cap < GROW_ROOM ? GROW_ROOM : cap;
}

/*
 * size accessible bytes (a multiple of HUGE_PAGE) aligned to HUGE_PAGE, in
 * a reservation of span_of(size) bytes whose rest is inaccessible, or NULL.
 */
static uint8_t *map_aligned(size_t size)
{
    size_t room = span_of(size);
    if (room > SIZE_MAX - HUGE_PAGE)
        return NULL;
    size_t span = room + HUGE_PAGE;
    uint8_t *p = mmap(NULL, span, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uint8_t *a = (uint8_t *)at;
    size_t head = (size_t)(a - p);
    if (head)
        munmap(p, head);
    if (span - head > room)
        munmap(a + room, span - head - room);
    if (mprotect(a, size, PROT_READ | PROT_WRITE) != 0) {
        munmap(a, room);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(a, room, MADV_HUGEPAGE); /* a hint: fine if refused */
#endif
    return a;
}

void content_free(uint8_t *buf, size_t cap, bool mapped)
{
    if (!buf)
        return;
    if (mapped)
        munmap(buf, span_of(cap));
    else
        free(buf);
}

void content_drop(uint8_t *buf, size_t cap, bool mapped)
{
    if (buf && cap >= SPARE_MIN && cap <= SPARE_MAX && cap > spare.cap) {
        content_free(spare.p, spare.cap, spare.mapped);
        spare = (struct value){.p = buf, .cap = cap, .mapped = mapped};
    } else {
        content_free(buf, cap, mapped);
    }
}

void content_free_spare(void)
{
    content_free(spare.p, spare.cap, spare.mapped);
    spare = (struct value){0};
}

int content_grow(uint8_t **buf, size_t *cap, bool *mapped, size_t len,
                 size_t need)
{
    if (need <= *cap)
        return 0;
    struct value v;
    if (take_spare(need, &v)) {
        if (len)
            memcpy(v.p, *buf, len);
        content_free(*buf, *cap, *mapped);
        *buf = v.p;
        *cap = v.cap;
        *mapped = v.mapped;
        return 0;
    }
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap < MEM_MAP_FROM) {
        uint8_t *p = realloc(*buf, ncap);
        if (!p)
            return -ENOMEM;
        *buf = p;
        *cap = ncap;
        return 0;
    }
    if (ncap > SIZE_MAX - HUGE_PAGE)
        return -ENOMEM;
    ncap = (ncap + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    if (*mapped && *cap < span_of(*cap)) {
        /* Room reserved: open up to need, or all of it. */
        size_t room = span_of(*cap);
        if (ncap > room && need <= room)
            ncap = room;
        if (ncap <= room &&
            mprotect(*buf + *cap, ncap - *cap, PROT_READ | PROT_WRITE) == 0) {
            *cap = ncap;
            return 0;
        }
    } else if (*mapped && mremap(*buf, *cap, ncap, 0) != MAP_FAILED) {
        *cap = ncap; /* grew in place: same mapping, same advice */
        return 0;
    }
    uint8_t *p = map_aligned(ncap);
    bool map = p != NULL;
    if (!map && !*mapped) {
        /* No address space for a mapping and its room (a ulimit -v, say):
         * heap memory, as a small content gets. */
        p = realloc(*buf, ncap);
        if (!p)
            return -ENOMEM;
        *buf = p;
        *cap = ncap;
        return 0;
    }
    if (!map && !(p = malloc(ncap)))
        return -ENOMEM;
    if (len)
        memcpy(p, *buf, len);
    content_free(*buf, *cap, *mapped);
    *buf = p;
    *cap = ncap;
    *mapped = map;
    return 0;
}

int value_alloc(struct value *v, size_t size)
{
    if (take_spare(size, v))
        return 0;
    uint8_t *p = NULL;
    size_t cap = size;
    bool map = false;
    if (size >= MEM_MAP_FROM && size <= SIZE_MAX - HUGE_PAGE) {
        cap = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        p = map_aligned(cap);
        map = p != NULL;
    }
    if (!p) {
        cap = size; /* small, or no address space for a mapping */
        p = malloc(size ? size : 1);
    }
    if (!p)
        return -ENOMEM;
    v->p = p;
    v->len = 0;
    v->cap = cap;
    v->mapped = map;
    return 0;
}

void value_free(struct value *v)
{
    content_drop(v->p, v->cap, v->mapped);
    *v = (struct value){0};
}
