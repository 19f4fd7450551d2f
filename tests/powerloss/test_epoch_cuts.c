/*
 * Power loss at every write of the replica-set machinery (replica.c), in
 * both index modes, under several tear and loss models:
 *
 * A. degraded writes while replica b is absent (the epoch bump, then a
 *    delete and re-create of a key that held generation 4, a delete, a
 *    rewrite), then b's return;
 * B. the heal that rebuilds b when it returns (indexed mode);
 * C. the repair that rebuilds b instead (indexed mode);
 * D. the heal that reconciles replicas a crash left apart (indexed mode).
 *
 * After every cut: a read-only open sees, for every key, the value of the
 * last acknowledged operation or of the one in flight, never an older one
 * (b's stale records never come back); a writable open then finishes the
 * job and the replicas agree. (A cut that scrambles a's header during the
 * bump leaves b, named again, the current replica: nothing had been
 * written at the new epoch yet.)
 */
#include <stdio.h>

#include "helpers.h"

#define BS 128u
#define BC 40u
#define NKEY 3

static const char *const keys[NKEY] = {"creds", "gone", "kept"};

/* The state after each operation of phase A (NULL: no such key). */
static const char *const states[5][NKEY] = {
    {"password=OLD", "x", "v1"},
    {NULL, "x", "v1"},
    {"password=NEW", "x", "v1"},
    {"password=NEW", NULL, "v1"},
    {"password=NEW", NULL, "v2"},
};

typedef struct fault {
    enum sim_tear tear;
    uint32_t tear_bytes;
    enum sim_lose lose;
    const char *name;
} fault;

static const fault faults[] = {
    {SIM_TEAR_NONE, 0, SIM_LOSE_NONE, "dropped"},
    {SIM_TEAR_PREFIX, BS / 2, SIM_LOSE_NONE, "torn prefix"},
    {SIM_TEAR_PREFIX, BS, SIM_LOSE_SUBSET, "written, unacknowledged"},
    {SIM_TEAR_SUFFIX, 8, SIM_LOSE_SUBSET, "torn suffix"},
    {SIM_TEAR_RANDOM, 0, SIM_LOSE_SUBSET, "random"},
    {SIM_TEAR_ERASE_HEAD, 1, SIM_LOSE_ALL, "erased head, lost"},
};
#define NFAULT (sizeof(faults) / sizeof(faults[0]))

static uint8_t *base_a, *base_b;   /* before phase A */
static uint8_t *done_a;            /* after phase A, no cut */

static int open_list(ekv_store **s, simdev **sd, unsigned n, uint32_t flags)
{
    ekv_device *d[4];
    for (unsigned i = 0; i < n; i++)
        d[i] = &sd[i]->dev;
    ekv_options o = {.flags = flags};
    *s = NULL;
    return ekv_open(s, d, n, &o);
}

static uint8_t *image_copy(simdev *sd)
{
    uint8_t *p = malloc((size_t)BS * BC);
    ck_assert_ptr_nonnull(p);
    memcpy(p, sd->durable, (size_t)BS * BC);
    return p;
}

static void build_base(void)
{
    if (base_a)
        return;
    simdev *sd[2];
    ekv_device *d[2];
    for (int i = 0; i < 2; i++) {
        sd[i] = sim_new(BS, BC, 0);
        d[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(d, 2, NULL), 0);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    for (int i = 0; i < 4; i++) /* generation 4 */
        ck_assert_int_eq(put_s(s, "creds", "password=OLD"), 0);
    ck_assert_int_eq(put_s(s, "gone", "x"), 0);
    ck_assert_int_eq(put_s(s, "kept", "v1"), 0);
    ekv_close(s);
    base_a = image_copy(sd[0]);
    base_b = image_copy(sd[1]);
    sim_free(sd[0]);
    sim_free(sd[1]);
}

/* Phase A's operations on an open store; returns how many were
 * acknowledged before the first failure. */
static int phase_a_ops(ekv_store *s)
{
    if (ekv_delete(s, "creds", 5))
        return 0;
    if (put_s(s, "creds", "password=NEW"))
        return 1;
    if (ekv_delete(s, "gone", 4))
        return 2;
    if (put_s(s, "kept", "v2"))
        return 3;
    return 4;
}

/* Every key holds its value in state lo or hi. */
static void check_values(ekv_store *s, int lo, int hi, const char *when)
{
    for (int k = 0; k < NKEY; k++) {
        const char *v = get_s(s, keys[k]);
        bool ok = false;
        for (int st = lo; st <= hi && !ok; st++)
            ok = (v == NULL && states[st][k] == NULL) ||
                 (v && states[st][k] && strcmp(v, states[st][k]) == 0);
        if (!ok)
            ck_abort_msg("%s: %s = %s, allowed states %d..%d", when, keys[k],
                         v ? v : "(none)", lo, hi);
    }
}

static void prepare(simdev **sd, simgroup *g, const uint8_t *a,
                    const uint8_t *b, const fault *f, uint64_t seed,
                    unsigned members)
{
    memset(g, 0, sizeof(*g));
    sd[0] = sim_from(a, BS, BC);
    sd[1] = sim_from(b, BS, BC);
    for (unsigned r = 0; r < 2; r++) {
        sd[r]->tear = f->tear;
        sd[r]->tear_bytes = f->tear_bytes;
        sd[r]->lose = f->lose;
        sd[r]->seed = seed * 31 + r;
        if (members & (1u << r))
            sim_group_add(g, sd[r]);
    }
}

static void after_crash(simdev **sd, simgroup *g)
{
    sim_group_powercycle(g);
    for (int r = 0; r < 2; r++)
        sim_reset_faults(sd[r]);
}

/* The writable open that finishes the job; then every replica agrees and
 * b alone tells the same values. */
static void finish(simdev **sd, int lo, int hi, const char *when)
{
    ekv_store *s;
#ifndef EKV_NO_INDEX
    int rc = open_list(&s, sd, 2, EKV_OPEN_HEAL | EKV_OPEN_DEGRADED);
    if (rc)
        ck_abort_msg("%s: healing open: %s", when, ekv_strerror(rc));
    rc = ekv_repair(s, NULL);
    if (rc)
        ck_abort_msg("%s: repair: %s", when, ekv_strerror(rc));
    check_values(s, lo, hi, when);
    ekv_close(s);
    rc = open_list(&s, sd, 2, 0);
    if (rc)
        ck_abort_msg("%s: plain open after heal: %s", when, ekv_strerror(rc));
    check_values(s, lo, hi, when);
    for (int k = 0; k < NKEY; k++) {
        ekv_key_info ki;
        if (ekv_stat_key(s, keys[k], strlen(keys[k]), &ki) == 0 &&
            ki.replicas != 3)
            ck_abort_msg("%s: %s on replicas %#x", when, keys[k],
                         ki.replicas);
    }
    ekv_close(s);
    ck_assert_int_eq(open_list(&s, sd + 1, 1, EKV_OPEN_RDONLY), 0);
    check_values(s, lo, hi, when);
    ekv_close(s);
#else
    int rc = open_list(&s, sd, 2, EKV_OPEN_DEGRADED);
    if (rc)
        ck_abort_msg("%s: degraded open: %s", when, ekv_strerror(rc));
    check_values(s, lo, hi, when);
    ck_assert_int_eq(put_s(s, "after", "ok"), 0);
    ekv_close(s);
#endif
}

/* A: returns the writes of the uncut run when cut is 0. */
static uint64_t run_a(uint64_t cut, const fault *f)
{
    simdev *sd[2];
    simgroup g;
    prepare(sd, &g, base_a, base_b, f, cut, 1);
    g.cut_at = cut;
    char when[128];
    snprintf(when, sizeof(when), "A: degraded writes, cut at %llu (%s)",
             (unsigned long long)cut, f->name);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 1, EKV_OPEN_DEGRADED), 0);
    int acked = phase_a_ops(s);
    ekv_close(s);
    uint64_t writes = g.writes;
    if (cut == 0) {
        ck_assert_int_eq(acked, 4);
        if (!done_a)
            done_a = image_copy(sd[0]);
    }
    after_crash(sd, &g);
    int hi = acked < 4 ? acked + 1 : 4;
    /* b returns: read-only, both named. */
    int rc = open_list(&s, sd, 2, EKV_OPEN_RDONLY | EKV_OPEN_DEGRADED);
    if (rc == 0) {
        check_values(s, acked, hi, when);
        ekv_close(s);
        finish(sd, acked, hi, when);
    } else {
        ck_abort_msg("%s: read-only open: %s", when, ekv_strerror(rc));
    }
    sim_free(sd[0]);
    sim_free(sd[1]);
    return writes;
}

#ifndef EKV_NO_INDEX
/* B, C: b returns after phase A; the heal (or repair) that rebuilds it is
 * cut. D: replicas left apart by a crash; the reconciling heal is cut. */
enum phase { HEAL, REPAIR, RECONCILE };

static uint8_t *apart_a, *apart_b;

static void build_apart(void)
{
    if (apart_a)
        return;
    simdev *sd[2];
    simgroup g;
    prepare(sd, &g, base_a, base_b, &faults[0], 0, 3);
    ekv_store *s;
    ck_assert_int_eq(open_list(&s, sd, 2, 0), 0);
    ck_assert_int_eq(put_s(s, "gone", "y"), 0);
    /* Three more keys on replica 0 only: the put dies on replica 1. */
    sim_group_reset(&g);
    g.cut_at = 2;
    ck_assert_int_ne(put_s(s, "kept", "v2"), 0);
    ekv_close(s);
    sim_group_powercycle(&g);
    apart_a = image_copy(sd[0]);
    apart_b = image_copy(sd[1]);
    sim_free(sd[0]);
    sim_free(sd[1]);
}

static uint64_t run_heal(enum phase p, uint64_t cut, const fault *f)
{
    simdev *sd[2];
    simgroup g;
    if (p == RECONCILE)
        prepare(sd, &g, apart_a, apart_b, f, cut, 3);
    else
        prepare(sd, &g, done_a, base_b, f, cut, 3);
    g.cut_at = cut;
    static const char *const names[] = {"B: heal", "C: repair",
                                        "D: reconcile"};
    char when[128];
    snprintf(when, sizeof(when), "%s, cut at %llu (%s)", names[p],
             (unsigned long long)cut, f->name);
    ekv_store *s;
    int rc;
    if (p == REPAIR) {
        rc = open_list(&s, sd, 2, EKV_OPEN_DEGRADED);
        if (rc == 0)
            rc = ekv_repair(s, NULL);
    } else {
        rc = open_list(&s, sd, 2, EKV_OPEN_HEAL);
    }
    ekv_close(s);
    uint64_t writes = g.writes;
    if (cut == 0 && rc)
        ck_abort_msg("%s: %s", when, ekv_strerror(rc));
    after_crash(sd, &g);
    /* Phase A's final values (D: "gone" = y, "kept" old or new: the put
     * was never acknowledged), never b's stale ones. */
    rc = open_list(&s, sd, 2, EKV_OPEN_RDONLY | EKV_OPEN_DEGRADED);
    if (rc)
        ck_abort_msg("%s: read-only open: %s", when, ekv_strerror(rc));
    if (p == RECONCILE) {
        ck_assert_str_eq(get_s(s, "gone"), "y");
        const char *k = get_s(s, "kept");
        ck_assert(k && (!strcmp(k, "v1") || !strcmp(k, "v2")));
    } else {
        check_values(s, 4, 4, when);
    }
    ekv_close(s);
    if (p != RECONCILE)
        finish(sd, 4, 4, when);
    else {
        ck_assert_int_eq(open_list(&s, sd, 2, EKV_OPEN_HEAL), 0);
        ekv_key_info ki;
        ck_assert_int_eq(ekv_stat_key(s, "kept", 4, &ki), 0);
        ck_assert_uint_eq(ki.replicas, 3);
        ekv_close(s);
    }
    sim_free(sd[0]);
    sim_free(sd[1]);
    return writes;
}
#endif

START_TEST(degraded_writes_then_return_survive_a_cut_at_every_write)
{
    build_base();
    uint64_t total = run_a(0, &faults[0]);
    ck_assert_uint_gt(total, 5);
    for (size_t f = 0; f < NFAULT; f++)
        for (uint64_t n = 1; n <= total; n++)
            run_a(n, &faults[f]);
    printf("A: %llu writes, each cut %zu ways\n", (unsigned long long)total,
           NFAULT);
}
END_TEST

#ifndef EKV_NO_INDEX
static void sweep_phase(enum phase p)
{
    build_base();
    if (!done_a)
        run_a(0, &faults[0]);
    build_apart();
    uint64_t total = run_heal(p, 0, &faults[0]);
    ck_assert_uint_gt(total, 0);
    for (size_t f = 0; f < NFAULT; f++)
        for (uint64_t n = 1; n <= total; n++)
            run_heal(p, n, &faults[f]);
    printf("phase %d: %llu writes, each cut %zu ways\n", (int)p,
           (unsigned long long)total, NFAULT);
}

START_TEST(heal_of_a_returning_replica_survives_a_cut_at_every_write)
{
    sweep_phase(HEAL);
}
END_TEST

START_TEST(repair_of_a_stale_replica_survives_a_cut_at_every_write)
{
    sweep_phase(REPAIR);
}
END_TEST

START_TEST(reconciliation_survives_a_cut_at_every_write)
{
    sweep_phase(RECONCILE);
}
END_TEST
#endif

static Suite *make(void)
{
    Suite *s = suite_create("epoch-powerloss");
    TCase *tc = tcase_create("cuts");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, degraded_writes_then_return_survive_a_cut_at_every_write);
#ifndef EKV_NO_INDEX
    tcase_add_test(tc, heal_of_a_returning_replica_survives_a_cut_at_every_write);
    tcase_add_test(tc, repair_of_a_stale_replica_survives_a_cut_at_every_write);
    tcase_add_test(tc, reconciliation_survives_a_cut_at_every_write);
#endif
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
