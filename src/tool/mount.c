/* mount.c - the FUSE daemon. */
#include "commands.h"
#include "common.h"

int cmd_mount(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: mount: not implemented yet\n", PROG);
    return EXIT_ERR;
}
