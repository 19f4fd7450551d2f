/*
 * bulk.h - many keys at once: the documents and directories that export,
 * import, extract and format --from read and write (formats in
 * embedkvfs(1)):
 *   - JSON: {"format": BULK_FORMAT, "block_size": N, "block_count": N,
 *     "keys": [ENTRY...]} where
 *     an ENTRY is {"key": TEXT | "key_base64": B64, "value": TEXT |
 *     "value_base64": B64}. TEXT is used for bytes that are valid UTF-8
 *     without NUL, base64 (RFC 4648, padded) for any other bytes.
 *   - CSV: key,encoding,value rows (encoding string, hex, base64 or file).
 *   - a directory: one regular file per key, named by its escaped name.
 */
#ifndef EKVFS_BULK_H
#define EKVFS_BULK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "embedkv.h"

/* The "format" of an export document: what export writes, and the only
 * one the loaders accept when a document names one. */
#define BULK_FORMAT "embedkv-export-1"

typedef struct bulk_item {
    uint8_t *key, *val;
    size_t klen, vlen;
    char where[64]; /* "keys[3]", "line 7", "file NAME" */
} bulk_item;

typedef struct bulk_doc {
    bulk_item *items; /* sorted bytewise by key, no duplicates */
    size_t n, cap;
    uint32_t block_size, block_count; /* from a JSON document, else 0 */
    /* A bounded load (bulk_load_bounded): the size of the store it is
     * for (0: unbounded), and the bytes the loader may still read. */
    uint64_t store_bytes, room;
} bulk_doc;

/*
 * Load a source: a directory, a JSON document or a CSV file ("-" is
 * standard input; JSON unless it starts with something else than '{').
 * On any error prints "embedkvfs CMD: SOURCE: position: reason" and
 * returns EXIT_USAGE (bad content) or EXIT_IO; the doc is then empty.
 */
int bulk_load(const char *cmd, const char *source, bulk_doc *doc);

/* bulk_load for a store of store_bytes bytes (0: no bound): the source
 * and the files it names are read only up to bulk_input_limit() bytes in
 * all, so an endless input (a device, a pipe that never ends) fails with
 * EXIT_IO ("input larger than the store could hold") instead of filling
 * the memory. A FIFO or pipe as the source is fine; the files of a
 * directory and CSV "file" values must be regular files either way. */
int bulk_load_bounded(const char *cmd, const char *source,
                      uint64_t store_bytes, bulk_doc *doc);

/* The most bytes a source for a store of store_bytes bytes can need. */
uint64_t bulk_input_limit(uint64_t store_bytes);

void bulk_free(bulk_doc *doc);

/* Blocks one record of this key and value takes at block size bs. */
uint64_t bulk_blocks(uint32_t bs, size_t klen, size_t vlen);

/* Check that every key fits the block size; prints the first that does
 * not and returns EXIT_USAGE. */
int bulk_check_keys(const char *cmd, const char *source, const bulk_doc *doc,
                    uint32_t bs);

/* Whether b is valid UTF-8 with no NUL byte (a JSON string as is). */
int bulk_is_text(const uint8_t *b, size_t n);

/* Compare two keys bytewise, a shorter one before its extensions. */
int bulk_keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
