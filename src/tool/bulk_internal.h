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

/* The whole of a file ("-": standard input), NUL-terminated; 0 or a
 * negated errno. */
int bulk_slurp(const char *path, char **out, size_t *len);

/* The CSV reader (bulk_csv.c): items into doc, or prints and returns
 * EXIT_USAGE / EXIT_IO. */
int bulk_load_csv(const char *cmd, const char *source, const char *text,
                  size_t len, bulk_doc *doc);

#endif
