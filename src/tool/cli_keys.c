/*
 * cli_keys.c - the key subcommands: ls, get, put, rm.
 *
 * ls and get open the images read-only (recovery in memory only, nothing
 * is ever written) and degraded: an unusable replica is reported on stderr
 * and the others are read. put and rm open every image writable and refuse
 * a set with an unusable replica, which would only diverge further: repair
 * it first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "names.h"

#define KEY_FORM_HELP                                                      \
    "KEY is taken byte for byte as given (raw) unless:\n"                  \
    "  -e, --escaped   KEY is the escaped name that ls prints (%XX escapes,\n" \
    "                  '%' for the empty key, shortened names of long keys)\n" \
    "  -x, --hex       KEY is the key in hex (as ls --json key_hex prints)\n" \
    "  -k, --key KEY   give KEY as an option: every argument is then an\n" \
    "                  IMAGE\n"                                            \
    "Put '--' before a KEY that starts with '-'. A last argument that is an\n" \
    "embedkv image is refused as a KEY (the KEY was left out?) unless it\n" \
    "follows '--' or -k.\n" WINDOW_HELP LOCK_WAIT_HELP HELP_HELP

#define EXIT_HELP                                                          \
    "Exit: 0 ok, 2 usage or key too long, 3 no such key, 4 not an image or\n" \
    "corrupt, 5 I/O error, missing or locked image, no space. See "        \
    "embedkvfs(1).\n"

/* Parse the key-form options shared by get, put and rm; 0 if c was not
 * one of them. */
static int key_form_opt(int c, enum key_form *form, int *forms)
{
    if (c == 'e' || c == 'x') {
        *form = c == 'e' ? KEY_ESCAPED : KEY_HEX;
        (*forms)++;
        return 1;
    }
    return 0;
}

/* Whether the last argument follows "--" (look before getopt permutes
 * argv): then it is a KEY, whatever it looks like. */
static int last_after_dashdash(int argc, char **argv)
{
    return argc >= 3 && strcmp(argv[argc - 2], "--") == 0;
}

/* Split the positional arguments into IMAGE... and the KEY (key_opt when
 * -k gave it). Returns 0, or an exit code after printing why. */
static int split_key(const char *cmd, char **pos, int npos,
                     const char *key_opt, int explicit_key,
                     const char **key, int *nimg)
{
    if (key_opt) {
        if (npos < 1)
            return usage_error(cmd, EXIT_USAGE, "need IMAGE... -k KEY");
        *key = key_opt;
        *nimg = npos;
        return 0;
    }
    if (npos < 2)
        return usage_error(cmd, EXIT_USAGE, "need IMAGE... KEY");
    *key = pos[npos - 1];
    *nimg = npos - 1;
    if (!explicit_key && looks_like_image(*key)) {
        fprintf(stderr,
                "%s %s: %s: the last argument, taken as the KEY, is an "
                "embedkv image: was the KEY left out? (to use it as the "
                "KEY: -k %s, or '--' before it)\n",
                PROG, cmd, *key, *key);
        return EXIT_USAGE;
    }
    return 0;
}

/* The first positional argument; getopt has moved them to the end. */
static char **positionals(int argc, char **argv, int *n)
{
    *n = argc - optind;
    return argv + optind;
}

/* ------------------------------------------------------------------ ls */

static const char ls_help[] =
    "usage: embedkvfs ls [-l] [--json] [--wait S] IMAGE...\n"
    "List the keys of the store on IMAGE... (replicas), one per line, as\n"
    "their escaped file names (the names the mount shows), sorted bytewise\n"
    "by key.\n"
    "  -l, --long       also value size, generation and one state character\n"
    "                   per replica: '=' holds the newest generation, '<'\n"
    "                   only an older one, '-' none, '?' replica unusable\n"
    "  --json           one JSON object (see embedkvfs(1))\n"
    WINDOW_HELP LOCK_WAIT_HELP HELP_HELP "Never writes to an image.\n" EXIT_HELP;

/* One state character per replica for key item it. */
static void replica_states(const images *im, const key_item *it, char *out)
{
    for (unsigned r = 0; r < im->n; r++) {
        ekv_replica_report rep;
        ekv_replica_report_get(im->store, r, &rep);
        if (rep.status != 0)
            out[r] = '?';
        else if (it->replicas & (1u << r))
            out[r] = '=';
        else if (it->stale & (1u << r))
            out[r] = '<';
        else
            out[r] = '-';
    }
    out[im->n] = 0;
}

static const char *state_word(char c)
{
    switch (c) {
    case '=': return "current";
    case '<': return "older";
    case '-': return "missing";
    default: return "unavailable";
    }
}

int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"long", no_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int lng = 0, json = 0, c, w;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "lh", opts, NULL)) != -1) {
        if ((w = lock_wait_opt("ls", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'l': lng = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(ls_help, stdout); return EXIT_OK;
        default: return bad_option("ls", EXIT_USAGE, argv, optopt);
        }
    }
    int npos;
    char **pos = positionals(argc, argv, &npos);
    if (npos < 1)
        return usage_error("ls", EXIT_USAGE, "no IMAGE given");

    images im;
    int err = images_open(&im, pos, (unsigned)npos, IMG_RDONLY | IMG_DEGRADED);
    if (err)
        return exit_code_for_open(err);
    key_item *items = NULL;
    size_t n = 0;
    err = keys_collect(im.store, &items, &n);
    if (err) {
        print_error("ls", err);
        images_close(&im);
        return exit_code_for(err);
    }

    char name[NAME_MAX_BYTES + 1];
    char states[EKV_MAX_REPLICAS + 1];
    if (json) {
        printf("{\"images\": [");
        for (unsigned r = 0; r < im.n; r++) {
            printf(r ? ", " : "");
            json_cstr(stdout, im.paths[r]);
        }
        printf("],\n \"keys\": [");
        for (size_t i = 0; i < n; i++) {
            const key_item *it = &items[i];
            key_to_name(it->key, it->len, name);
            replica_states(&im, it, states);
            printf("%s\n  {\"name\": ", i ? "," : "");
            json_cstr(stdout, name);
            printf(", \"key_hex\": ");
            json_hex(stdout, it->key, it->len);
            printf(", \"size\": %u, \"generation\": %u, \"agree\": %s, "
                   "\"replicas\": [",
                   it->value_size, it->generation,
                   strspn(states, "=") == im.n ? "true" : "false");
            for (unsigned r = 0; r < im.n; r++)
                printf("%s\"%s\"", r ? ", " : "", state_word(states[r]));
            printf("]}");
        }
        printf("%s]}\n", n ? "\n " : "");
    } else {
        for (size_t i = 0; i < n; i++) {
            const key_item *it = &items[i];
            key_to_name(it->key, it->len, name);
            if (lng) {
                replica_states(&im, it, states);
                printf("%10u %10u %s %s\n", it->value_size, it->generation,
                       states, name);
            } else {
                printf("%s\n", name);
            }
        }
    }
    keys_free(items, n);
    images_close(&im);
    return view_exit("ls", finish_stdout("ls"));
}

/* ----------------------------------------------------------------- get */

static const char get_help[] =
    "usage: embedkvfs get [-e | -x] [--wait S] IMAGE... [--] KEY\n"
    "       embedkvfs get [-e | -x] [--wait S] -k KEY IMAGE...\n"
    "Write the value of KEY to standard output, byte for byte. The whole\n"
    "value is read and verified first: on an error nothing is written.\n"
    KEY_FORM_HELP "Never writes to an image.\n" EXIT_HELP;

/* Read key k's whole value into a malloc'd buffer. */
static int read_value(ekv_store *s, const key_arg *k, uint8_t **out,
                      size_t *len)
{
    ekv_key_info ki;
    int err = ekv_stat_key(s, k->bytes, k->len, &ki);
    if (err)
        return err;
    return value_read(s, k->bytes, k->len, ki.value_size, out, len);
}

/* What get and rm share: parse "[-e | -x] IMAGE... KEY", open the images
 * with flags and resolve the key. Returns -1 with *k and *im ready (the
 * caller releases both), or an exit code with nothing left open. */
static int open_key_command(int argc, char **argv, const char *cmd,
                            const char *help, unsigned flags, key_arg *k,
                            images *im)
{
    static const struct option opts[] = {
        {"escaped", no_argument, NULL, 'e'},
        {"hex", no_argument, NULL, 'x'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    enum key_form form = KEY_RAW;
    int forms = 0, c, w;
    const char *key_opt = NULL;
    int explicit_key = last_after_dashdash(argc, argv);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "exk:h", opts, NULL)) != -1) {
        if (key_form_opt(c, &form, &forms))
            continue;
        if ((w = lock_wait_opt(cmd, c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        if (c == 'k') {
            key_opt = optarg;
            continue;
        }
        if (c == 'h') {
            fputs(help, stdout);
            return EXIT_OK;
        }
        return bad_option(cmd, EXIT_USAGE, argv, optopt);
    }
    int npos, nimg = 0;
    const char *key = NULL;
    char **pos = positionals(argc, argv, &npos);
    if (forms > 1)
        return usage_error(cmd, EXIT_USAGE, "-e and -x exclude each other");
    int rc = split_key(cmd, pos, npos, key_opt, explicit_key, &key, &nimg);
    if (rc)
        return rc;

    int err = key_arg_parse(key, form, k);
    if (err) {
        key_arg_free(k);
        return exit_code_for(err);
    }
    err = images_open(im, pos, (unsigned)nimg, flags);
    if (err) {
        key_arg_free(k);
        return exit_code_for_open(err);
    }
    err = key_arg_resolve(im->store, k);
    if (err) {
        key_error(cmd, im->store, k, err);
        key_arg_free(k);
        images_close(im);
        return exit_code_for(err);
    }
    return -1;
}

int cmd_get(int argc, char **argv)
{
    key_arg k = {0};
    images im = {0};
    int rc = open_key_command(argc, argv, "get", get_help,
                              IMG_RDONLY | IMG_DEGRADED, &k, &im);
    if (rc >= 0)
        return rc;
    uint8_t *val = NULL;
    size_t len = 0;
    int err = read_value(im.store, &k, &val, &len);
    if (err) {
        key_error("get", im.store, &k, err);
        rc = view_exit("get", exit_code_for(err));
    } else {
        fwrite(val, 1, len, stdout);
        rc = finish_stdout("get");
    }
    free(val);
    key_arg_free(&k);
    images_close(&im);
    return rc;
}

/* ----------------------------------------------------------------- put */

static const char put_help[] =
    "usage: embedkvfs put [-e | -x] [-f FILE] [--wait S] IMAGE... [--] KEY\n"
    "       embedkvfs put [-e | -x] [-f FILE] [--wait S] -k KEY IMAGE...\n"
    "Store the value read from standard input (or FILE) under KEY, on every\n"
    "replica, durably (flushed) when the command returns 0. Each put is an\n"
    "atomic replace: after a crash KEY holds the old or the new value.\n"
    "  -f, --file FILE   read the value from FILE ('-': standard input)\n"
    KEY_FORM_HELP EXIT_HELP;

/* The largest value a key of klen bytes can have in this store. */
static uint64_t max_value(const ekv_stats *st, size_t klen)
{
    if (st->block_count < 2)
        return 0; /* a header and no room for a record */
    uint64_t first = st->block_size - EKV_DESCRIPTOR_HEADER_SIZE - klen -
                     EKV_CRC_SIZE;
    uint64_t per = st->block_size - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
    uint64_t m = first + (uint64_t)(st->block_count - 2) * per;
    return m > 0xffffffffu ? 0xffffffffu : m;
}

static uint64_t blocks_needed(const ekv_stats *st, size_t klen, size_t len)
{
    uint64_t first = st->block_size - EKV_DESCRIPTOR_HEADER_SIZE - klen -
                     EKV_CRC_SIZE;
    uint64_t per = st->block_size - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
    return len <= first ? 1 : 1 + (len - first + per - 1) / per;
}

/* Read all of fd, but no more than limit + 1 bytes (so a caller can tell
 * "too large" without holding an endless stream in memory). */
static int read_all(int fd, uint64_t limit, uint8_t **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (n > limit)
                break;
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > limit)
            break;
    }
    *out = buf;
    *len = n;
    return 0;
}

int cmd_put(int argc, char **argv)
{
    static const struct option opts[] = {
        {"escaped", no_argument, NULL, 'e'},
        {"hex", no_argument, NULL, 'x'},
        {"file", required_argument, NULL, 'f'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        LOCK_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    enum key_form form = KEY_RAW;
    int forms = 0, c, w;
    const char *file = NULL, *key_opt = NULL;
    int explicit_key = last_after_dashdash(argc, argv);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "exf:k:h", opts, NULL)) != -1) {
        if (key_form_opt(c, &form, &forms))
            continue;
        if ((w = lock_wait_opt("put", c, optarg)) != 0) {
            if (w < 0)
                return EXIT_USAGE;
            continue;
        }
        if (c == 'k') {
            key_opt = optarg;
        } else if (c == 'f') {
            file = optarg;
        } else if (c == 'h') {
            fputs(put_help, stdout);
            return EXIT_OK;
        } else {
            return bad_option("put", EXIT_USAGE, argv, optopt);
        }
    }
    int npos, nimg = 0;
    const char *key = NULL;
    char **pos = positionals(argc, argv, &npos);
    if (forms > 1)
        return usage_error("put", EXIT_USAGE, "-e and -x exclude each other");
    int src = split_key("put", pos, npos, key_opt, explicit_key, &key, &nimg);
    if (src)
        return src;

    int fd = STDIN_FILENO;
    if (file && strcmp(file, "-") != 0) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "%s put: %s: %s\n", PROG, file, strerror(errno));
            return EXIT_IO;
        }
    }
    key_arg k;
    images im = {0};
    uint8_t *val = NULL;
    size_t len = 0;
    int rc = EXIT_OK;
    int err = key_arg_parse(key, form, &k);
    if (err) {
        rc = exit_code_for(err);
        goto out;
    }
    err = images_open(&im, pos, (unsigned)nimg, 0);
    if (err) {
        rc = exit_code_for_open(err);
        goto out;
    }
    /* A shortened name can only name a key that exists already. */
    err = key_arg_resolve(im.store, &k);
    if (err) {
        key_error("put", im.store, &k, err);
        rc = exit_code_for(err);
        goto out;
    }
    ekv_stats st;
    ekv_stats_get(im.store, &st);
    uint64_t limit = max_value(&st, k.len);
    err = read_all(fd, limit, &val, &len);
    if (err) {
        fprintf(stderr, "%s put: %s: %s\n", PROG, file ? file : "standard input",
                strerror(-err));
        rc = EXIT_IO;
        goto out;
    }
    if (len > limit)
        err = EKV_EFBIG;
    else
        err = ekv_put(im.store, k.bytes, k.len, val, len);
    if (err && key_device_error("put", &im, &k)) {
        rc = EXIT_IO;
    } else if (err == EKV_EFBIG || err == EKV_ENOSPC) {
        char name[NAME_MAX_BYTES + 1];
        key_to_name(k.bytes, k.len, name);
        if (err == EKV_EFBIG)
            fprintf(stderr,
                    "%s put: %s: value too large for this store (%s%zu "
                    "bytes; at most %llu)\n",
                    PROG, name, len > limit ? "more than " : "",
                    len > limit ? (size_t)limit : len,
                    (unsigned long long)limit);
        else
            fprintf(stderr,
                    "%s put: %s: no space left: the value needs %llu "
                    "blocks, %u free\n",
                    PROG, name,
                    (unsigned long long)blocks_needed(&st, k.len, len),
                    st.free_blocks);
        rc = EXIT_IO;
    } else if (err == EKV_ERANGE) {
        /* ekv_put's only EKV_ERANGE: the key's generation counter is at
         * its maximum and cannot count another write. */
        char name[NAME_MAX_BYTES + 1];
        key_to_name(k.bytes, k.len, name);
        fprintf(stderr,
                "%s put: %s: the key's generation counter is exhausted "
                "(4294967295 writes): rm the key, then put it again\n",
                PROG, name);
        rc = EXIT_ERR;
    } else if (err) {
        key_error("put", im.store, &k, err);
        rc = exit_code_for(err);
    }
out:
    if (fd != STDIN_FILENO)
        close(fd);
    free(val);
    key_arg_free(&k);
    images_close(&im);
    return rc;
}

/* ------------------------------------------------------------------ rm */

static const char rm_help[] =
    "usage: embedkvfs rm [-e | -x] [--wait S] IMAGE... [--] KEY\n"
    "       embedkvfs rm [-e | -x] [--wait S] -k KEY IMAGE...\n"
    "Delete KEY from every replica (durable when the command returns 0).\n"
    KEY_FORM_HELP EXIT_HELP;

int cmd_rm(int argc, char **argv)
{
    key_arg k = {0};
    images im = {0};
    int rc = open_key_command(argc, argv, "rm", rm_help, 0, &k, &im);
    if (rc >= 0)
        return rc;
    int err = ekv_delete(im.store, k.bytes, k.len);
    if (err && key_device_error("rm", &im, &k)) {
        err = EKV_EIO;
    } else if (err) {
        key_error("rm", im.store, &k, err);
    }
    key_arg_free(&k);
    images_close(&im);
    return exit_code_for(err);
}
