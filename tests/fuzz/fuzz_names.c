/*
 * fuzz_names - key <-> file name escaping (src/tool/names.h). Every key
 * escapes to a name that decodes back to it; every listed name (shortened
 * or not) resolves to its key; and every name that decodes is canonical:
 * escaping the key gives the same name back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,    \
                    __LINE__, #c);                                        \
            abort();                                                      \
        }                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    /* The bytes as a key. */
    char *esc = malloc(3 * size + 4);
    uint8_t *back = malloc(3 * size + 4);
    char name[NAME_MAX_BYTES + 1];
    CHECK(esc && back);
    size_t n = key_escape(data, size, esc);
    CHECK(n == strlen(esc));
    size_t blen = 0;
    uint64_t h = 0;
    if (n <= NAME_MAX_BYTES) { /* longer escapes are never names */
        CHECK(name_to_key(esc, back, &blen, &h) == NAME_KEY);
        CHECK(blen == size && (!size || memcmp(back, data, size) == 0));
    }
    key_to_name(data, size, name);
    CHECK(strlen(name) <= NAME_MAX_BYTES);
    CHECK(strchr(name, '/') == NULL);
    CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && name[0]);
    enum name_kind k = name_to_key(name, back, &blen, &h);
    if (n <= NAME_MAX_BYTES) {
        CHECK(strcmp(name, esc) == 0);
        CHECK(k == NAME_KEY && blen == size);
        CHECK(!size || memcmp(back, data, size) == 0);
    } else {
        CHECK(k == NAME_SHORT);
        CHECK(h == key_name_hash(data, size));
        CHECK(short_name_matches(name, data, size));
    }

    /* The bytes as a name (up to a NUL). */
    char *nm = malloc(size + 1);
    CHECK(nm != NULL);
    memcpy(nm, data, size);
    nm[size] = 0;
    k = name_to_key(nm, back, &blen, &h);
    if (k == NAME_KEY) {
        char *again = malloc(3 * blen + 4);
        CHECK(again != NULL);
        key_escape(back, blen, again);
        CHECK(strcmp(again, nm) == 0);
        free(again);
    }
    free(nm);
    free(esc);
    free(back);
    return 0;
}
