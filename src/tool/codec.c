/* codec.c - base64 and hex; see codec.h. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const uint8_t *b, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            v |= b[i + 2];
        *o++ = b64chars[v >> 18 & 63];
        *o++ = b64chars[v >> 12 & 63];
        *o++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *o = 0;
    return out;
}

/* Decode padded base64 (whitespace not allowed). -1 if not base64. */
int b64_decode(const char *s, size_t n, uint8_t **out, size_t *olen)
{
    if (n % 4)
        return -1;
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    size_t k = 0;
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            const char *p = c ? strchr(b64chars, c) : NULL;
            if (c == '=' && i + 4 == n && j >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!p || pad) {
                free(buf);
                return -1;
            }
            v = v << 6 | (uint32_t)(p - b64chars);
        }
        buf[k++] = (uint8_t)(v >> 16);
        if (pad < 2)
            buf[k++] = (uint8_t)(v >> 8);
        if (pad < 1)
            buf[k++] = (uint8_t)v;
    }
    *out = buf;
    *olen = k;
    return 0;
}

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, size_t n, uint8_t **out, size_t *olen)
{
    if (n % 2)
        return -1;
    uint8_t *buf = malloc(n / 2 + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return -1;
        }
        buf[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *out = buf;
    *olen = n / 2;
    return 0;
}

