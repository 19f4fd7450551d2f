/*
 * replica_msg.c - what the tool says about a replica set: why a set was
 * refused (two stores, replicas written apart, a stale or absent replica,
 * mixed geometry), what heal did at open, and each replica's state in
 * words for check and repair. The rules themselves are the library's
 * (src/core/replica.c); this file only reads headers and reports.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* "0,2" for a participant mask (bits are replica_id & 31). */
static void mask_text(uint32_t m, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = 0;
    for (unsigned b = 0; b < 32 && at + 4 < cap; b++)
        if (m & (1u << b))
            at += (size_t)snprintf(out + at, cap - at, "%s%u", at ? "," : "",
                                   b);
    if (!at)
        snprintf(out, cap, "all");
}

void set_explain_refusal(char **paths, unsigned n, int err)
{
    image_probe *p = calloc(n ? n : 1, sizeof(*p));
    if (!p)
        return;
    uint32_t epoch = 0;
    for (unsigned i = 0; i < n; i++)
        if (image_probe_path(paths[i], &p[i]) == 0 &&
            p[i].hdr.format_seq > epoch)
            epoch = p[i].hdr.format_seq;
    if (err == EKV_ENOTUNIQ) {
        int said = 0;
        for (unsigned i = 0; i < n; i++)
            for (unsigned j = i + 1; j < n; j++)
                if (!p[i].err && !p[j].err &&
                    p[i].block_size == p[j].block_size &&
                    p[i].block_count == p[j].block_count &&
                    ((p[i].hdr.replica_id ^ p[j].hdr.replica_id) & 31) == 0) {
                    fprintf(stderr,
                            "%s: %s and %s both carry replica_id %u: they "
                            "are images of two different stores, not "
                            "replicas of one; nothing was written\n",
                            PROG, paths[i], paths[j], p[i].hdr.replica_id);
                    said = 1;
                }
        for (unsigned i = 0; i < n && !said; i++)
            for (unsigned j = i + 1; j < n; j++) {
                if (p[i].err || p[j].err || p[i].hdr.format_seq != epoch ||
                    p[j].hdr.format_seq != epoch)
                    continue;
                char a[100], b[100];
                mask_text(p[i].hdr.flags, a, sizeof(a));
                mask_text(p[j].hdr.flags, b, sizeof(b));
                fprintf(stderr,
                        "%s: %s (epoch %u, participants %s) and %s (epoch "
                        "%u, participants %s) were changed apart, each "
                        "without the other: not replicas of one store any "
                        "more; nothing was merged or written\n",
                        PROG, paths[i], epoch, a, paths[j], epoch, b);
                said = 1;
                break;
            }
        /* One below the epoch whose own epoch none of those at the epoch
         * took part in (src/core/replica.c): written apart too. */
        uint32_t at_epoch = 0;
        int newest = -1;
        for (unsigned i = 0; i < n; i++)
            if (!p[i].err && p[i].hdr.format_seq == epoch) {
                at_epoch |= 1u << (p[i].hdr.replica_id & 31);
                if (newest < 0)
                    newest = (int)i;
            }
        for (unsigned i = 0; i < n && !said && newest >= 0; i++) {
            if (p[i].err || p[i].hdr.format_seq >= epoch || !p[i].hdr.flags ||
                (p[i].hdr.flags & at_epoch))
                continue;
            char a[100], b[100];
            mask_text(p[i].hdr.flags, a, sizeof(a));
            mask_text(p[newest].hdr.flags, b, sizeof(b));
            fprintf(stderr,
                    "%s: %s (epoch %u, participants %s) was changed without "
                    "%s (epoch %u, participants %s), which went on without "
                    "it: each holds writes the other never saw; not "
                    "replicas of one store any more; nothing was merged or "
                    "written\n",
                    PROG, paths[i], p[i].hdr.format_seq, a, paths[newest],
                    epoch, b);
            said = 1;
        }
    } else if (err == EKV_ESTALE) {
        for (unsigned i = 0; i < n; i++)
            if (!p[i].err && p[i].hdr.format_seq < epoch)
                fprintf(stderr,
                        "%s: %s: stale replica: epoch %u < %u, it missed "
                        "writes\n",
                        PROG, paths[i], p[i].hdr.format_seq, epoch);
    } else if (err == EKV_ENXIO) {
        uint32_t named = 0, want = 0;
        for (unsigned i = 0; i < n; i++)
            if (!p[i].err) {
                named |= 1u << (p[i].hdr.replica_id & 31);
                if (p[i].hdr.format_seq == epoch)
                    want = p[i].hdr.flags;
            }
        char m[100];
        mask_text(want & ~named, m, sizeof(m));
        fprintf(stderr,
                "%s: %s: the replica set is incomplete: replica_id %s "
                "not named; name every image (to write without the missing "
                "ones, mount with -o degraded: they become stale and are "
                "rebuilt when they return)\n",
                PROG, paths[0], m);
    } else if (err == EKV_EDOM) {
        fprintf(stderr, "%s: the images have different geometries:", PROG);
        for (unsigned i = 0; i < n; i++)
            if (p[i].magic)
                fprintf(stderr, "%s %s %u blocks of %u bytes", i ? "," : "",
                        paths[i],
                        p[i].block_count, p[i].block_size);
        fprintf(stderr, "\n");
    }
    free(p);
}

/* Blocks no replica in use could read at open (see view_lacks_blocks). */
static uint32_t unread_everywhere;

uint32_t view_lacks_blocks(void)
{
    return unread_everywhere;
}

/*
 * Read errors during the open's scan cost nothing while another replica
 * holds the same records; when every replica in use had some, keys and
 * values may be missing from what the command sees, and a listing or an
 * export that looks complete would lie. Counts the fewest such blocks of
 * any replica in use (a lower bound) and says so once.
 */
static void note_read_errors(const images *im, int quiet)
{
    uint32_t fewest = UINT32_MAX;
    for (unsigned i = 0; i < im->n; i++) {
        ekv_replica_report r;
        if (ekv_replica_report_get(im->store, i, &r) != 0 || r.status)
            continue;
        if (r.unreadable_blocks < fewest)
            fewest = r.unreadable_blocks;
    }
    unread_everywhere = fewest == UINT32_MAX ? 0 : fewest;
    if (!unread_everywhere || quiet)
        return;
    fprintf(stderr,
            "%s: warning: %s%s: %u block%s could not be read (input/output "
            "error)%s: what %s held is missing from this view; "
            "'embedkvfs check' tells more\n",
            PROG, im->paths[0], im->n > 1 ? " and the other replicas" : "",
            unread_everywhere, unread_everywhere == 1 ? "" : "s",
            im->n > 1 ? " on every replica in use" : "",
            unread_everywhere == 1 ? "it" : "they");
}

void set_report_open(const images *im, int quiet)
{
    if (!im->store)
        return;
    note_read_errors(im, quiet);
    if (quiet)
        return;
    ekv_stats st;
    ekv_stats_get(im->store, &st);
    uint32_t rebuilt_copies = 0, named = 0;
    int dropped = 0;
    for (unsigned i = 0; i < im->n; i++) {
        ekv_replica_report r;
        ekv_replica_report_get(im->store, i, &r);
        if (r.status == 0 || r.status == EKV_ESTALE)
            named |= 1u << (r.replica_id & 31);
        else
            dropped = 1; /* its id is unknown: its warning was printed */
        if (r.healed) {
            rebuilt_copies += r.copied;
            fprintf(stderr,
                    "%s: %s: had missed writes (stale epoch): rebuilt, "
                    "refilled with %u record%s; now at epoch %u\n",
                    PROG, im->paths[i], r.copied, r.copied == 1 ? "" : "s",
                    st.epoch);
        } else if (r.status == EKV_ESTALE) {
            fprintf(stderr,
                    "%s: warning: %s: stale replica (epoch %u < %u): it "
                    "missed writes, so it is not read; a writable command "
                    "(or mount) without --degraded rebuilds it\n",
                    PROG, im->paths[i], r.format_seq, st.epoch);
        }
    }
    if (st.healed_records > rebuilt_copies)
        fprintf(stderr,
                "%s: healed: copied %u record%s to replicas an interrupted "
                "write had left behind\n",
                PROG, st.healed_records - rebuilt_copies,
                st.healed_records - rebuilt_copies == 1 ? "" : "s");
    if (st.heal_error)
        fprintf(stderr,
                "%s: warning: heal could not finish: %s (stale replicas stay "
                "out of use; run 'embedkvfs repair')\n",
                PROG, open_strerror(st.heal_error));
    uint32_t absent = st.missing & ~named;
    if (absent && !dropped) {
        char m[100];
        mask_text(absent, m, sizeof(m));
        fprintf(stderr,
                "%s: warning: the replica set is incomplete: replica_id %s "
                "not named%s\n",
                PROG, m,
                st.read_only ? " (reading from the others)"
                             : "; the first change starts a new epoch "
                               "without the missing ones");
    }
}

const char *set_state_text(const images *im, unsigned i, int status,
                           char *why, size_t cap)
{
    ekv_stats st;
    ekv_replica_report r;
    why[0] = 0;
    if (im->store) {
        ekv_stats_get(im->store, &st);
        ekv_replica_report_get(im->store, i, &r);
    }
    switch (status) {
    case 0:
        if (im->store)
            snprintf(why, cap, "epoch %u%s%s", r.format_seq,
                     r.healed ? ", rebuilt" : "",
                     r.header_torn ? ", header CRC wrong: torn by an "
                                     "interrupted epoch change, rewritten "
                                     "by the next change" : "");
        return "in use";
    case EKV_ESTALE:
        if (im->store)
            snprintf(why, cap,
                     "epoch %u < %u: it missed writes; never read (a "
                     "writable open or repair rebuilds it)",
                     r.format_seq, st.epoch);
        return "stale";
    case EKV_ENOTUNIQ:
        snprintf(why, cap, "its header is another store's (same replica_id, "
                           "or changed apart): repair --force overwrites it");
        return "not a replica of this store";
    default:
        return "dropped";
    }
}
