/* cli.c - the script subcommands (format, ls, get, put, rm, check, repair,
 * dump). */
#include "commands.h"
#include "common.h"

static int not_yet(const char *what)
{
    fprintf(stderr, "%s: %s: not implemented yet\n", PROG, what);
    return EXIT_ERR;
}

int cmd_format(int argc, char **argv) { (void)argc; (void)argv; return not_yet("format"); }
int cmd_ls(int argc, char **argv) { (void)argc; (void)argv; return not_yet("ls"); }
int cmd_get(int argc, char **argv) { (void)argc; (void)argv; return not_yet("get"); }
int cmd_put(int argc, char **argv) { (void)argc; (void)argv; return not_yet("put"); }
int cmd_rm(int argc, char **argv) { (void)argc; (void)argv; return not_yet("rm"); }
int cmd_check(int argc, char **argv) { (void)argc; (void)argv; return not_yet("check"); }
int cmd_repair(int argc, char **argv) { (void)argc; (void)argv; return not_yet("repair"); }
int cmd_dump(int argc, char **argv) { (void)argc; (void)argv; return not_yet("dump"); }
