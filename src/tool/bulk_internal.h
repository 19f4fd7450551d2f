/* bulk_internal.h - what the loaders of bulk.c and bulk_csv.c share. */
#ifndef EKVFS_BULK_INTERNAL_H
#define EKVFS_BULK_INTERNAL_H

#include "bulk.h"

/* "embedkvfs CMD: SOURCE: message" on stderr. */
void bulk_say(const char *cmd, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A malloc'd copy of n bytes (never malloc(0)); NULL: no memory. */
uint8_t *bulk_dup(const void *p, size_t n);

/* A new zeroed item at the end of doc; NULL: no memory. */
bulk_item *bulk_add(bulk_doc *doc);

/* The whole of a source file ("-": standard input; a FIFO or pipe is
 * fine), NUL-terminated, within doc->room (which it reduces). 0, or
 * EXIT_IO with the reason in why. */
int bulk_slurp(bulk_doc *doc, const char *path, char **out, size_t *len,
               char *why, size_t cap);

/* The same for a file that holds one value (a file of a key source
 * directory, a CSV "file" value), which must be a regular file: it is
 * opened without blocking and checked on the descriptor, so a FIFO
 * cannot hang the command nor a device (/dev/zero) be read without end.
 * 0; EXIT_USAGE when it is missing or no regular file (why: "No such
 * file or directory", "is a directory", "not a regular file (it is a
 * FIFO)"); EXIT_IO when it cannot be read or is too large. */
int bulk_value_file(bulk_doc *doc, const char *path, char **out,
                    size_t *len, char *why, size_t cap);

/* The CSV reader (bulk_csv.c): items into doc, or prints and returns
 * EXIT_USAGE / EXIT_IO. */
int bulk_load_csv(const char *cmd, const char *source, const char *text,
                  size_t len, bulk_doc *doc);

#endif
