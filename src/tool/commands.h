/* commands.h - the subcommands of embedkvfs; each takes the arguments
 * after its name (argv[0] is the subcommand) and returns an exit code. */
#ifndef EKVFS_COMMANDS_H
#define EKVFS_COMMANDS_H

int cmd_mount(int argc, char **argv);
int cmd_format(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_locate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif
