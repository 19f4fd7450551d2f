/* progress.c - see progress.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

static const char *plabel;
static uint64_t ptotal, pdone;
static double pstart, plast;
static int pactive, pshown;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_begin(const char *label, uint64_t total)
{
    pactive = isatty(STDERR_FILENO);
    plabel = label;
    ptotal = total;
    pdone = 0;
    pshown = 0;
    pstart = plast = now_s();
}

void progress_step(uint64_t done)
{
    pdone = done;
    if (!pactive)
        return;
    double t = now_s();
    if (t - pstart < 1.0 || t - plast < 0.1)
        return;
    plast = t;
    pshown = 1;
    if (ptotal)
        fprintf(stderr, "\r%s: %llu/%llu (%u%%)", plabel,
                (unsigned long long)done, (unsigned long long)ptotal,
                (unsigned)(done * 100 / ptotal));
    else
        fprintf(stderr, "\r%s: %llu", plabel, (unsigned long long)done);
    fflush(stderr);
}

void progress_end(void)
{
    if (pactive && pshown)
        fprintf(stderr, "\r\033[K");
    pactive = pshown = 0;
}

static struct hook {
    ekv_device *dev;
    int (*write)(ekv_device *, uint32_t, const void *);
} hooks[EKV_MAX_REPLICAS];
static unsigned nhooks;

static int counting_write(ekv_device *d, uint32_t b, const void *buf)
{
    for (unsigned i = 0; i < nhooks; i++)
        if (hooks[i].dev == d) {
            progress_step(pdone + 1);
            return hooks[i].write(d, b, buf);
        }
    return EKV_EIO;
}

void progress_hook(ekv_device *const devs[], unsigned n)
{
    nhooks = 0;
    for (unsigned i = 0; i < n && i < EKV_MAX_REPLICAS; i++) {
        if (!devs[i] || !devs[i]->write)
            continue;
        hooks[nhooks].dev = devs[i];
        hooks[nhooks].write = devs[i]->write;
        devs[i]->write = counting_write;
        nhooks++;
    }
}

void progress_unhook(void)
{
    for (unsigned i = 0; i < nhooks; i++)
        hooks[i].dev->write = hooks[i].write;
    nhooks = 0;
}
