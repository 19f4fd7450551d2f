/*
 * test_devsync.c - power-loss sweep for the mount's deferred flushes
 * (src/tool/mount_sync.c). No FUSE needed.
 *
 * How this works
 * The daemon lets some of ekv_put's flushes wait: the one after erasing
 * the old record, and all of them for a new file's empty value until the
 * file's close. This program replays what the daemon does to the store
 * for a seeded workload (create + close with data, touch, rewrite, fsync,
 * truncate, rename, unlink, create then unlink), in the daemon's order and
 * with the daemon's flush policies, on two simulated replicas sharing one
 * power supply (tests/support/simdev.h), with the mount_sync.c wrappers
 * installed. It cuts the power after every write in turn (the writes since
 * the last flush persisting in a seeded subset, the cut write torn), and
 * once more at the end of an uncut run. Then it recovers the store from
 * the durable images and checks every key against a model of what the
 * daemon promised: the value of the last acknowledged close, fsync, rename
 * or unlink, or a value in flight (being stored, or created and not yet
 * closed) when the power went. Any other value, or a key that comes back,
 * fails. A second sweep fails one write of replica 1 in turn (EIO, no
 * power cut), lets the workload go on, and cuts the power at the end: a
 * put that reported its failure must not come back after the crash.
 *
 * usage: test_devsync [--seeds N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mount.h"
#include "simdev.h"

#define NKEYS 6
#define NOPS 40
#define ABSENT (-1)
#define EMPTY 0 /* value id of the empty value */
#define MAXMAYBE 8

static const uint32_t BS = 128, BC = 64;

/* What the daemon may have left under one key. */
struct model {
    int acked;           /* value id, or ABSENT */
    int maybe[MAXMAYBE]; /* also possible after a crash */
    int nmaybe;
};

static struct model model[NKEYS];
static ekv_store *store;
static simgroup *group;

static void key_of(int k, uint8_t *key) { key[0] = 'k', key[1] = (uint8_t)('0' + k); }

/* Value id v (>= 1) is "v<id>;" repeated: lengths from 4 to a few blocks. */
static size_t value_of(int v, uint8_t *buf)
{
    if (v == EMPTY)
        return 0;
    char unit[16];
    int n = snprintf(unit, sizeof(unit), "v%d;", v);
    size_t len = (size_t)n * (size_t)(1 + (v * 37) % 60);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)unit[i % (size_t)n];
    return len;
}

static void maybe_add(int k, int v)
{
    struct model *m = &model[k];
    if (m->nmaybe < MAXMAYBE)
        m->maybe[m->nmaybe++] = v;
}

static void ack(int k, int v)
{
    model[k].acked = v;
    model[k].nmaybe = 0;
}

/* A put the daemon reported as failed (the power still on): its value
 * must never appear. */
static void refused(int k, int v)
{
    struct model *m = &model[k];
    for (int i = 0; i < m->nmaybe; i++)
        if (m->maybe[i] == v)
            m->maybe[i--] = m->maybe[--m->nmaybe];
}

/* As mount_ops.c's put_value(). */
static int tput_value(int k, int v, enum flush_policy p)
{
    uint8_t key[2], val[4096];
    key_of(k, key);
    size_t len = value_of(v, val);
    int err = devsync_put(store, key, 2, val, len, p);
    if (err && !group->cut)
        refused(k, v);
    return err;
}

static int del(int k)
{
    uint8_t key[2];
    key_of(k, key);
    maybe_add(k, ABSENT);
    int err = ekv_delete(store, key, 2);
    if (!err)
        ack(k, ABSENT);
    return err;
}

/* One daemon-level operation; returns non-zero once the power is gone.
 * exists[] follows the uncut run, so every run makes the same calls. */
static int run_op(unsigned r, int *exists, int *next_value)
{
    int k = (int)(r % NKEYS), k2 = (int)((r / NKEYS) % NKEYS);
    int v = (*next_value)++;
    int err = 0;
    switch ((r / 36) % 8) {
    case 0: /* cp: creat (or O_TRUNC open), write, close */
    case 1:
        if (!exists[k]) {
            maybe_add(k, EMPTY);
            if ((err = tput_value(k, EMPTY, FLUSH_DEFER_ALL)))
                return err;
            exists[k] = 1;
        }
        maybe_add(k, v);
        if ((err = tput_value(k, v, FLUSH_DEFER_ERASE)))
            return err;
        ack(k, v);
        return 0;
    case 2: /* touch: creat, close */
        if (exists[k])
            return 0;
        maybe_add(k, EMPTY);
        if ((err = tput_value(k, EMPTY, FLUSH_DEFER_ALL)))
            return err;
        exists[k] = 1;
        if ((err = devsync_now()))
            return err;
        ack(k, EMPTY);
        return 0;
    case 3: /* fsync of some file */
        return devsync_now();
    case 4: /* rm */
        if (!exists[k])
            return 0;
        exists[k] = 0;
        return del(k);
    case 5: /* mv k k2 */
        if (!exists[k] || k == k2)
            return 0;
        {
            int val = model[k].acked;
            maybe_add(k2, val);
            if ((err = tput_value(k2, val, FLUSH_DEFER_ERASE)))
                return err;
            ack(k2, val);
            exists[k2] = 1;
            exists[k] = 0;
            return del(k);
        }
    case 6: /* truncate -s 0 (get, resize, put) */
        if (!exists[k])
            return 0;
        maybe_add(k, EMPTY);
        if ((err = tput_value(k, EMPTY, FLUSH_DEFER_ERASE)))
            return err;
        ack(k, EMPTY);
        return 0;
    default: /* creat, then rm before the close */
        if (exists[k])
            return 0;
        maybe_add(k, EMPTY);
        if ((err = tput_value(k, EMPTY, FLUSH_DEFER_ALL)))
            return err;
        return del(k);
    }
}

static int acceptable(int k, int v)
{
    if (model[k].acked == v)
        return 1;
    for (int i = 0; i < model[k].nmaybe; i++)
        if (model[k].maybe[i] == v)
            return 1;
    return 0;
}

/* Which value id the recovered store holds for key k. */
static int recovered_value(ekv_store *s, int k)
{
    uint8_t key[2], buf[4096], want[4096];
    size_t len = 0;
    key_of(k, key);
    int err = ekv_get(s, key, 2, buf, sizeof(buf), &len);
    if (err == EKV_ENOENT)
        return ABSENT;
    if (err)
        return -2;
    if (len == 0)
        return EMPTY;
    int v = atoi((const char *)buf + 1);
    size_t wl = value_of(v, want);
    return wl == len && memcmp(want, buf, len) == 0 ? v : -2;
}

struct result {
    unsigned long runs, failures;
    uint64_t writes;  /* of the uncut run */
    uint64_t writes1; /* of replica 1 in the uncut run */
};

/* One run: cut at write cut_at (0: no cut during the workload); fail
 * write fail_at of replica 1 (0: none). */
static void run(uint64_t wl_seed, uint64_t cut_at, uint64_t fail_at,
                uint64_t seed, enum sim_tear tear, struct result *res)
{
    simgroup g;
    memset(&g, 0, sizeof(g));
    simdev *sim[2] = {sim_new(BS, BC, 0), sim_new(BS, BC, 0)};
    ekv_device *devs[2] = {&sim[0]->dev, &sim[1]->dev};
    if (!sim[0] || !sim[1] || ekv_format(devs, 2, NULL) ||
        ekv_open(&store, devs, 2, NULL)) {
        fprintf(stderr, "setup failed\n");
        exit(1);
    }
    for (int i = 0; i < 2; i++) {
        sim[i]->lose = SIM_LOSE_SUBSET;
        sim[i]->seed = seed * 2 + (uint64_t)i;
        sim[i]->tear = tear;
        sim[i]->tear_bytes = BS / 2;
        sim_group_add(&g, sim[i]);
    }
    g.cut_at = cut_at;
    group = &g;
    sim[1]->fail_write_at = fail_at;
    devsync_install(devs, 2);
    for (int k = 0; k < NKEYS; k++)
        model[k] = (struct model){.acked = ABSENT};

    int exists[NKEYS] = {0}, next_value = 1;
    uint64_t r = wl_seed;
    for (int op = 0; op < NOPS; op++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        if (run_op((unsigned)(r >> 33), exists, &next_value) && g.cut)
            break;
    }
    if (!cut_at && !fail_at) {
        res->writes = g.writes;
        res->writes1 = sim[1]->writes;
    }
    ekv_close(store);
    sim_group_powercycle(&g); /* unflushed writes now settle, even uncut */

    ekv_store *s;
    ekv_options o = {.flags = EKV_OPEN_RDONLY};
    res->runs++;
    if (ekv_open(&s, devs, 2, &o)) {
        fprintf(stderr, "workload %llu cut %llu seed %llu: open failed\n",
                (unsigned long long)wl_seed, (unsigned long long)cut_at,
                (unsigned long long)seed);
        res->failures++;
    } else {
        for (int k = 0; k < NKEYS; k++) {
            int v = recovered_value(s, k);
            if (!acceptable(k, v)) {
                fprintf(stderr,
                        "workload %llu cut %llu seed %llu tear %d: key k%d "
                        "holds %d, acknowledged %d\n",
                        (unsigned long long)wl_seed,
                        (unsigned long long)cut_at, (unsigned long long)seed,
                        (int)tear, k, v, model[k].acked);
                res->failures++;
            }
        }
        ekv_close(s);
    }
    sim_free(sim[0]);
    sim_free(sim[1]);
}

int main(int argc, char **argv)
{
    unsigned seeds = 3;
    if (argc == 3 && !strcmp(argv[1], "--seeds"))
        seeds = (unsigned)atoi(argv[2]);
    struct result res = {0};
    const enum sim_tear tears[] = {SIM_TEAR_NONE, SIM_TEAR_RANDOM,
                                   SIM_TEAR_PARTIAL_ERASE};
    for (uint64_t wl = 1; wl <= 4; wl++) {
        run(wl, 0, 0, 1, SIM_TEAR_NONE, &res); /* uncut: counts writes */
        uint64_t total = res.writes, total1 = res.writes1;
        for (uint64_t cut = 1; cut <= total; cut++)
            for (unsigned s = 1; s <= seeds; s++)
                run(wl, cut, 0, s, tears[(cut + s) % 3], &res);
        for (uint64_t f = 1; f <= total1; f++)
            for (unsigned s = 1; s <= seeds; s++)
                run(wl, 0, f, s, SIM_TEAR_NONE, &res);
    }
    printf("%lu runs, %lu failures\n", res.runs, res.failures);
    return res.failures ? 1 : 0;
}
