/*
 * gen_fixtures - write (or compare) the reference images built by
 * libembedkv.
 *   gen_fixtures --write DIR     write DIR/<fixture> files
 *   gen_fixtures --compare DIR   exit 1 unless every DIR/<fixture> is
 *                                byte-identical to what we build
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "--write") && strcmp(argv[1], "--compare"))) {
        fprintf(stderr, "usage: gen_fixtures --write|--compare DIR\n");
        return 2;
    }
    int write = strcmp(argv[1], "--write") == 0;
    int bad = 0;
    for (size_t i = 0; i < fixture_count; i++) {
        char path[4096];
        size_t len = (size_t)fixtures[i].block_count * 256;
        uint8_t *img = fixture_build(i);
        if (!img) {
            fprintf(stderr, "gen_fixtures: cannot build %s\n", fixtures[i].path);
            return 1;
        }
        snprintf(path, sizeof(path), "%s/%s", argv[2], fixtures[i].path);
        if (write) {
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s/recovery", argv[2]);
            mkdir(argv[2], 0755);
            mkdir(dir, 0755);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(img, 1, len, f) != len || fclose(f) != 0) {
                fprintf(stderr, "gen_fixtures: cannot write %s\n", path);
                return 1;
            }
            printf("wrote %s\n", path);
        } else {
            size_t have = 0;
            uint8_t *ref = read_file(path, &have);
            if (!ref || have != len || memcmp(ref, img, len) != 0) {
                fprintf(stderr, "gen_fixtures: %s differs from what libembedkv builds\n", path);
                bad = 1;
            } else {
                printf("identical: %s\n", path);
            }
            free(ref);
        }
        free(img);
    }
    return bad;
}
