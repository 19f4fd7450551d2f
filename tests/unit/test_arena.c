/*
 * A scanning store in a fixed arena, as firmware runs it: a bump allocator
 * over a static array of EKV_STORE_MEMORY() bytes is all the memory there
 * is, so every open, failed or not, must give back all it took when it
 * fails or is closed, and must fit the bound at every step. Built against
 * the scanning core (arena-noindex) and the smallest configuration that
 * tests/firmware.sh measures, one replica and no malloc (arena-min), whose
 * open reads the header straight into the block buffers.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "embedkv.h"

#ifndef EKV_NO_INDEX
#error "build this test with -DEKV_NO_INDEX"
#endif

#define BS 128u
#define BC 16u

static uint8_t flash[BS * BC];
static uint8_t arena[EKV_STORE_MEMORY(BS, 1)] __attribute__((aligned(8)));
static unsigned writes;
static int read_err; /* what the next reads return, 0: succeed */

static int flash_read(ekv_device *d, uint32_t b, void *buf)
{
    if (read_err)
        return read_err;
    memcpy(buf, flash + (size_t)b * d->block_size, d->block_size);
    return 0;
}

static int flash_write(ekv_device *d, uint32_t b, const void *buf)
{
    writes++;
    memcpy(flash + (size_t)b * d->block_size, buf, d->block_size);
    return 0;
}

/* Erased flash (all 0xFF), never formatted. */
static void blank(ekv_device *dev)
{
    memset(flash, 0xff, sizeof(flash));
    memset(dev, 0, sizeof(*dev));
    dev->block_size = BS;
    dev->block_count = BC;
    dev->read = flash_read;
    dev->write = flash_write;
    writes = 0;
    read_err = 0;
}

/* A first boot: open finds no header, format, open again, all in one
 * arena; each step leaves the arena as it found it. */
START_TEST(first_boot_formats_and_opens_in_one_fixed_arena)
{
    ekv_device dev, *d = &dev;
    ekv_allocator al;
    ekv_bump bump;
    blank(&dev);
    ekv_bump_init(&al, &bump, arena, sizeof(arena));
    ekv_options o = {.erase_byte = 0xff, .allocator = &al};
    ekv_store *s = (ekv_store *)&o; /* open must set it to NULL */
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_EBADHDR);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(bump.used, 0);
    ck_assert_uint_eq(writes, 0);

    ekv_format_options fo = {.erase_byte = 0xff, .allocator = &al};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), 0);
    ck_assert_uint_eq(bump.used, 0);

    char val[16];
    size_t len = 0;
    for (int boot = 0; boot < 3; boot++) {
        ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
        ck_assert_uint_le(bump.used, ekv_store_memory(BS, 1));
        if (boot == 0) {
            ck_assert_int_eq(ekv_put(s, "k", 1, "value", 5), 0);
        }
        ck_assert_int_eq(ekv_get(s, "k", 1, val, sizeof(val), &len), 0);
        ck_assert_uint_eq(len, 5);
        ck_assert_mem_eq(val, "value", 5);
        ekv_close(s);
        ck_assert_uint_eq(bump.used, 0);
    }
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_int_eq(ekv_delete(s, "k", 1), 0);
    ck_assert_int_eq(ekv_get(s, "k", 1, val, sizeof(val), &len), EKV_ENOENT);
    ekv_close(s);
    ck_assert_uint_eq(bump.used, 0);
}
END_TEST

/* Every arena short of what open needs fails with EKV_ENOMEM and leaves
 * the arena empty; from ekv_store_memory() bytes on, open succeeds. */
START_TEST(every_arena_too_small_fails_cleanly)
{
    ekv_device dev, *d = &dev;
    ekv_allocator al;
    ekv_bump bump;
    blank(&dev);
    ekv_bump_init(&al, &bump, arena, sizeof(arena));
    ekv_format_options fo = {.erase_byte = 0xff, .allocator = &al};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), 0);
    const size_t need = ekv_store_memory(BS, 1);
    ck_assert_uint_le(need, sizeof(arena));
    size_t smallest = 0;
    for (size_t size = 0; size <= need; size++) {
        ekv_bump_init(&al, &bump, arena, size);
        ekv_options o = {.erase_byte = 0xff, .allocator = &al};
        ekv_store *s = NULL;
        int err = ekv_open(&s, &d, 1, &o);
        if (err == 0) {
            ekv_close(s);
            if (!smallest)
                smallest = size;
        } else {
            ck_assert_int_eq(err, EKV_ENOMEM);
            ck_assert_ptr_null(s);
            ck_assert_uint_eq(smallest, 0); /* no failure above a success */
        }
        ck_assert_uint_eq(bump.used, 0);
    }
    ck_assert_uint_gt(smallest, 3 * BS);
    ck_assert_uint_le(smallest, need);
}
END_TEST

/* A header that cannot be read, or a block size the format does not
 * allow, fails the open with the cause and gives the arena back. */
START_TEST(a_failed_header_read_or_bad_geometry_gives_the_arena_back)
{
    ekv_device dev, *d = &dev;
    ekv_allocator al;
    ekv_bump bump;
    blank(&dev);
    ekv_bump_init(&al, &bump, arena, sizeof(arena));
    ekv_format_options fo = {.erase_byte = 0xff, .allocator = &al};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), 0);
    ekv_options o = {.erase_byte = 0xff, .allocator = &al};
    ekv_store *s = NULL;

    read_err = EKV_EIO;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_EIO);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(bump.used, 0);
    read_err = 0;

    dev.block_size = EKV_MIN_BLOCK_SIZE / 2;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_EDOM);
    ck_assert_uint_eq(bump.used, 0);
    dev.block_size = EKV_MAX_BLOCK_SIZE * 2;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_EDOM);
    ck_assert_uint_eq(bump.used, 0);

    /* The device has a header of another block size: not this store. */
    dev.block_size = BS / 2;
    dev.block_count = BC * 2;
    ck_assert_int_ne(ekv_open(&s, &d, 1, &o), 0);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(bump.used, 0);

    dev.block_size = BS;
    dev.block_count = BC;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ekv_close(s);
    ck_assert_uint_eq(bump.used, 0);
}
END_TEST

#ifdef EKV_NO_MALLOC
/* Without malloc there is no default allocator: a call that brings none
 * fails with EKV_ENOMEM (after the argument checks) and writes nothing. */
START_TEST(no_allocator_without_malloc_is_enomem)
{
    ekv_device dev, *d = &dev;
    blank(&dev);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), EKV_ENOMEM);
    ekv_format_options fo = {.erase_byte = 0xff};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), EKV_ENOMEM);
    ck_assert_uint_eq(writes, 0);
    ck_assert_int_eq(ekv_open(&s, &d, 1, NULL), EKV_ENOMEM);
    ck_assert_ptr_null(s);
    ekv_options o = {.erase_byte = 0xff};
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), EKV_ENOMEM);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(writes, 0);
    /* Bad arguments are still named as such. */
    ekv_device *none = NULL;
    ck_assert_int_eq(ekv_open(&s, &none, 1, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_format(&none, 1, NULL), EKV_EINVAL);
}
END_TEST
#endif

int main(void)
{
    Suite *su = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, first_boot_formats_and_opens_in_one_fixed_arena);
    tcase_add_test(tc, every_arena_too_small_fails_cleanly);
    tcase_add_test(tc, a_failed_header_read_or_bad_geometry_gives_the_arena_back);
#ifdef EKV_NO_MALLOC
    tcase_add_test(tc, no_allocator_without_malloc_is_enomem);
#endif
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
