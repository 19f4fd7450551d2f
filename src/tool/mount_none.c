/* mount_none.c - cmd_mount for builds without libfuse3. */
#include "commands.h"
#include "common.h"

int cmd_mount(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: mount: this build has no FUSE support "
                    "(rebuild with libfuse3-dev installed)\n", PROG);
    return EXIT_ERR;
}
