/* window.c - the --offset/--length lists; see window.h. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "numparse.h"
#include "window.h"

static uint64_t offsets[EKV_MAX_REPLICAS], lengths[EKV_MAX_REPLICAS];
static unsigned noff, nlen;
static unsigned gbase, gtotal; /* window_group */

void window_group(unsigned base, unsigned total)
{
    gbase = base;
    gtotal = total;
}

static int parse_list(const char *cmd, const char *what, const char *list,
                      uint64_t *vals, unsigned *n)
{
    char buf[512];
    size_t tlen = strlen(list);
    if (tlen >= sizeof(buf)) {
        fprintf(stderr, "%s %s: --%s: list too long\n", PROG, cmd, what);
        return -1;
    }
    memcpy(buf, list, tlen + 1);
    unsigned k = 0;
    char *p = buf;
    /* An empty item is an error too, so split by hand. */
    for (;;) {
        char *sep = strpbrk(p, ":,");
        if (sep)
            *sep = 0;
        if (k == EKV_MAX_REPLICAS) {
            fprintf(stderr, "%s %s: --%s: at most %u values\n", PROG, cmd,
                    what, EKV_MAX_REPLICAS);
            return -1;
        }
        int rc = parse_number(p, (uint64_t)INT64_MAX / 2, &vals[k]);
        if (rc) {
            fprintf(stderr, "%s %s: --%s: '%s': %s\n", PROG, cmd, what, p,
                    number_error(rc));
            return -1;
        }
        k++;
        if (!sep)
            break;
        p = sep + 1;
    }
    *n = k;
    return 0;
}

int window_set(const char *cmd, const char *what, const char *list)
{
    if (!strcmp(what, "offset"))
        return parse_list(cmd, what, list, offsets, &noff);
    return parse_list(cmd, what, list, lengths, &nlen);
}

int window_take_args(const char *cmd, int *argc, char **argv)
{
    int out = 1, i;
    for (i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        const char *what = NULL, *val = NULL;
        if (!strcmp(a, "--offset") || !strcmp(a, "--length")) {
            what = a + 2;
            if (i + 1 >= *argc) {
                fprintf(stderr, "%s %s: %s needs a value (see '%s %s "
                                "--help')\n",
                        PROG, cmd, a, PROG, cmd);
                return EXIT_USAGE;
            }
            val = argv[++i];
        } else if (!strncmp(a, "--offset=", 9) ||
                   !strncmp(a, "--length=", 9)) {
            what = a[2] == 'o' ? "offset" : "length";
            val = a + 9;
        }
        if (what) {
            if (window_set(cmd, what, val))
                return EXIT_USAGE;
            continue;
        }
        argv[out++] = argv[i];
    }
    for (; i < *argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    *argc = out;
    return 0;
}

img_window window_for(unsigned i)
{
    img_window w = {0, 0, 0};
    i += gbase;
    if (noff) {
        w.offset = offsets[noff == 1 ? 0 : (i < noff ? i : noff - 1)];
        w.set = 1;
    }
    if (nlen) {
        w.length = lengths[nlen == 1 ? 0 : (i < nlen ? i : nlen - 1)];
        w.set = 1;
    }
    return w;
}

int window_given(void)
{
    return noff || nlen;
}

int window_check_count(const char *cmd, unsigned n)
{
    if (gtotal)
        n = gtotal;
    if ((noff > 1 && noff != n) || (nlen > 1 && nlen != n)) {
        fprintf(stderr,
                "%s%s%s: %u images but %u offsets and %u lengths: give one "
                "value for all images or one per image\n",
                PROG, *cmd ? " " : "", cmd, n, noff, nlen);
        return EXIT_USAGE;
    }
    return 0;
}

int windows_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    uint64_t aend = alen ? a + alen : UINT64_MAX;
    uint64_t bend = blen ? b + blen : UINT64_MAX;
    return a < bend && b < aend;
}
