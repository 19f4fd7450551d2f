/*
 * fuzz_storage - the storage pipeline on arbitrary images: 1..3 replicas
 * of fuzzed blocks (header and CRCs optionally fixed up, see
 * fuzz_common.h) opened read-only, then writable (recovery), then again.
 * A set that a read-only open accepts is opened writable as it is, or,
 * when only a writable open refuses it (a replica missing or stale),
 * degraded.
 * Read-only and writable recovery must see the same keys and values, the
 * read-only open must write nothing, every key recovery kept must read
 * back, and the second recovery must write nothing and change nothing.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    fuzz_image im;
    fuzz_image_build(&im, &f, 64 * 1024);
    ekv_store *s = NULL;
    snapshot ro, rw, again;
    int rc = fuzz_open(&im, &s, EKV_OPEN_RDONLY);
    FUZZ_CHECK(fuzz_image_writes(&im) == 0);
    if (rc != 0) {
        /* A writable open must refuse the same image. */
        FUZZ_CHECK(fuzz_open(&im, &s, 0) != 0);
        fuzz_image_free(&im);
        return 0;
    }
    snapshot_take(&ro, s);
    ekv_stats st;
    FUZZ_CHECK(ekv_stats_get(s, &st) == 0);
    FUZZ_CHECK(st.records == ro.n);
    ekv_close(s);
    FUZZ_CHECK(fuzz_image_writes(&im) == 0);

    /* What only a writable open refuses: a replica of the set's epoch not
     * given (EKV_ENXIO) or stale (EKV_ESTALE). Refused without a write;
     * degraded, it goes on with the replicas the read-only open used. */
    uint32_t wflags = 0;
    rc = fuzz_open(&im, &s, 0);
    if (rc == EKV_ENXIO || rc == EKV_ESTALE) {
        FUZZ_CHECK(fuzz_image_writes(&im) == 0);
        wflags = EKV_OPEN_DEGRADED;
        rc = fuzz_open(&im, &s, wflags);
    }
    FUZZ_CHECK(rc == 0);
    snapshot_take(&rw, s);
    ekv_close(s);
    FUZZ_CHECK(snapshot_equal(&ro, &rw));
    for (size_t i = 0; i < rw.n; i++)
        FUZZ_CHECK(rw.items[i].err == 0);

    uint64_t w = fuzz_image_writes(&im);
    FUZZ_CHECK(fuzz_open(&im, &s, wflags) == 0);
    FUZZ_CHECK(fuzz_image_writes(&im) == w);
    snapshot_take(&again, s);
    FUZZ_CHECK(ekv_recover(s) == 0);
    FUZZ_CHECK(fuzz_image_writes(&im) == w);
    ekv_close(s);
    FUZZ_CHECK(snapshot_equal(&rw, &again));

    snapshot_free(&ro);
    snapshot_free(&rw);
    snapshot_free(&again);
    fuzz_image_free(&im);
    return 0;
}
