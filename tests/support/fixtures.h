/* fixtures.h - builds the reference images of ../shared/compat with
 * libembedkv itself (see fixtures.c). */
#ifndef FIXTURES_H
#define FIXTURES_H
#include <stddef.h>
#include <stdint.h>

typedef struct fixture {
    const char *path;       /* relative, e.g. "recovery/partial_write.bin" */
    uint32_t block_count;   /* 256-byte blocks */
} fixture;

extern const fixture fixtures[];
extern const size_t fixture_count;

/* Build fixture i into a malloc'd image of block_count * 256 bytes.
 * Returns NULL on failure. */
uint8_t *fixture_build(size_t i);

/* Read a whole file; NULL if missing. */
uint8_t *read_file(const char *path, size_t *len);
#endif
