/*
 * names.h - how keys (byte strings) become file names and back.
 *
 * A key's name is the key itself, except that these bytes are written as
 * %XX (two upper-case hex digits): '/', '%', NUL and the other control
 * bytes 0x01-0x1F and 0x7F, every byte that is not part of a valid
 * UTF-8 sequence, and every byte of a character that would reach a
 * terminal as a control or rearrange or hide text (invisible_code_point:
 * C1 controls such as U+009B CSI, bidi overrides and isolates, line and
 * paragraph separators, zero-width spaces). The keys "." and ".." are written "%2E" and "%2E%2E"; the
 * empty key is written "%". Names are canonical: a name is accepted only
 * if escaping what it decodes to gives the name back, so every key has
 * exactly one name and every name at most one key.
 *
 * A name longer than NAME_MAX_BYTES (255, the kernel's limit) cannot be
 * listed; such keys get a shortened name: the first 200 bytes of the
 * escaped name (cut at a character boundary) then "%#" and 16 hex digits of
 * a 64-bit hash of the key. A shortened name resolves through a search.
 */
#ifndef EKVFS_NAMES_H
#define EKVFS_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_BYTES 255
#define SHORT_PREFIX_BYTES 200

/* Length of the valid UTF-8 sequence at p (1..4, at most n), or 0 if the
 * bytes there are not one. */
size_t utf8_len(const uint8_t *p, size_t n);

/* Whether code point cp is escaped although valid UTF-8: U+0080-U+009F,
 * U+061C, U+200B, U+200E, U+200F, U+2028-U+202E, U+2060-U+206F, U+FEFF,
 * U+FFF9-U+FFFB. */
int invisible_code_point(uint32_t cp);

/* Escape key into out (NUL-terminated). out needs 3 * klen + 1 bytes, or
 * at least 4 (for "%" and the dot names). Returns the name's length. */
size_t key_escape(const uint8_t *key, size_t klen, char *out);

/* The file name of a key: the escaped name, or the shortened one when
 * longer than NAME_MAX_BYTES. out needs NAME_MAX_BYTES + 1 bytes. */
void key_to_name(const uint8_t *key, size_t klen, char *out);

/* 64-bit FNV-1a hash of a key, as used in shortened names. */
uint64_t key_name_hash(const uint8_t *key, size_t klen);

/* Results of name_to_key. */
enum name_kind {
    NAME_KEY = 0,     /* decoded: out/outlen hold the key */
    NAME_SHORT = 1,   /* a shortened name: *hash holds the key hash; out
                         holds the decoded prefix */
    NAME_INVALID = -1 /* not a canonical name of any key */
};

/* Decode a name. out needs strlen(name) bytes at most. */
enum name_kind name_to_key(const char *name, uint8_t *out, size_t *outlen,
                           uint64_t *hash);

/* Whether key k is the key a shortened name stands for. */
int short_name_matches(const char *name, const uint8_t *key, size_t klen);

#endif
