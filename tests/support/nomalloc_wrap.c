/*
 * nomalloc_wrap.c - lets the host suites run against a core built with
 * EKV_NO_MALLOC (which has no default allocator). Test programs are linked
 * with -Wl,--wrap=ekv_open,--wrap=ekv_format: a call that names no
 * allocator gets one here, served by the host's malloc but passed to the
 * core as a caller's allocator, exactly as a firmware passes its arena.
 * The core itself is not changed.
 */
#include <stdlib.h>

#include "embedkv.h"

int __real_ekv_open(ekv_store **out, ekv_device *const devs[], unsigned n,
                    const ekv_options *opt);
int __real_ekv_format(ekv_device *const devs[], unsigned n,
                      const ekv_format_options *opt);
int __wrap_ekv_open(ekv_store **out, ekv_device *const devs[], unsigned n,
                    const ekv_options *opt);
int __wrap_ekv_format(ekv_device *const devs[], unsigned n,
                      const ekv_format_options *opt);

static void *host_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size ? size : 1);
}

static void host_free(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)size;
    free(p);
}

static const ekv_allocator host = {host_alloc, host_free, NULL};

int __wrap_ekv_open(ekv_store **out, ekv_device *const devs[], unsigned n,
                    const ekv_options *opt)
{
    ekv_options o = {0};
    if (opt)
        o = *opt;
    if (!o.allocator)
        o.allocator = &host;
    return __real_ekv_open(out, devs, n, &o);
}

int __wrap_ekv_format(ekv_device *const devs[], unsigned n,
                      const ekv_format_options *opt)
{
    ekv_format_options o = {0};
    if (opt)
        o = *opt;
    if (!o.allocator)
        o.allocator = &host;
    return __real_ekv_format(devs, n, &o);
}
