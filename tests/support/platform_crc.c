/*
 * platform_crc.c - what a platform built with EKV_CRC_EXTERN supplies:
 * ekv_crc32() itself, here a bit-at-a-time loop standing in for a
 * hardware CRC unit or a ROM routine (no table, nothing shared with the
 * core). platform_crc_calls counts the calls, so a test can tell that the
 * core used it.
 */
#include "embedkv.h"

unsigned long platform_crc_calls;

uint32_t ekv_crc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    platform_crc_calls++;
    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}
