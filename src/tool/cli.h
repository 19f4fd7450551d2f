/*
 * cli.h - what the script subcommands (format, ls, get, put, rm, check,
 * repair, dump) share: usage messages, the three ways to give a key on the
 * command line, a sorted list of the keys of a store, and a small JSON
 * writer. Commands live in cli_*.c; see embedkvfs(1) for the behaviour.
 */
#ifndef EKVFS_CLI_H
#define EKVFS_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

/* How a KEY argument is given. */
enum key_form {
    KEY_RAW = 0, /* the argument's bytes are the key (the default) */
    KEY_ESCAPED, /* the file name form that ls and the mount show */
    KEY_HEX      /* two hex digits per key byte */
};

/* A key from the command line. */
typedef struct key_arg {
    const char *arg;   /* as given */
    uint8_t *bytes;    /* the key (malloc'd), or the decoded prefix of a
                          shortened name */
    size_t len;
    int is_short;      /* a shortened name: resolve with key_arg_resolve */
} key_arg;

/*
 * Print "embedkvfs CMD: message" and a pointer to --help on stderr (one
 * line) and return code.
 */
int usage_error(const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message for an unknown option or missing option argument of getopt
 * (with opterr = 0): returns code. */
int bad_option(const char *cmd, int code, char **argv, int optopt_);

/* --wait SECONDS and --no-wait, which every subcommand that opens an
 * image takes: how long to wait for a lock another process holds (see
 * images_set_lock_wait). Put LOCK_WAIT_LONGOPTS in the getopt_long table
 * and pass each option to lock_wait_opt. */
enum { OPT_WAIT = 0x3001, OPT_NO_WAIT = 0x3002 };
#define LOCK_WAIT_LONGOPTS                                                 \
    {"wait", required_argument, NULL, OPT_WAIT},                           \
    {"no-wait", no_argument, NULL, OPT_NO_WAIT}
#define LOCK_WAIT_HELP                                                     \
    "  --wait SECONDS   wait at most SECONDS (default 5) for an image that\n" \
    "                   another process (e.g. an ending mount) has locked\n" \
    "  --no-wait        fail at once on a locked image (as --wait 0)\n"
/* The --offset/--length lines of a --help (main.c takes the options out
 * for every subcommand, window.h); commands whose window means more say
 * it in their own words, in the same form. */
#define WINDOW_HELP                                                        \
    "  --offset N, --length N   the store is the window [N, N+length) of\n" \
    "                   each image file (N:N:... one value per image)\n"
/* The --help line of every subcommand. */
#define HELP_HELP "  -h, --help       print this help and exit\n"

/* 1: c was --wait or --no-wait and is applied; 0: c is another option;
 * -1: a bad value (the usage error is printed). */
int lock_wait_opt(const char *cmd, int c, const char *arg);

/* Parse a KEY argument in the given form. Prints the reason and returns
 * EKV_EINVAL for an argument that is no key in that form. */
int key_arg_parse(const char *arg, enum key_form form, key_arg *k);

/*
 * Check the key against the store: a shortened name is looked up among the
 * store's keys (EKV_ENOENT if none has it), a key longer than the block
 * size allows gets EKV_ENAMETOOLONG. Prints nothing.
 */
int key_arg_resolve(ekv_store *s, key_arg *k);

/* Print the error of key_arg_resolve or of an operation on key k as one
 * line "embedkvfs CMD: KEY: message", with a hint when a raw key that does
 * not exist is the escaped name of one that does. */
void key_error(const char *cmd, ekv_store *s, const key_arg *k, int err);
/* If an image's file failed a read, write or flush (device_error_text),
 * print "embedkvfs CMD: NAME: cannot write the image PATH: reason" and
 * return 1: that is the cause of the store call's error. Else 0. */
int key_device_error(const char *cmd, const images *im, const key_arg *k);

void key_arg_free(key_arg *k);

/* One key of a store, for listings. */
typedef struct key_item {
    uint8_t *key;
    size_t len;
    uint32_t value_size, generation;
    uint32_t replicas, stale; /* as in ekv_key_info */
} key_item;

/* Every key of s, sorted bytewise (a shorter key before its extensions).
 * Returns 0 or EKV_ENOMEM. */
int keys_collect(ekv_store *s, key_item **out, size_t *n);
void keys_free(key_item *items, size_t n);

/* Write s[0..len) as a JSON string (with quotes). Control characters are
 * escaped; bytes that are not valid UTF-8 (possible only in image paths:
 * key names are always valid UTF-8) become U+FFFD. */
void json_str(FILE *f, const char *s, size_t len);
static inline void json_cstr(FILE *f, const char *s)
{
    json_str(f, s, strlen(s));
}
/* Write bytes as a JSON string of lower-case hex digits. */
void json_hex(FILE *f, const uint8_t *b, size_t len);

/* Flush stdout and report a write error (EPIPE, ENOSPC on a redirect) as
 * "embedkvfs CMD: standard output: reason". Returns 0 or EXIT_IO. */
int finish_stdout(const char *cmd);
/* ', "state": WORD, "state_detail": WHY' of a replica in --json output
 * (null for an empty why). */
void json_state(const char *word, const char *why);
/* rc, or EXIT_IO when the store was read with blocks missing from every
 * replica (view_lacks_blocks) and rc would pass the view for a whole
 * one: a success, or "no such key". Says why on stderr. */
int view_exit(const char *cmd, int rc);

#endif
