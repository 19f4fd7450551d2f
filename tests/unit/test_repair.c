/*
 * ekv_repair under power loss: what `embedkvfs repair` does (a writable,
 * degraded open, then ekv_repair) is cut at every write, and afterwards no
 * key that was complete before has lost its value.
 *
 * How this works
 * --------------
 * A scenario builds replicas that disagree in every way repair handles:
 * keys whose newest copy is on one replica only (in both directions), a
 * key missing from a replica, a replica whose copy of a multi-block key is
 * torn (recovery erases it), and a replica whose header is destroyed
 * (repair empties it, gives it a fresh header and refills it) and which
 * missed a delete and a delete-and-recreate: its stale records must never
 * come back. The newest value of every key is known by construction.
 *
 * A dry run counts the writes the open and the repair issue (W). Then for
 * every N in 1..W, and for several ways the cut write can land (dropped,
 * torn, random, half-erased) and both loss models of the unflushed writes
 * (all kept, a seeded subset), the same images are opened and repaired on
 * simulated devices that share one power supply which fails at write N.
 * After the power comes back:
 *  1. a read-only degraded open (what ls/get/check see) reads every key's
 *     newest value, and no other key exists;
 *  2. a writable degraded open and a second repair finish, and then every
 *     replica holds every key's newest value (checked replica by replica
 *     with ekv_get_replica), every replica is in use, and a plain
 *     (non-degraded) reopen sees the same.
 * The newest value is the only legitimate one: repair copies the newest
 * record and never touches its source, so even an interrupted repair must
 * leave it readable.
 */
#include <stdio.h>

#include "helpers.h"

#define BS 256u
#define BC 40u
#define NREP 3u

typedef struct kv {
    const char *key;
    size_t len;         /* value length */
    uint32_t seed;      /* value = fill_pattern(seed), or the text below */
    const char *text;
} kv;

typedef struct scenario {
    const char *name;
    uint8_t *img[NREP];
    kv want[8];
    unsigned nwant;
} scenario;

static void value_of(const kv *k, uint8_t *buf)
{
    if (k->text)
        memcpy(buf, k->text, k->len);
    else
        fill_pattern(buf, k->len, k->seed);
}

static ekv_store *open_devs(simdev **sd, unsigned first, unsigned n,
                            uint32_t flags)
{
    ekv_device *devs[NREP];
    for (unsigned i = 0; i < n; i++)
        devs[i] = &sd[first + i]->dev;
    ekv_options o = {.flags = flags};
    ekv_store *s = NULL;
    int rc = ekv_open(&s, devs, n, &o);
    ck_assert_msg(rc == 0, "open: %s", ekv_strerror(rc));
    return s;
}

static void put_kv(ekv_store *s, const kv *k)
{
    uint8_t buf[1024];
    value_of(k, buf);
    ck_assert_int_eq(ekv_put(s, k->key, strlen(k->key), buf, k->len), 0);
}

/* The descriptor block of key on a single-device store image. */
static uint32_t find_desc(simdev *sd, const char *key)
{
    for (uint32_t b = 1; b < sd->bc; b++) {
        ekv_block_info bi;
        ekv_block_decode(sd->cache + (size_t)b * sd->bs, sd->bs, &bi);
        if (bi.kind == EKV_BLOCK_DESCRIPTOR && bi.key &&
            bi.key_size == strlen(key) && !memcmp(bi.key, key, bi.key_size))
            return b;
    }
    ck_abort_msg("no descriptor of %s", key);
    return 0;
}

/*
 * Build the diverged images. `broken` is the replica whose header gets
 * destroyed; the two others diverge from each other.
 */
static void build(scenario *sc, unsigned broken)
{
    simdev *sd[NREP];
    ekv_device *devs[NREP];
    for (unsigned r = 0; r < NREP; r++) {
        sd[r] = sim_new(BS, BC, 0);
        devs[r] = &sd[r]->dev;
    }
    ck_assert_int_eq(ekv_format(devs, NREP, NULL), 0);
    for (unsigned r = 0; r < NREP; r++)
        sim_set_mask(sd[r], 0); /* diverged by opening one alone below */
    unsigned x = (broken + 1) % NREP, y = (broken + 2) % NREP;

    const kv a1 = {"a", 2, 0, "a1"}, b1 = {"b", 2, 0, "b1"},
             big1 = {"big", 700, 11, NULL}, c1 = {"c", 2, 0, "c1"},
             e = {"empty", 0, 0, ""};
    const kv a2 = {"a", 2, 0, "a2"}, n0 = {"new-x", 5, 0, "new-x"},
             b2 = {"b", 9, 0, "b2-longer"}, big2 = {"big", 600, 22, NULL},
             c2 = {"c", 2, 0, "c2"};
    const kv gone = {"gone", 4, 0, "gone"}, t1 = {"twin", 2, 0, "t1"},
             t2 = {"twin", 2, 0, "t2"};

    /* Everything on all three. */
    ekv_store *s = open_devs(sd, 0, NREP, 0);
    put_kv(s, &a1);
    put_kv(s, &b1);
    put_kv(s, &big1);
    put_kv(s, &c1);
    put_kv(s, &e);
    put_kv(s, &gone);
    put_kv(s, &t1);
    ekv_close(s);
    /* x alone moves on: a newer "a", a key the others never saw. */
    s = open_devs(sd, x, 1, 0);
    put_kv(s, &a2);
    put_kv(s, &n0);
    ekv_close(s);
    /* y alone moves on the other way: "b" and a multi-block "big". */
    s = open_devs(sd, y, 1, 0);
    put_kv(s, &b2);
    put_kv(s, &big2);
    ekv_close(s);
    /* x and y together, the broken one left behind. */
    ekv_device *xy[2] = {&sd[x]->dev, &sd[y]->dev};
    ekv_options o = {0};
    ck_assert_int_eq(ekv_open(&s, xy, 2, &o), 0);
    put_kv(s, &c2);
    /* Changes the broken replica misses: a delete, and a key deleted and
     * written again, which restarts at generation 1 with other bytes (the
     * broken replica's stale "twin" has the same generation). Neither of
     * its stale records may come back. */
    ck_assert_int_eq(ekv_delete(s, "gone", 4), 0);
    ck_assert_int_eq(ekv_delete(s, "twin", 4), 0);
    put_kv(s, &t2);
    ekv_close(s);

    /* x's copy of "big" (generation 1) gets a torn chunk. */
    uint32_t d = find_desc(sd[x], "big");
    ekv_block_info bi;
    ekv_block_decode(sd[x]->cache + (size_t)d * BS, BS, &bi);
    uint8_t junk[BS];
    memset(junk, 0x5a, sizeof(junk));
    junk[0] = 0x03;
    sim_poke(sd[x], bi.next_chunk, junk);
    /* The broken replica's header is destroyed. */
    uint8_t zero[BS] = {0};
    sim_poke(sd[broken], 0, zero);

    for (unsigned r = 0; r < NREP; r++) {
        sc->img[r] = malloc((size_t)BS * BC);
        ck_assert_ptr_nonnull(sc->img[r]);
        memcpy(sc->img[r], sd[r]->durable, (size_t)BS * BC);
        sim_free(sd[r]);
    }
    const kv want[] = {a2, b2, big2, c2, e, n0, t2};
    sc->nwant = sizeof(want) / sizeof(want[0]);
    memcpy(sc->want, want, sizeof(want));
}

static void scenario_free(scenario *sc)
{
    for (unsigned r = 0; r < NREP; r++)
        free(sc->img[r]);
}

/* Every wanted key reads its newest value; no other key exists. If
 * per_replica, every replica holds that value itself. */
static void verify(ekv_store *s, const scenario *sc, int per_replica,
                   const char *when)
{
    static uint8_t buf[2048], want[2048];
    ekv_stats st;
    ekv_stats_get(s, &st);
    if (st.records != sc->nwant)
        ck_abort_msg("%s: %u keys, %u expected", when, st.records, sc->nwant);
    for (unsigned i = 0; i < sc->nwant; i++) {
        const kv *k = &sc->want[i];
        size_t len = 0;
        value_of(k, want);
        int rc = ekv_get(s, k->key, strlen(k->key), buf, sizeof(buf), &len);
        if (rc || len != k->len || memcmp(buf, want, len))
            ck_abort_msg("%s: key %s: rc %d, %zu bytes, want %zu", when,
                         k->key, rc, len, k->len);
        if (!per_replica)
            continue;
        for (unsigned r = 0; r < NREP; r++) {
            rc = ekv_get_replica(s, r, k->key, strlen(k->key), buf,
                                 sizeof(buf), &len, NULL);
            if (rc || len != k->len || memcmp(buf, want, len))
                ck_abort_msg("%s: key %s on replica %u: rc %d", when, k->key,
                             r, rc);
        }
        ekv_key_info ki;
        require(ekv_stat_key(s, k->key, strlen(k->key), &ki) == 0);
        if (ki.replicas != (1u << NREP) - 1 || ki.stale)
            ck_abort_msg("%s: key %s held by %#x, stale %#x", when, k->key,
                         ki.replicas, ki.stale);
    }
    if (per_replica)
        for (unsigned r = 0; r < NREP; r++) {
            ekv_replica_report rep;
            ekv_replica_report_get(s, r, &rep);
            if (rep.status)
                ck_abort_msg("%s: replica %u dropped: %s", when, r,
                             ekv_strerror(rep.status));
        }
}

typedef struct fault {
    enum sim_tear tear;
    uint32_t tear_bytes;
    enum sim_lose lose;
    const char *name;
} fault;

static const fault faults[] = {
    {SIM_TEAR_NONE, 0, SIM_LOSE_NONE, "dropped"},
    {SIM_TEAR_PREFIX, BS / 2, SIM_LOSE_NONE, "torn prefix"},
    {SIM_TEAR_PREFIX, BS, SIM_LOSE_SUBSET, "written, unacknowledged, subset"},
    {SIM_TEAR_SUFFIX, 8, SIM_LOSE_SUBSET, "torn suffix, subset"},
    {SIM_TEAR_RANDOM, 0, SIM_LOSE_SUBSET, "random, subset"},
    {SIM_TEAR_PARTIAL_ERASE, BS / 3, SIM_LOSE_NONE, "half erase"},
    {SIM_TEAR_ERASE_HEAD, 1, SIM_LOSE_SUBSET, "erased head, subset"},
};

/* One run: open + repair with power failing at write cut (0: never).
 * Returns the number of writes issued (when cut is 0). */
static uint64_t run(const scenario *sc, uint64_t cut, const fault *f,
                    uint64_t seed)
{
    simdev *sd[NREP];
    simgroup g;
    memset(&g, 0, sizeof(g));
    for (unsigned r = 0; r < NREP; r++) {
        sd[r] = sim_from(sc->img[r], BS, BC);
        ck_assert_ptr_nonnull(sd[r]);
        sd[r]->tear = f->tear;
        sd[r]->tear_bytes = f->tear_bytes;
        sd[r]->lose = f->lose;
        sd[r]->seed = seed * 7 + r;
        sim_group_add(&g, sd[r]);
    }
    g.cut_at = cut;

    char when[160];
    snprintf(when, sizeof(when), "%s, cut at write %llu (%s)", sc->name,
             (unsigned long long)cut, f->name);
    ekv_device *devs[NREP];
    for (unsigned r = 0; r < NREP; r++)
        devs[r] = &sd[r]->dev;
    ekv_options deg = {.flags = EKV_OPEN_DEGRADED};
    ekv_store *s = NULL;
    int rc = ekv_open(&s, devs, NREP, &deg);
    uint32_t copied = 0;
    if (rc == 0)
        rc = ekv_repair(s, &copied);
    uint64_t writes = g.writes;
    if (cut == 0) {
        /* The dry run: everything succeeds and every replica agrees. */
        if (rc)
            ck_abort_msg("%s: repair failed: %s", when, ekv_strerror(rc));
        verify(s, sc, 1, when);
    }
    ekv_close(s);
    sim_group_powercycle(&g);

    /* 1. What an inspection sees right after the crash. */
    ekv_options ro = {.flags = EKV_OPEN_RDONLY | EKV_OPEN_DEGRADED};
    rc = ekv_open(&s, devs, NREP, &ro);
    if (rc)
        ck_abort_msg("%s: read-only open: %s", when, ekv_strerror(rc));
    verify(s, sc, 0, when);
    ekv_close(s);

    /* 2. Repair again: it finishes, and every replica agrees. */
    rc = ekv_open(&s, devs, NREP, &deg);
    if (rc == 0)
        rc = ekv_repair(s, NULL);
    if (rc)
        ck_abort_msg("%s: second repair: %s", when, ekv_strerror(rc));
    verify(s, sc, 1, when);
    ekv_close(s);
    ekv_options plain = {0};
    rc = ekv_open(&s, devs, NREP, &plain);
    if (rc)
        ck_abort_msg("%s: plain reopen after repair: %s", when,
                     ekv_strerror(rc));
    verify(s, sc, 1, when);
    ekv_close(s);

    for (unsigned r = 0; r < NREP; r++)
        sim_free(sd[r]);
    return writes;
}

static void sweep(unsigned broken)
{
    scenario sc;
    memset(&sc, 0, sizeof(sc));
    char name[64];
    snprintf(name, sizeof(name), "replica %u's header destroyed", broken);
    sc.name = name;
    build(&sc, broken);

    uint64_t total = run(&sc, 0, &faults[0], 0);
    /* The scenario must make repair work hard, or the sweep proves
     * little: a rebuild, copies both ways, recovery erasures. */
    ck_assert_uint_gt(total, 20);
    for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++)
        for (uint64_t n = 1; n <= total; n++)
            run(&sc, n, &faults[f], n);
    printf("%s: %llu writes, each cut %zu ways\n", name,
           (unsigned long long)total, sizeof(faults) / sizeof(faults[0]));
    scenario_free(&sc);
}

START_TEST(repair_survives_power_loss_at_every_write)
{
    sweep((unsigned)_i);
}
END_TEST

START_TEST(repair_of_an_agreeing_store_writes_nothing)
{
    simdev *sd[2] = {NULL, NULL};
    ekv_store *s = open_sims(sd, 2, BS, BC, 0);
    ck_assert_int_eq(put_s(s, "k", "v"), 0);
    uint64_t w0 = sd[0]->writes + sd[1]->writes;
    uint32_t copied = 99;
    ck_assert_int_eq(ekv_repair(s, &copied), 0);
    ck_assert_uint_eq(copied, 0);
    ck_assert_uint_eq(sd[0]->writes + sd[1]->writes, w0);
    ekv_close(s);
    sim_free(sd[0]);
    sim_free(sd[1]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("repair");
    TCase *tc = tcase_create("powerloss");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, repair_survives_power_loss_at_every_write, 0,
                        NREP);
    tcase_add_test(tc, repair_of_an_agreeing_store_writes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
