/*
 * numparse.c - see numparse.h.
 */
#include "numparse.h"

#include <string.h>

static int digit_value(char c, unsigned base)
{
    unsigned v;
    if (c >= '0' && c <= '9')
        v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
        v = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
        v = (unsigned)(c - 'A' + 10);
    else
        return -1;
    return v < base ? (int)v : -1;
}

int parse_number(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !out)
        return -1;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    uint64_t v = 0;
    int digits = 0, big = 0;
    for (; *s; s++, digits++) {
        int d = digit_value(*s, base);
        if (d < 0)
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            big = 1;
        else
            v = v * base + (uint64_t)d;
    }
    if (!digits)
        return -1;
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case '\0': break;
    default: return -1;
    }
    if (shift) {
        s++;
        if (!strcmp(s, "iB") || !strcmp(s, "B"))
            s += strlen(s);
    }
    if (*s)
        return -1;
    if (big || (shift && v > (UINT64_MAX >> shift)))
        return -2;
    v <<= shift;
    if (v > max)
        return -2;
    *out = v;
    return 0;
}

const char *number_error(int rc)
{
    return rc == -2 ? "number too large"
                    : "not a number (decimal, 0x hex, K/M/G suffix)";
}
