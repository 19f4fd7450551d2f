/*
 * window.h - the partition window of every subcommand: `--offset LIST`
 * and `--length LIST` (and mount's `-o offset=LIST,length=LIST`) say where
 * in each image file the store lies. LIST is one number (for every image)
 * or one number per image separated by ':' or ',' in the order the images
 * are named, so two replicas inside one dump are
 *     embedkvfs ls --offset 0x10000:0x20000 dump.bin dump.bin
 * A length of 0 (the default) is what the header at the offset says.
 * Numbers go through parse_number().
 */
#ifndef EKVFS_WINDOW_H
#define EKVFS_WINDOW_H

#include <stdint.h>

#include "embedkv.h"

typedef struct img_window {
    uint64_t offset;
    uint64_t length; /* 0: from the header at offset */
    int set;         /* an --offset or --length applies to this image */
} img_window;

/*
 * Take --offset/--length (as "--offset N", "--offset=N", the same for
 * --length) out of argv[1..] up to a "--", so that every subcommand
 * accepts them wherever options go. Returns 0, or prints the reason and
 * returns EXIT_USAGE.
 */
int window_take_args(const char *cmd, int *argc, char **argv);

/* Set the lists from text (mount -o offset=, length=). Returns 0 or -1
 * after printing the reason. */
int window_set(const char *cmd, const char *what, const char *list);

/* The window of image i (an all-zero window when none was given). */
img_window window_for(unsigned i);

/* For commands that open several stores (diff): the next images_open
 * takes the values from index base on, of total values in all. */
void window_group(unsigned base, unsigned total);

/* Whether any window was given. */
int window_given(void);

/* Check that lists of several numbers name exactly n images. 0, or prints
 * and returns EXIT_USAGE. */
int window_check_count(const char *cmd, unsigned n);

/* Whether [a, a+alen) and [b, b+blen) overlap (a length 0 is "to the end
 * of the file"). */
int windows_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);

#endif
