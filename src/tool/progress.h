/*
 * progress.h - a progress line on stderr for commands that run for more
 * than about a second (format with erase, import, repair, locate), shown
 * only when stderr is a terminal and only once a second has passed; it is
 * erased when the work is done. Nothing is printed otherwise.
 */
#ifndef EKVFS_PROGRESS_H
#define EKVFS_PROGRESS_H

#include <stdint.h>

#include "embedkv.h"

void progress_begin(const char *label, uint64_t total);
void progress_step(uint64_t done);
void progress_end(void);

/* Count the block writes of devs[0..n) as progress steps (for work done
 * inside one library call, e.g. ekv_format's erase). Call
 * progress_unhook() before the devices are closed. */
void progress_hook(ekv_device *const devs[], unsigned n);
void progress_unhook(void);

#endif
