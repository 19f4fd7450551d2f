/*
 * cli_diff.c - embedkvfs diff A B: compare the keys and values of two
 * stores. Each side is one image or a replica set written as the images
 * joined by commas ("a0.img,a1.img"); --offset/--length give one value
 * for all images, or one per image: those of A, then those of B. Exit codes as diff(1): 0 equal, 1 different, 2 and up
 * trouble.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "cli.h"
#include "commands.h"
#include "names.h"
#include "window.h"

static const char diff_help[] =
    "usage: embedkvfs diff [--json] [--wait S] A B\n"
    "Compare the stores A and B; each is an image or a replica set given\n"
    "as its images joined by commas (a0.img,a1.img). Prints one line per\n"
    "difference, keys sorted bytewise, names escaped as ls prints them:\n"
    "  - NAME   only in A\n"
    "  + NAME   only in B\n"
    "  ~ NAME   in both, with different values\n"
    "  --json           {\"only_a\": [..], \"only_b\": [..], \"differ\": [..]},\n"
    "                   each entry {\"name\": NAME, \"key_hex\": HEX}\n"
    "  --offset N, --length N   windows: one value for every image, or\n"
    "                   N:N:... one per image, A's images then B's\n"
    LOCK_WAIT_HELP HELP_HELP
    "Never writes. Exit: 0 same keys and values, 1 different, 2 usage,\n"
    "4 not an image or corrupt, 5 I/O error, missing or locked image.\n";

/* Split "a,b,c" into paths (in place). */
static unsigned split_set(char *arg, char **paths)
{
    unsigned n = 0;
    char *save = NULL;
    for (char *p = strtok_r(arg, ",", &save); p && n <= EKV_MAX_REPLICAS;
         p = strtok_r(NULL, ",", &save))
        paths[n++] = p;
    return n;
}

static int diff_differ; /* set when the stores differ */

struct diffout {
    int json;
    unsigned count[3];
    FILE *lists[3]; /* JSON entries per kind, collected in memory */
    char *bufs[3];
    size_t sizes[3];
};

static void report(struct diffout *d, int kind, const key_item *it)
{
    static const char marks[] = "-+~";
    char name[NAME_MAX_BYTES + 1];
    key_to_name(it->key, it->len, name);
    if (!d->json) {
        printf("%c %s\n", marks[kind], name);
    } else {
        FILE *f = d->lists[kind];
        fprintf(f, "%s\n  {\"name\": ", d->count[kind] ? "," : "");
        json_cstr(f, name);
        fprintf(f, ", \"key_hex\": ");
        json_hex(f, it->key, it->len);
        fprintf(f, "}");
    }
    d->count[kind]++;
}

static int diff_main(int argc, char **argv);

/* diff(1) codes: 1 means "different", so no error may exit 1. */
int cmd_diff(int argc, char **argv)
{
    int rc = diff_main(argc, argv);
    return rc == EXIT_ERR && diff_differ == 0 ? EXIT_USAGE : rc;
}

static int diff_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int json = 0, c, w;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("diff", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(diff_help, stdout); return EXIT_OK;
        default: return bad_option("diff", EXIT_USAGE, argv, optopt);
        }
    }
    if (argc - optind != 2)
        return usage_error("diff", EXIT_USAGE,
                           "need A and B (replica sets: a0.img,a1.img)");
    char *pa[EKV_MAX_REPLICAS + 1], *pb[EKV_MAX_REPLICAS + 1];
    unsigned na = split_set(argv[optind], pa);
    unsigned nb = split_set(argv[optind + 1], pb);
    if (!na || !nb || na > EKV_MAX_REPLICAS || nb > EKV_MAX_REPLICAS)
        return usage_error("diff", EXIT_USAGE,
                           "each side is 1..%u images joined by commas",
                           EKV_MAX_REPLICAS);
    images a, b;
    window_group(0, na + nb);
    int err = images_open(&a, pa, na, IMG_RDONLY | IMG_DEGRADED);
    if (err)
        return exit_code_for_open(err);
    window_group(na, na + nb);
    err = images_open(&b, pb, nb, IMG_RDONLY | IMG_DEGRADED);
    if (err) {
        images_close(&a);
        return exit_code_for_open(err);
    }
    key_item *ka = NULL, *kb = NULL;
    size_t nka = 0, nkb = 0;
    int rc = EXIT_OK;
    struct diffout d = {0};
    d.json = json;
    err = keys_collect(a.store, &ka, &nka);
    if (!err)
        err = keys_collect(b.store, &kb, &nkb);
    for (int k = 0; json && k < 3 && !err; k++) {
        d.lists[k] = open_memstream(&d.bufs[k], &d.sizes[k]);
        if (!d.lists[k])
            err = EKV_ENOMEM;
    }
    if (err) {
        print_error("diff", err);
        rc = exit_code_for(err);
        goto out;
    }
    size_t i = 0, j = 0;
    while (i < nka || j < nkb) {
        int cmp = i == nka   ? 1
                  : j == nkb ? -1
                             : bulk_keycmp(ka[i].key, ka[i].len, kb[j].key,
                                           kb[j].len);
        if (cmp < 0) {
            report(&d, 0, &ka[i++]);
            continue;
        }
        if (cmp > 0) {
            report(&d, 1, &kb[j++]);
            continue;
        }
        int differ = ka[i].value_size != kb[j].value_size;
        if (!differ) {
            uint8_t *va = NULL, *vb = NULL;
            size_t la = 0, lb = 0;
            err = value_read(a.store, ka[i].key, ka[i].len, ka[i].value_size,
                             &va, &la);
            if (err) {
                key_error("diff", a.store,
                          &(key_arg){a.paths[0], ka[i].key, ka[i].len, 0},
                          err);
            } else {
                err = value_read(b.store, kb[j].key, kb[j].len,
                                 kb[j].value_size, &vb, &lb);
                if (err)
                    key_error("diff", b.store,
                              &(key_arg){b.paths[0], kb[j].key, kb[j].len, 0},
                              err);
            }
            differ = !err && (la != lb || (la && memcmp(va, vb, la) != 0));
            free(va);
            free(vb);
            if (err) {
                rc = exit_code_for(err) > EXIT_USAGE ? exit_code_for(err)
                                                     : EXIT_IO;
                goto out;
            }
        }
        if (differ)
            report(&d, 2, &ka[i]);
        i++, j++;
    }
    if (json) {
        static const char *names[] = {"only_a", "only_b", "differ"};
        printf("{");
        for (int k = 0; k < 3; k++) {
            fclose(d.lists[k]);
            d.lists[k] = NULL;
            printf("%s\"%s\": [%s%s]", k ? ",\n " : "", names[k],
                   d.bufs[k] ? d.bufs[k] : "", d.count[k] ? "\n " : "");
        }
        printf("}\n");
    }
    rc = finish_stdout("diff");
    if (!rc)
        rc = (diff_differ = d.count[0] + d.count[1] + d.count[2] != 0);
out:
    for (int k = 0; k < 3; k++) {
        if (d.lists[k])
            fclose(d.lists[k]);
        free(d.bufs[k]);
    }
    keys_free(ka, nka);
    keys_free(kb, nkb);
    images_close(&a);
    images_close(&b);
    return rc;
}
