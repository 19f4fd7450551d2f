/* names.c - key <-> file name escaping; the rules are in names.h. */
#include <stdio.h>
#include <string.h>

#include "names.h"

static const char hex[] = "0123456789ABCDEF";

size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int must_escape(uint8_t c)
{
    return c < 0x20 || c == 0x7F || c == '/' || c == '%';
}

/* The code point of the valid UTF-8 sequence p[0..len). */
static uint32_t utf8_code_point(const uint8_t *p, size_t len)
{
    uint32_t cp = len == 2 ? p[0] & 0x1Fu : len == 3 ? p[0] & 0x0Fu
                                                     : p[0] & 0x07u;
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (p[i] & 0x3Fu);
    return cp;
}

int invisible_code_point(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) ||     /* C1 controls (CSI U+009B) */
           cp == 0x061C ||                   /* arabic letter mark */
           cp == 0x200B ||                   /* zero width space */
           cp == 0x200E || cp == 0x200F ||   /* LRM, RLM */
           (cp >= 0x2028 && cp <= 0x202E) || /* line/paragraph separators,
                                                bidi embeddings, overrides */
           (cp >= 0x2060 && cp <= 0x206F) || /* word joiner, invisible
                                                operators, bidi isolates */
           cp == 0xFEFF ||                   /* zero width no-break space */
           (cp >= 0xFFF9 && cp <= 0xFFFB);   /* interlinear annotations */
}

size_t key_escape(const uint8_t *key, size_t klen, char *out)
{
    size_t o = 0;
    if (klen == 0) {
        out[0] = '%';
        out[1] = '\0';
        return 1;
    }
    int dots = (klen == 1 && key[0] == '.') ||
               (klen == 2 && key[0] == '.' && key[1] == '.');
    for (size_t i = 0; i < klen;) {
        size_t ul = utf8_len(key + i, klen - i);
        if (ul == 1 && !must_escape(key[i]) && !dots) {
            out[o++] = (char)key[i++];
        } else if (ul > 1 && !invisible_code_point(utf8_code_point(key + i, ul))) {
            memcpy(out + o, key + i, ul);
            o += ul;
            i += ul;
        } else {
            /* One byte, or every byte of an invisible character. */
            for (size_t end = i + (ul > 1 ? ul : 1); i < end; i++) {
                out[o++] = '%';
                out[o++] = hex[key[i] >> 4];
                out[o++] = hex[key[i] & 15];
            }
        }
    }
    out[o] = 0;
    return o;
}

uint64_t key_name_hash(const uint8_t *key, size_t klen)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h;
}

void key_to_name(const uint8_t *key, size_t klen, char *out)
{
    char full[3 * 65536 + 4];
    size_t n = key_escape(key, klen, full);
    if (n <= NAME_MAX_BYTES) {
        memcpy(out, full, n + 1);
        return;
    }
    /* Cut at a boundary: not inside %XX nor inside a UTF-8 sequence. */
    size_t cut = SHORT_PREFIX_BYTES;
    while (cut > 0 && (((uint8_t)full[cut] & 0xC0) == 0x80 ||
                       (cut >= 1 && full[cut - 1] == '%') ||
                       (cut >= 2 && full[cut - 2] == '%')))
        cut--;
    memcpy(out, full, cut);
    snprintf(out + cut, NAME_MAX_BYTES + 1 - cut, "%%#%016llX",
             (unsigned long long)key_name_hash(key, klen));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode %XX escapes of name[0..n) into out; -1 if malformed. */
static long decode(const char *name, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] != '%') {
            out[o++] = (uint8_t)name[i];
            continue;
        }
        if (i + 2 >= n)
            return -1;
        int hi = hexval(name[i + 1]), lo = hi < 0 ? -1 : hexval(name[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return (long)o;
}

enum name_kind name_to_key(const char *name, uint8_t *out, size_t *outlen,
                           uint64_t *hash)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_BYTES)
        return NAME_INVALID;
    if (strcmp(name, "%") == 0) {
        *outlen = 0;
        return NAME_KEY;
    }
    const char *mark = strstr(name, "%#");
    if (mark) {
        size_t plen = (size_t)(mark - name);
        if (n - plen != 18)
            return NAME_INVALID;
        uint64_t h = 0;
        for (size_t i = plen + 2; i < n; i++) {
            int v = hexval(name[i]);
            if (v < 0)
                return NAME_INVALID;
            h = h << 4 | (uint64_t)v;
        }
        long k = decode(name, plen, out);
        if (k < 0)
            return NAME_INVALID;
        *outlen = (size_t)k;
        *hash = h;
        return NAME_SHORT;
    }
    long k = decode(name, n, out);
    if (k < 0)
        return NAME_INVALID;
    /* Canonical only: escaping the key must give the name back. */
    char again[3 * NAME_MAX_BYTES + 4];
    if (key_escape(out, (size_t)k, again) != n || memcmp(again, name, n) != 0)
        return NAME_INVALID;
    *outlen = (size_t)k;
    return NAME_KEY;
}

int short_name_matches(const char *name, const uint8_t *key, size_t klen)
{
    char n2[NAME_MAX_BYTES + 1];
    key_to_name(key, klen, n2);
    return strcmp(n2, name) == 0;
}
