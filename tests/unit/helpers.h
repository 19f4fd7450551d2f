/* helpers.h - small conveniences shared by the unit tests. */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ekv_internal.h"
#include "simdev.h"

/* Format n simulated replicas of bs x bc and open them. */
static inline ekv_store *open_sims(simdev **sims, unsigned n, uint32_t bs,
                                   uint32_t bc, uint32_t flags)
{
    ekv_device *devs[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++) {
        if (!sims[i])
            sims[i] = sim_new(bs, bc, 0);
        devs[i] = &sims[i]->dev;
    }
    ck_assert_int_eq(ekv_format(devs, n, NULL), 0);
    ekv_options o = {.flags = flags};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, devs, n, &o), 0);
    return s;
}

static inline int reopen(ekv_store **s, simdev **sims, unsigned n,
                         uint32_t flags)
{
    ekv_device *devs[EKV_MAX_REPLICAS];
    for (unsigned i = 0; i < n; i++)
        devs[i] = &sims[i]->dev;
    ekv_close(*s);
    *s = NULL;
    ekv_options o = {.flags = flags};
    return ekv_open(s, devs, n, &o);
}

static inline int put_s(ekv_store *s, const char *k, const char *v)
{
    return ekv_put(s, k, strlen(k), v, strlen(v));
}

/* Get into a static buffer as a NUL-terminated string; NULL if absent. */
static inline const char *get_s(ekv_store *s, const char *k)
{
    static char buf[1 << 16];
    size_t len = 0;
    if (ekv_get(s, k, strlen(k), buf, sizeof(buf) - 1, &len) != 0)
        return NULL;
    buf[len] = 0;
    return buf;
}

#define RUN_SUITE(make)                                                   \
    int main(void)                                                        \
    {                                                                     \
        SRunner *sr = srunner_create(make());                             \
        srunner_run_all(sr, CK_NORMAL);                                   \
        int failed = srunner_ntests_failed(sr);                           \
        srunner_free(sr);                                                 \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                      \
    }

#endif
