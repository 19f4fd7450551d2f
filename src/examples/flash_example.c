/*
 * flash_example.c - libembedkv on a microcontroller's raw NOR flash.
 *
 * What a port looks like: the board has a flash driver with three calls
 * (read bytes, program bytes, erase a sector), as most HALs do. Here they
 * are flash_read/flash_program/flash_erase_sector. The adapter below turns
 * them into an embedkv device with one block per erase sector:
 * - read:  flash_read of the whole sector;
 * - write: erase the sector, then program it, unless the block is all 0xFF
 *   (an embedkv erase), for which the sector erase alone is enough;
 * - flush: nothing, because this flash programs synchronously.
 * The store is built with EKV_NO_INDEX and EKV_NO_MALLOC: all its memory is
 * the static arena sized by EKV_STORE_MEMORY(), and RAM use is fixed no
 * matter how many keys there are.
 *
 * On the host (the default), flash_* simulate a NOR part in RAM that, like
 * the real thing, can only clear bits when programming and counts erases;
 * main() then runs a small boot-time scenario and checks it, including a
 * "power cut" in the middle of an update. Built with -DEKV_EXAMPLE_TARGET
 * for Cortex-M, the same file is linked with -nostdlib to prove the core
 * needs nothing from a C library beyond memcpy, memset and memcmp.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "embedkv.h"

#define SECTOR_SIZE 256u
#define SECTORS 32u

/* ---- the board's flash driver (simulated) ---------------------------- */

static uint8_t flash[SECTORS * SECTOR_SIZE];
static uint32_t erase_count[SECTORS];
static int program_budget = -1; /* programs left before a "power cut" */

static int flash_read(uint32_t addr, void *buf, uint32_t len)
{
    if (addr + len > sizeof(flash))
        return -1;
    memcpy(buf, flash + addr, len);
    return 0;
}

static int flash_program(uint32_t addr, const void *buf, uint32_t len)
{
    const uint8_t *src = buf;
    if (addr + len > sizeof(flash) || program_budget == 0)
        return -1;
    if (program_budget > 0)
        program_budget--;
    for (uint32_t i = 0; i < len; i++) {
        /* NOR programming only turns 1 bits into 0 bits. */
        if ((flash[addr + i] & src[i]) != src[i])
            return -2;
        flash[addr + i] &= src[i];
    }
    return 0;
}

static int flash_erase_sector(uint32_t sector)
{
    if (sector >= SECTORS)
        return -1;
    memset(flash + sector * SECTOR_SIZE, 0xff, SECTOR_SIZE);
    erase_count[sector]++;
    return 0;
}

/* ---- the adapter: flash driver -> embedkv device ---------------------- */

static int dev_read(ekv_device *dev, uint32_t block, void *buf)
{
    (void)dev;
    return flash_read(block * SECTOR_SIZE, buf, SECTOR_SIZE) ? EKV_EIO : 0;
}

static int dev_write(ekv_device *dev, uint32_t block, const void *buf)
{
    const uint8_t *p = buf;
    uint32_t i = 0;
    (void)dev;
    if (flash_erase_sector(block))
        return EKV_EIO;
    while (i < SECTOR_SIZE && p[i] == 0xff)
        i++;
    if (i == SECTOR_SIZE)
        return 0; /* an embedkv erase: the sector erase did it */
    return flash_program(block * SECTOR_SIZE, buf, SECTOR_SIZE) ? EKV_EIO : 0;
}

static ekv_device flash_dev = {
    .block_size = SECTOR_SIZE,
    .block_count = SECTORS,
    .read = dev_read,
    .write = dev_write,
    .flush = NULL, /* programs are synchronous */
};

/* All the RAM the store will ever use. */
static uint8_t arena[EKV_STORE_MEMORY(SECTOR_SIZE, 1)]
    __attribute__((aligned(8)));

/* Open the store over the flash, formatting it on first boot. */
static int storage_mount(ekv_store **s, ekv_bump *bump, ekv_allocator *al)
{
    ekv_device *devs[1] = {&flash_dev};
    ekv_options opt = {0};
    ekv_bump_init(al, bump, arena, sizeof(arena));
    opt.allocator = al;
    opt.erase_byte = 0xff; /* erased NOR reads as 0xFF */
    int err = ekv_open(s, devs, 1, &opt);
    if (err == EKV_EBADHDR) {
        ekv_format_options fo = {0};
        fo.allocator = al;
        fo.erase_byte = 0xff;
        fo.erase_data = 1;
        err = ekv_format(devs, 1, &fo);
        if (!err)
            err = ekv_open(s, devs, 1, &opt);
    }
    return err;
}

/* ---- the scenario ------------------------------------------------------ */

static int check(int cond, int code)
{
    return cond ? 0 : code;
}

static int same(const uint8_t *a, const char *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

int example_main(void);
int example_main(void)
{
    ekv_store *s;
    ekv_bump bump;
    ekv_allocator al;
    uint8_t buf[64];
    size_t len = 0;
    int err;

    memset(flash, 0xff, sizeof(flash)); /* a factory-fresh part */

    /* First boot: formats, stores the settings. */
    if ((err = storage_mount(&s, &bump, &al)) != 0)
        return 10;
    if (ekv_put(s, "wifi.ssid", 9, "lab-net", 7) ||
        ekv_put(s, "boot.count", 10, "1", 1))
        return 11;
    ekv_close(s);

    /* Second boot: the values are there; update one. */
    if (storage_mount(&s, &bump, &al))
        return 20;
    err = ekv_get(s, "wifi.ssid", 9, buf, sizeof(buf), &len);
    if ((err = check(!err && len == 7 && same(buf, "lab-net", 7), 21)))
        return err;
    if (ekv_put(s, "boot.count", 10, "2", 1))
        return 22;

    /* Power fails during the next update: its first sector is erased but
     * never programmed. */
    program_budget = 0;
    if (ekv_put(s, "boot.count", 10, "3", 1) == 0)
        return 23;
    program_budget = -1;
    ekv_close(s);

    /* Third boot: recovery kept the last complete value. */
    if (storage_mount(&s, &bump, &al))
        return 30;
    err = ekv_get(s, "boot.count", 10, buf, sizeof(buf), &len);
    if ((err = check(!err && len == 1 && buf[0] == '2', 31)))
        return err;
    if (ekv_delete(s, "wifi.ssid", 9) ||
        ekv_get(s, "wifi.ssid", 9, buf, sizeof(buf), &len) != EKV_ENOENT)
        return 32;
    ekv_close(s);
    /* The whole store lived in the arena. */
    return check(bump.used <= sizeof(arena), 40);
}

#ifdef EKV_EXAMPLE_TARGET
/* Freestanding: the three functions the core may call. */
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

/* The reset handler a real image would have. */
void example_reset(void);
void example_reset(void)
{
    volatile int rc = example_main();
    for (;;)
        (void)rc;
}
#else
#include <stdio.h>

int main(void)
{
    int rc = example_main();
    uint32_t most = 0;
    for (uint32_t i = 0; i < SECTORS; i++)
        if (erase_count[i] > most)
            most = erase_count[i];
    printf("flash_example: %s (code %d), arena %zu bytes, "
           "most erases of one sector %u\n",
           rc ? "FAILED" : "ok", rc, sizeof(arena), most);
    return rc ? 1 : 0;
}
#endif
