/*
 * codec.h - the byte encodings of export documents and CSV values:
 * base64 (RFC 4648, standard alphabet, padded; no whitespace) and hex
 * (two digits per byte, either case).
 */
#ifndef EKVFS_CODEC_H
#define EKVFS_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Base64 of b as a malloc'd NUL-terminated string (NULL: no memory). */
char *b64_encode(const uint8_t *b, size_t n);

/* Decode s[0..n) into a malloc'd buffer; -1 if it is not valid (or no
 * memory). */
int b64_decode(const char *s, size_t n, uint8_t **out, size_t *olen);
int hex_decode(const char *s, size_t n, uint8_t **out, size_t *olen);

/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);

#endif
