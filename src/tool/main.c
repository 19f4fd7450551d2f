/*
 * main.c - embedkvfs: mount embedkv replica images with FUSE, or work on
 * them from scripts with subcommands. See embedkvfs(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "window.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} commands[] = {
    {"mount", cmd_mount, "mount [-f] [-d] [-s] [-o OPTS] IMAGE... MOUNTPOINT"},
    {"format", cmd_format,
     "format [--block-size N] [--blocks N | --size BYTES] [--erase-byte 00|ff | --keep-data] [--force] [--from SOURCE] IMAGE..."},
    {"ls", cmd_ls, "ls [-l] [--json] IMAGE..."},
    {"get", cmd_get, "get [-e | -x] IMAGE... KEY"},
    {"put", cmd_put, "put [-e | -x] [--file F] IMAGE... KEY"},
    {"rm", cmd_rm, "rm [-e | -x] IMAGE... KEY"},
    {"check", cmd_check, "check [--json] IMAGE..."},
    {"repair", cmd_repair, "repair [--force] [--json] IMAGE..."},
    {"dump", cmd_dump, "dump [--json] [--block-size N] IMAGE"},
    {"locate", cmd_locate, "locate [--json] FILE"},
    {"export", cmd_export, "export IMAGE..."},
    {"import", cmd_import, "import [--replace] [-f FILE] IMAGE..."},
    {"extract", cmd_extract, "extract [--force] IMAGE... DIR"},
    {"diff", cmd_diff, "diff [--json] A[,A...] B[,B...]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: %s COMMAND [ARGS]\n\ncommands:\n", PROG);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %s %s\n", PROG, commands[i].usage);
    fprintf(f, "\nEvery command takes --offset N and --length N: the store "
               "is that window\nof each image file (N:N:... for one value "
               "per image).\n");
    fprintf(f, "\n'%s COMMAND --help' tells more; man embedkvfs tells all.\n",
            PROG);
}

/*
 * A standard stream the caller closed (`cmd <&-`, a daemon's cron job)
 * leaves its descriptor free, and the next open() (an image) would take
 * it: a message or a value read from stdin would then go to or come from
 * the image. Fill each such slot with /dev/null opened the wrong way
 * round, so that the slot is taken and the stream still fails (EBADF) as
 * a closed one does: `put` with stdin closed fails instead of storing
 * nothing, `get` with stdout closed reports a write error.
 */
static void hold_closed_streams(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int got = open("/dev/null", (fd == 0 ? O_WRONLY : O_RDONLY));
        if (got != fd) {
            /* No /dev/null, or the slot went elsewhere: better no command
             * than one that may write its messages into an image. */
            if (got >= 0)
                close(got);
            _exit(EXIT_USAGE);
        }
    }
}

int main(int argc, char **argv)
{
    hold_closed_streams();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("%s %s (libembedkv %s, format %d.%d)\n", PROG,
               EKV_LIB_VERSION_STRING, EKV_LIB_VERSION_STRING,
               EKV_FORMAT_VERSION_MAJOR, EKV_FORMAT_VERSION_MINOR);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name)) {
            /* --offset/--length: the partition window, for every command
             * (window.h). */
            int sub_argc = argc - 1;
            if (window_take_args(argv[1], &sub_argc, argv + 1))
                return EXIT_USAGE;
            return commands[i].fn(sub_argc, argv + 1);
        }
    fprintf(stderr, "%s: unknown command '%s'\n", PROG, argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
