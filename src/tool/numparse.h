/*
 * numparse.h - the one number parser of embedkvfs: every size, count,
 * offset, length and block size on the command line and in mount options
 * goes through parse_number(), so "4096", "0x1000" and "4K" mean the same
 * everywhere.
 */
#ifndef EKVFS_NUMPARSE_H
#define EKVFS_NUMPARSE_H

#include <stdint.h>

/*
 * parse_number - a non-negative integer: decimal ("4096"), hexadecimal
 * with 0x or 0X ("0x1000"), optionally followed by one suffix K, M or G
 * (powers of 1024, either case, optionally followed by "iB" or "B":
 * "4K", "4KiB", "0x10M"). Nothing else may follow; no sign, no spaces.
 * Returns 0 and stores the value, or -1 (syntax) / -2 (larger than max).
 */
int parse_number(const char *s, uint64_t max, uint64_t *out);

/* A phrase for parse_number's error: "not a number (...)" or "too large". */
const char *number_error(int rc);

#endif
