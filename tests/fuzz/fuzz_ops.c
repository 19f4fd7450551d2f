/*
 * fuzz_ops - random put/get/delete/repair/reopen sequences on a fuzzed
 * image, checked against a model. The model starts as what the first
 * recovery found (every key and value) and follows every operation that
 * succeeded; the store must agree with it after every operation and
 * after every reopen. Input: the image (fuzz_common.h) behind a 2-byte
 * length, then the operations.
 */
#include "fuzz_common.h"

#define NKEYS 6

typedef struct model {
    snapshot base; /* keys that came with the image */
} model;

static const uint8_t *const fixed_keys[NKEYS] = {
    (const uint8_t *)"", (const uint8_t *)"a", (const uint8_t *)"hello",
    (const uint8_t *)"power", (const uint8_t *)"k\x00/", (const uint8_t *)"bigkey"};
static const size_t fixed_len[NKEYS] = {0, 1, 5, 5, 3, 6};

/* The model: one entry per key ever seen, with its value or absent. */
typedef struct entry {
    uint8_t key[512];
    size_t klen;
    bool present;
    uint8_t *val;
    size_t vlen;
} entry;

typedef struct state {
    entry *e;
    size_t n, cap;
} state;

static entry *find(state *st, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->e[i].klen == kl && (!kl || !memcmp(st->e[i].key, k, kl)))
            return &st->e[i];
    if (kl > sizeof(st->e[0].key))
        return NULL;
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->e = realloc(st->e, st->cap * sizeof(entry));
        FUZZ_CHECK(st->e != NULL);
    }
    entry *e = &st->e[st->n++];
    memset(e, 0, sizeof(*e));
    if (kl)
        memcpy(e->key, k, kl);
    e->klen = kl;
    return e;
}

static void set(entry *e, const uint8_t *v, size_t vl)
{
    free(e->val);
    e->val = NULL;
    e->present = v != NULL;
    e->vlen = vl;
    if (v) {
        e->val = malloc(vl ? vl : 1);
        FUZZ_CHECK(e->val != NULL);
        if (vl)
            memcpy(e->val, v, vl);
    }
}

static void check_entry(ekv_store *s, entry *e, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    int rc = ekv_get(s, e->key, e->klen, buf, cap, &len);
    if (!e->present) {
        FUZZ_CHECK(rc == EKV_ENOENT);
        return;
    }
    FUZZ_CHECK(rc == 0 && len == e->vlen);
    FUZZ_CHECK(!len || memcmp(buf, e->val, len) == 0);
}

static int count_keys(void *ctx, const ekv_key_info *ki)
{
    (void)ki;
    ++*(size_t *)ctx;
    return 0;
}

static void check_all(ekv_store *s, state *st, uint8_t *buf, size_t cap)
{
    size_t present = 0, listed = 0;
    for (size_t i = 0; i < st->n; i++) {
        check_entry(s, &st->e[i], buf, cap);
        present += st->e[i].present;
    }
    FUZZ_CHECK(ekv_iterate(s, count_keys, &listed) == 0);
    FUZZ_CHECK(listed == present);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    size_t hi = fz_u8(&f), lo = fz_u8(&f); /* in this order */
    size_t img_len = (hi << 8 | lo) % 16384;
    fz fi = {data + f.i, f.n - f.i < img_len ? f.n - f.i : img_len, 0};
    f.i += fi.n;
    fuzz_image im;
    fuzz_image_build(&im, &fi, img_len);
    ekv_store *s = NULL;
    if (fuzz_open(&im, &s, 0) != 0) {
        fuzz_image_free(&im);
        return 0;
    }
    state st = {0};
    snapshot base;
    snapshot_take(&base, s);
    for (size_t i = 0; i < base.n; i++) {
        FUZZ_CHECK(base.items[i].err == 0);
        entry *e = find(&st, base.items[i].key, base.items[i].klen);
        if (e)
            set(e, base.items[i].val, base.items[i].vlen);
    }
    snapshot_free(&base);
    for (int k = 0; k < NKEYS; k++)
        (void)find(&st, fixed_keys[k], fixed_len[k]);

    size_t cap = (size_t)im.bs * im.bc;
    uint8_t *val = malloc(cap), *buf = malloc(cap);
    FUZZ_CHECK(val && buf);
    for (int ops = 0; ops < 64 && f.i < f.n; ops++) {
        uint8_t op = fz_u8(&f);
        entry *e = &st.e[fz_u8(&f) % st.n];
        switch (op % 8) {
        case 0: case 1: case 2: {
            size_t vl = ((size_t)fz_u8(&f) << (op >> 6)) % cap;
            for (size_t j = 0; j < vl; j++)
                val[j] = (uint8_t)(op + j * 13u + ops);
            int rc = ekv_put(s, e->key, e->klen, val, vl);
            if (rc == 0)
                set(e, val, vl);
            else
                FUZZ_CHECK(rc == EKV_ENOSPC || rc == EKV_EFBIG ||
                           rc == EKV_ENAMETOOLONG || rc == EKV_ERANGE);
            check_entry(s, e, buf, cap);
            break;
        }
        case 3: case 4: {
            int rc = ekv_delete(s, e->key, e->klen);
            FUZZ_CHECK(rc == 0 ? e->present : rc == EKV_ENOENT && !e->present);
            set(e, NULL, 0);
            check_entry(s, e, buf, cap);
            break;
        }
        case 5:
            check_entry(s, e, buf, cap);
            break;
        case 6: {
            int rc = ekv_repair(s, NULL);
            FUZZ_CHECK(rc == 0 || rc == EKV_ENOSPC || rc == EKV_ENOSYS ||
                       rc == EKV_EDOM || rc == EKV_EBADHDR ||
                       rc == EKV_EVERSION);
            check_all(s, &st, buf, cap);
            break;
        }
        case 7:
            ekv_close(s);
            s = NULL;
            FUZZ_CHECK(fuzz_open(&im, &s, 0) == 0);
            check_all(s, &st, buf, cap);
            break;
        }
    }
    check_all(s, &st, buf, cap);
    ekv_close(s);
    for (size_t i = 0; i < st.n; i++)
        free(st.e[i].val);
    free(st.e);
    free(val);
    free(buf);
    fuzz_image_free(&im);
    return 0;
}
