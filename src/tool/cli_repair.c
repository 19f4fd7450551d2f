/*
 * cli_repair.c - embedkvfs repair.
 *
 * repair opens the images writable and degraded; opening already runs the
 * writable recovery on every usable replica; ekv_repair() then rebuilds
 * replicas with a destroyed header and copies the newest record of every
 * key to the replicas that lack it. What is left unrepaired (a replica, a
 * key still not everywhere) is reported and gives exit status 4. The
 * per-replica judgement that check makes is in cli_check.c.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_check.h"
#include "commands.h"
#include "names.h"
#include "progress.h"
#include "window.h"

static const char repair_help[] =
    "usage: embedkvfs repair [--force] [--json] [--wait S] IMAGE...\n"
    "Bring every replica of the store on IMAGE... to the newest complete\n"
    "record of every key: run the writable recovery on every replica (erase\n"
    "interrupted writes), empty and refill a replica that missed writes\n"
    "(stale epoch) or whose header is destroyed, and copy each key's\n"
    "newest record to the replicas that lack it or hold an older or corrupt\n"
    "copy. A stale replica is never copied from. Safe against power loss at\n"
    "every step. To replace a lost replica, create a blank file of the\n"
    "right size first (truncate -s).\n"
    "  --force          images of two stores (same replica_id, or changed\n"
    "                   apart): keep the first image's store and overwrite\n"
    "                   the others (it says which first); without it\n"
    "                   repair refuses\n"
    "  --json           the lines on stderr, and one JSON object on stdout:\n"
    "                   status, copied, epoch, every replica's state\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP
    "Exit: 0 all replicas agree, 2 usage, 4 a replica could not be repaired\n"
    "or the images are not replicas of one store, 5 I/O error, missing or\n"
    "locked image, no space. See embedkvfs(1).\n";

/* --json when the set could not be opened: the same object as after a
 * repair (nothing copied, no epoch), each image with why it was not
 * used, so that a script parsing stdout always gets one object. */
static void json_not_opened(const images *im, char **paths, int n, int err,
                            int rc)
{
    printf("{\"status\": %d, \"copied\": 0, \"epoch\": null, "
           "\"replicas\": [", rc);
    for (int i = 0; i < n; i++) {
        int st = im->open_err[i] ? im->open_err[i] : err;
        char why[256];
        const char *word = set_state_text(im, (unsigned)i, st, why,
                                          sizeof(why));
        if (!why[0] && st) {
            img_window w = window_for((unsigned)i);
            image_error_text(paths[i], w.offset, w.length, st, why,
                             sizeof(why));
        }
        printf("%s\n  {\"replica\": %d, \"image\": ", i ? "," : "", i);
        json_cstr(stdout, paths[i]);
        json_state(word, why);
        printf(", \"rebuilt\": false, \"copied\": 0}");
    }
    printf("\n]}\n");
    (void)fflush(stdout);
}

int cmd_repair(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c, w, force = 0, json = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("repair", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        if (c == 'h') {
            fputs(repair_help, stdout);
            return EXIT_OK;
        }
        if (c == 'f' || c == 'j') {
            if (c == 'f')
                force = 1;
            else
                json = 1;
            continue;
        }
        return bad_option("repair", EXIT_USAGE, argv, optopt);
    }
    int n = argc - optind;
    char **paths = argv + optind;
    if (n < 1)
        return usage_error("repair", EXIT_USAGE, "no IMAGE given");

    /* With --json the lines below go to stderr and one JSON object to
     * stdout. */
    FILE *txt = json ? stderr : stdout;
    images im;
    int err = images_open(&im, paths, (unsigned)n, IMG_DEGRADED);
    if (err == EKV_ENOTUNIQ && !force) {
        fprintf(stderr, "%s repair: refused: nothing was written (with "
                "--force, repair keeps the first image's store and "
                "overwrites the others)\n", PROG);
        int orc = exit_code_for_open(err);
        if (json)
            json_not_opened(&im, paths, n, err, orc);
        return orc;
    }
    if (err == EKV_ENOTUNIQ) {
        err = images_open(&im, paths, (unsigned)n, IMG_DEGRADED | IMG_FORCE);
        for (int i = 0; !err && i < n; i++) {
            ekv_replica_report r;
            ekv_replica_report_get(im.store, (unsigned)i, &r);
            if (r.status == EKV_ENOTUNIQ)
                fprintf(stderr, "%s repair --force: %s: overwriting it: its "
                        "content (another store's) is discarded\n",
                        PROG, paths[i]);
            else if (r.status == 0)
                fprintf(stderr, "%s repair --force: %s: keeping its "
                        "content\n", PROG, paths[i]);
        }
    }
    if (err) {
        int orc = exit_code_for_open(err);
        if (json)
            json_not_opened(&im, paths, n, err, orc);
        return orc;
    }
    ekv_replica_report before[EKV_MAX_REPLICAS], after;
    for (int i = 0; i < n; i++)
        ekv_replica_report_get(im.store, (unsigned)i, &before[i]);

    uint32_t copied = 0;
    progress_begin("repair: blocks written", 0);
    progress_hook(im.devs, im.n);
    err = ekv_repair(im.store, &copied);
    {
        /* The open healed already (the same copies): count them too. */
        ekv_stats hst;
        ekv_stats_get(im.store, &hst);
        copied = hst.healed_records;
    }
    progress_unhook();
    progress_end();

    int rc = EXIT_OK, left = 0;
    uint32_t active = 0;
    for (int i = 0; i < n; i++) {
        ekv_replica_report_get(im.store, (unsigned)i, &after);
        if (before[i].status == 0 && before[i].healed) {
            active |= 1u << i;
            fprintf(txt, "%s: rebuilt: it had missed writes (stale epoch); "
                   "emptied and refilled from the current replicas\n",
                   paths[i]);
        } else if (before[i].status == 0) {
            active |= 1u << i;
            if (before[i].erased_blocks)
                fprintf(txt, "%s: recovery erased %u block%s (interrupted writes, "
                       "stale records, garbage)\n",
                       paths[i], before[i].erased_blocks,
                       before[i].erased_blocks == 1 ? "" : "s");
        } else if (after.status == 0) {
            active |= 1u << i;
            /* The library empties a revived replica (its records missed
             * every change while it was dropped) and the copy loop below
             * refills it. */
            fprintf(txt, "%s: rebuilt: emptied, fresh header (replica_id %u), "
                   "refilled from the other replicas\n",
                   paths[i], after.replica_id);
        } else {
            char msg[320];
            image_probe pr;
            int why = im.open_err[i] ? im.open_err[i] : after.status;
            img_window win = window_for((unsigned)i);
            if (is_content_error(why) &&
                image_probe_at(paths[i], win.offset, win.length, &pr) == why)
                snprintf(msg, sizeof(msg), "%s", pr.reason);
            else
                snprintf(msg, sizeof(msg), "%s", open_strerror(why));
            ekv_stats st;
            ekv_stats_get(im.store, &st);
            fprintf(stderr,
                    "%s repair: %s: not repaired: %s (to replace it, move it "
                    "away, create a blank one with 'truncate -s %llu' and "
                    "run repair again)\n",
                    PROG, paths[i], msg,
                    (unsigned long long)st.block_size * st.block_count);
            left = 1;
        }
    }
    fprintf(txt, "copied %u record%s to lagging replicas\n", copied,
           copied == 1 ? "" : "s");

    /* What is still not everywhere: keys without a sound copy, or copies
     * that failed. */
    key_item *items = NULL;
    size_t nkeys = 0, differ = 0;
    if (keys_collect(im.store, &items, &nkeys) == 0) {
        for (size_t k = 0; k < nkeys; k++)
            if (items[k].replicas != active) {
                char name[NAME_MAX_BYTES + 1];
                key_to_name(items[k].key, items[k].len, name);
                fprintf(stderr, "%s repair: %s: still differs between "
                        "replicas\n", PROG, name);
                differ++;
            }
        keys_free(items, nkeys);
    }
    if (err && !is_content_error(err)) {
        /* No space on a lagging replica, an I/O error: say so. */
        print_error("repair", err);
        rc = exit_code_for(err);
    } else if (err || left || differ) {
        rc = EXIT_CORRUPT;
    }
    /* Every replica's state, in words. */
    for (int i = 0; i < n; i++) {
        ekv_replica_report_get(im.store, (unsigned)i, &after);
        int st = after.status ? (im.open_err[i] ? im.open_err[i]
                                                : after.status)
                              : 0;
        char why[256];
        const char *word = set_state_text(&im, (unsigned)i, st, why,
                                          sizeof(why));
        if (st && !why[0])
            snprintf(why, sizeof(why), "because %s", open_strerror(st));
        if (!st)
            fprintf(txt, "replica %d: %s: %s (%s)\n", i, paths[i], word, why);
        else
            fprintf(txt, "replica %d: %s: %s: %s\n", i, paths[i], word, why);
    }
    if (json) {
        ekv_stats jst;
        ekv_stats_get(im.store, &jst);
        printf("{\"status\": %d, \"copied\": %u, \"epoch\": %u, "
               "\"replicas\": [",
               rc, copied, jst.epoch);
        for (int i = 0; i < n; i++) {
            ekv_replica_report_get(im.store, (unsigned)i, &after);
            int st = after.status ? (im.open_err[i] ? im.open_err[i]
                                                    : after.status)
                                  : 0;
            char why[256];
            const char *word = set_state_text(&im, (unsigned)i, st, why,
                                              sizeof(why));
            printf("%s\n  {\"replica\": %d, \"image\": ", i ? "," : "", i);
            json_cstr(stdout, paths[i]);
            json_state(word, why);
            printf(", \"rebuilt\": %s, \"copied\": %u}",
                   (after.healed || (before[i].status && !after.status))
                       ? "true" : "false",
                   after.copied);
        }
        printf("\n]}\n");
    }
    if (rc == EXIT_OK)
        fprintf(txt, "repair: done: %d replica%s, %zu key%s, all in agreement\n",
               n, n == 1 ? "" : "s", nkeys, nkeys == 1 ? "" : "s");
    else
        fprintf(txt, "repair: incomplete (see the errors above)\n");
    images_close(&im);
    int frc = finish_stdout("repair");
    return rc ? rc : frc;
}
