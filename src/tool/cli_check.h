/* cli_check.h - what check (cli_check.c) and repair (cli_repair.c)
 * share. */
#ifndef EKVFS_CLI_CHECK_H
#define EKVFS_CLI_CHECK_H

#include "embedkv.h"

/* Whether an open error of a replica is a judgement on its content (a bad
 * or stale header, an unknown version, geometry that does not fit, another
 * store's replica) rather than operational (it cannot be opened or read). */
static inline int is_content_error(int err)
{
    return err == EKV_EBADHDR || err == EKV_EDOM || err == EKV_EVERSION ||
           err == EKV_ESTALE || err == EKV_ENOTUNIQ;
}

#endif
