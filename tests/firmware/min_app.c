/*
 * min_app.c - the smallest application of the core, for tests/firmware.sh:
 * the footprint issue 11 defines. A RAM "flash" device, a static arena, and
 * calls of ekv_format, ekv_open, ekv_get, ekv_put, ekv_delete, ekv_close
 * (built with EKV_READONLY: ekv_open, ekv_get, ekv_close only). Linked with
 * -nostdlib; the app brings its own memcpy/memset/memcmp, which the
 * measurement leaves out together with every app_* symbol, so what is
 * counted is the core and whatever it pulls from libgcc.
 */
#include <stddef.h>
#include <stdint.h>

#include "embedkv.h"

#define APP_BS 128u
#define APP_BC 16u

static uint8_t app_flash[APP_BS * APP_BC];
static uint8_t app_arena[EKV_STORE_MEMORY(APP_BS, 1)] __attribute__((aligned(8)));
static uint8_t app_val[64];

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *dp = d;
    const uint8_t *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    uint8_t *dp = d;
    while (n--)
        *dp++ = (uint8_t)c;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

#ifdef EKV_CRC_EXTERN
/* The platform's CRC (a stand-in for a hardware unit): with
 * EKV_CRC_EXTERN the core calls this one and has none of its own. Counted
 * as the application's (min_size.py --platform ekv_crc32). */
uint32_t ekv_crc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}
#endif

static int app_read(ekv_device *d, uint32_t b, void *buf)
{
    memcpy(buf, app_flash + b * APP_BS, d->block_size);
    return 0;
}

#ifndef EKV_READONLY
static int app_write(ekv_device *d, uint32_t b, const void *buf)
{
    memcpy(app_flash + b * APP_BS, buf, d->block_size);
    return 0;
}
#endif

int app_main(void);
int app_main(void)
{
    ekv_device dev = {.block_size = APP_BS, .block_count = APP_BC,
                      .read = app_read};
    ekv_device *devs[1] = {&dev};
    ekv_allocator a;
    ekv_bump b;
    ekv_options o = {.erase_byte = 0xff, .allocator = &a};
    ekv_store *s;
    size_t len;
    int rc = 0;
    ekv_bump_init(&a, &b, app_arena, sizeof(app_arena));
#ifndef EKV_READONLY
    dev.write = app_write;
    ekv_format_options fo = {.erase_byte = 0xff, .allocator = &a};
    rc |= ekv_format(devs, 1, &fo);
#endif
    rc |= ekv_open(&s, devs, 1, &o);
    if (rc)
        return rc;
#ifndef EKV_READONLY
    rc |= ekv_put(s, "k", 1, "v", 1);
#endif
    rc |= ekv_get(s, "k", 1, app_val, sizeof(app_val), &len);
#ifndef EKV_READONLY
    rc |= ekv_delete(s, "k", 1);
#endif
    ekv_close(s);
    return rc;
}

void app_reset(void);
void app_reset(void)
{
    (void)app_main();
    for (;;)
        ;
}
