/*
 * The v1.0 block layout (FORMAT.md): the storage header and its
 * validation, the arithmetic of how many blocks a record takes, ekv_format,
 * and ekv_block_decode on every kind of block an image can hold.
 */
#include "helpers.h"

#define BS 256u
#define BC 16u

/* ---- storage header ----------------------------------------------------- */

START_TEST(header_encode_puts_fields_at_documented_offsets)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 7, 9, 0);
    ck_assert_uint_eq(h[0], 0x01);
    ck_assert_mem_eq(h + 1, "EKV", 3);
    ck_assert_uint_eq(get_le16(h + 4), 1);
    ck_assert_uint_eq(get_le16(h + 6), 0);
    ck_assert_uint_eq(get_le32(h + 8), BS);
    ck_assert_uint_eq(get_le32(h + 12), BC);
    ck_assert_uint_eq(get_le32(h + 16), 7);
    ck_assert_uint_eq(get_le32(h + 20), 9);
    ck_assert_uint_eq(get_le32(h + 24), 0);
    for (uint32_t i = 28; i < BS - 4; i++)
        ck_assert_uint_eq(h[i], 0);
    /* CRC over the block with its own 4 bytes as zero. */
    uint8_t z[BS];
    memcpy(z, h, BS);
    memset(z + BS - 4, 0, 4);
    ck_assert_uint_eq(get_le32(h + BS - 4), ekv_crc32(0, z, BS));
}
END_TEST

START_TEST(encoded_header_validates_against_its_device)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    ck_assert_int_eq(header_validate(h, BS, BC), 0);
}
END_TEST

START_TEST(header_with_wrong_type_byte_is_ebadhdr)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    h[0] = 0x02;
    block_seal(h, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
}
END_TEST

START_TEST(header_with_wrong_magic_is_ebadhdr)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    h[2] = 'X';
    block_seal(h, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
}
END_TEST

START_TEST(header_with_bad_crc_is_ebadhdr)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    h[16] ^= 0x01; /* replica_id changed, CRC not updated */
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
    header_encode(h, BS, BC, 0, 0, 0);
    h[BS - 1] ^= 0x80; /* the CRC itself damaged */
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
}
END_TEST

START_TEST(zero_filled_and_erased_blocks_are_not_headers)
{
    uint8_t h[BS];
    memset(h, 0x00, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
    memset(h, 0xff, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EBADHDR);
}
END_TEST

START_TEST(header_major_2_with_valid_crc_is_eversion)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    put_le16(h + HDR_VMAJOR, 2);
    block_seal(h, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EVERSION);
    put_le16(h + HDR_VMAJOR, 0);
    block_seal(h, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EVERSION);
}
END_TEST

START_TEST(header_with_newer_minor_version_is_accepted)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    put_le16(h + HDR_VMINOR, 5);
    block_seal(h, BS);
    ck_assert_int_eq(header_validate(h, BS, BC), 0);
}
END_TEST

START_TEST(header_block_count_other_than_device_is_edom)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    ck_assert_int_eq(header_validate(h, BS, BC + 1), EKV_EDOM);
    ck_assert_int_eq(header_validate(h, BS, BC - 1), EKV_EDOM);
}
END_TEST

START_TEST(header_block_size_other_than_device_is_edom)
{
    /* A 512-byte header read from a device of 256-byte blocks. */
    uint8_t h[512];
    header_encode(h, 512, BC, 0, 0, 0);
    ck_assert_int_eq(header_validate(h, BS, BC), EKV_EDOM);
}
END_TEST

START_TEST(header_with_zero_block_count_is_edom)
{
    uint8_t h[BS];
    header_encode(h, BS, 0, 0, 0, 0);
    ck_assert_int_eq(header_validate(h, BS, 0), EKV_EDOM);
}
END_TEST

START_TEST(block_sizes_from_64_to_65536_are_supported)
{
    ck_assert(!geometry_supported(0, 1));
    ck_assert(!geometry_supported(36, 1));
    ck_assert(!geometry_supported(63, 1));
    ck_assert(geometry_supported(64, 1));
    ck_assert(geometry_supported(256, 1));
    ck_assert(geometry_supported(4096, 1));
    ck_assert(geometry_supported(65536, 1));
    ck_assert(!geometry_supported(65537, 1));
    ck_assert(!geometry_supported(256, 0));
}
END_TEST

START_TEST(header_declaring_unsupported_block_size_is_edom)
{
    /* A well-formed header for 32-byte blocks, read with 32-byte blocks:
     * the CRC is right, the geometry is not one we support. */
    uint8_t h[32];
    memset(h, 0, sizeof(h));
    h[0] = 0x01;
    memcpy(h + 1, "EKV", 3);
    put_le16(h + 4, 1);
    put_le32(h + 8, 32);
    put_le32(h + 12, 4);
    block_seal(h, 32);
    ck_assert_int_eq(header_validate(h, 32, 4), EKV_EDOM);
}
END_TEST

/* ---- ekv_format and ekv_read_header ------------------------------------- */

START_TEST(format_writes_block_0_only_and_flushes)
{
    simdev *sd = sim_new(BS, BC, 0xAA);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ck_assert_uint_eq(sd->writes, 1);
    ck_assert_uint_ge(sd->flushes, 1);
    for (uint32_t b = 1; b < BC; b++)
        ck_assert(block_is_filled(sd, b, 0xAA));
    ck_assert_int_eq(header_validate(sim_block(sd, 0), BS, BC), 0);
    /* Durable: what a power cut keeps. */
    ck_assert_mem_eq(sd->durable, sd->cache, BS);
    sim_free(sd);
}
END_TEST

START_TEST(format_numbers_replicas_from_base_with_one_format_seq)
{
    simdev *sd[3];
    ekv_device *d[3];
    for (int i = 0; i < 3; i++) {
        sd[i] = sim_new(BS, BC, 0);
        d[i] = &sd[i]->dev;
    }
    ekv_format_options fo = {.replica_id_base = 40, .format_seq = 3};
    ck_assert_int_eq(ekv_format(d, 3, &fo), 0);
    for (int i = 0; i < 3; i++) {
        ekv_block_info bi;
        ck_assert_int_eq(ekv_read_header(d[i], &bi), 0);
        ck_assert_uint_eq(bi.replica_id, 40u + (uint32_t)i);
        ck_assert_uint_eq(bi.format_seq, 3);
        sim_free(sd[i]);
    }
}
END_TEST

START_TEST(format_defaults_are_replica_0_and_seq_0)
{
    simdev *sd = sim_new(BS, BC, 0);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    ck_assert_uint_eq(get_le32(sim_block(sd, 0) + HDR_REPLICA_ID), 0);
    ck_assert_uint_eq(get_le32(sim_block(sd, 0) + HDR_FORMAT_SEQ), 0);
    sim_free(sd);
}
END_TEST

START_TEST(format_with_erase_data_fills_every_data_block)
{
    simdev *sd = sim_new(BS, BC, 0x5A);
    ekv_device *d = &sd->dev;
    ekv_format_options fo = {.erase_byte = 0xff, .erase_data = 1};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), 0);
    for (uint32_t b = 1; b < BC; b++)
        ck_assert(block_is_filled(sd, b, 0xff));
    sim_free(sd);
}
END_TEST

START_TEST(format_of_replicas_with_different_geometry_is_edom)
{
    simdev *a = sim_new(BS, BC, 0), *b = sim_new(BS, BC + 1, 0);
    ekv_device *d[2] = {&a->dev, &b->dev};
    ck_assert_int_eq(ekv_format(d, 2, NULL), EKV_EDOM);
    ck_assert_uint_eq(a->writes + b->writes, 0);
    sim_free(a);
    sim_free(b);
}
END_TEST

START_TEST(format_of_unsupported_block_size_is_edom)
{
    simdev *a = sim_new(32, BC, 0);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), EKV_EDOM);
    ck_assert_uint_eq(a->writes, 0);
    sim_free(a);
}
END_TEST

START_TEST(format_of_read_only_device_is_erofs)
{
    simdev *a = sim_new(BS, BC, 0);
    a->readonly = 1;
    sim_reset_faults(a);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), EKV_EROFS);
    sim_free(a);
}
END_TEST

START_TEST(format_rejects_bad_arguments)
{
    simdev *a = sim_new(BS, BC, 0);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(NULL, 1, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_format(&d, 0, NULL), EKV_EINVAL);
    ck_assert_int_eq(ekv_format(&d, EKV_MAX_REPLICAS + 1, NULL), EKV_EINVAL);
    ekv_format_options fo = {.erase_byte = 0x11, .erase_data = 1};
    ck_assert_int_eq(ekv_format(&d, 1, &fo), EKV_EINVAL);
    ck_assert_uint_eq(a->writes, 0);
    sim_free(a);
}
END_TEST

START_TEST(read_header_decodes_even_an_invalid_header)
{
    simdev *a = sim_new(BS, BC, 0);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    /* Major 3, sealed: the fields decode, the validation refuses. */
    put_le16(sim_block(a, 0) + HDR_VMAJOR, 3);
    block_seal(sim_block(a, 0), BS);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_read_header(d, &bi), EKV_EVERSION);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_HEADER);
    ck_assert_uint_eq(bi.version_major, 3);
    ck_assert_uint_eq(bi.block_count, BC);
    sim_free(a);
}
END_TEST

START_TEST(read_header_of_blank_device_is_ebadhdr)
{
    simdev *a = sim_new(BS, BC, 0);
    ekv_device *d = &a->dev;
    ekv_block_info bi;
    ck_assert_int_eq(ekv_read_header(d, &bi), EKV_EBADHDR);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
    sim_free(a);
}
END_TEST

START_TEST(read_header_of_shorter_device_is_edom)
{
    /* The image says 16 blocks, the device has 12 (a truncated file). */
    simdev *a = sim_new(BS, BC, 0);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    simdev *b = sim_from(sim_image(a), BS, 12);
    ekv_device *db = &b->dev;
    ck_assert_int_eq(ekv_read_header(db, NULL), EKV_EDOM);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &db, 1, NULL), EKV_EDOM);
    ck_assert_ptr_null(s);
    sim_free(a);
    sim_free(b);
}
END_TEST

START_TEST(read_header_failure_of_device_is_passed_through)
{
    simdev *a = sim_new(BS, BC, 0);
    ekv_device *d = &a->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    a->bad_block = 0;
    ck_assert_int_eq(ekv_read_header(d, NULL), EKV_EIO);
    sim_free(a);
}
END_TEST

/* ---- record_blocks ------------------------------------------------------ */

START_TEST(record_blocks_counts_descriptor_then_chunks)
{
    /* 256-byte blocks, 5-byte key: first payload 215, chunk payload 232. */
    const uint32_t first = BS - 32 - 5 - 4, per = BS - 20 - 4;
    ck_assert_uint_eq(first_capacity(BS, 5), 215);
    ck_assert_uint_eq(chunk_capacity(BS), 232);
    ck_assert_uint_eq(record_blocks(BS, 5, 0), 1);
    ck_assert_uint_eq(record_blocks(BS, 5, 1), 1);
    ck_assert_uint_eq(record_blocks(BS, 5, first), 1);
    ck_assert_uint_eq(record_blocks(BS, 5, first + 1), 2);
    ck_assert_uint_eq(record_blocks(BS, 5, first + per), 2);
    ck_assert_uint_eq(record_blocks(BS, 5, first + per + 1), 3);
    ck_assert_uint_eq(record_blocks(BS, 5, first + 10 * per), 11);
    ck_assert_uint_eq(record_blocks(BS, 5, first + 10 * per + 1), 12);
}
END_TEST

START_TEST(record_blocks_of_longest_key_leaves_no_first_payload)
{
    const uint32_t kmax = EKV_MAX_KEY_SIZE(BS);
    ck_assert_uint_eq(kmax, 220);
    ck_assert_uint_eq(first_capacity(BS, kmax), 0);
    ck_assert_uint_eq(record_blocks(BS, kmax, 0), 1);
    ck_assert_uint_eq(record_blocks(BS, kmax, 1), 2);
    ck_assert_uint_eq(record_blocks(BS, kmax, chunk_capacity(BS)), 2);
}
END_TEST

START_TEST(record_blocks_does_not_overflow_for_huge_values)
{
    /* 64-byte blocks hold 40 value bytes per chunk: 4 GiB needs about
     * 107 million blocks, still a u64 count. */
    uint64_t n = record_blocks(64, 0, 0xffffffffu);
    ck_assert_uint_eq(n, 1 + (0xffffffffull - 28 + 39) / 40);
    ck_assert_uint_eq(record_blocks(65536, 0, 65500), 1);
}
END_TEST

/* ---- ekv_block_decode --------------------------------------------------- */

START_TEST(decode_zero_filled_block_is_free)
{
    uint8_t b[BS];
    memset(b, 0, BS);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
    ck_assert_uint_eq(bi.type_byte, 0);
    ck_assert_int_eq(bi.crc_ok, 0);
}
END_TEST

START_TEST(decode_erased_ff_block_is_free)
{
    uint8_t b[BS];
    memset(b, 0xff, BS);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
    ck_assert_uint_eq(bi.type_byte, 0xff);
}
END_TEST

START_TEST(decode_free_first_byte_with_junk_after_it_is_free)
{
    /* A half-erased block: the first byte decides. */
    uint8_t b[BS];
    memset(b, 0x37, BS);
    b[0] = 0xff;
    ekv_block_info bi;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
    b[0] = 0x00;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
}
END_TEST

START_TEST(decode_header_block)
{
    uint8_t b[BS];
    header_encode(b, BS, 1000, 2, 5, 0);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_HEADER);
    ck_assert_int_eq(bi.crc_ok, 1);
    ck_assert_uint_eq(bi.crc_stored, bi.crc_computed);
    ck_assert_uint_eq(bi.version_major, 1);
    ck_assert_uint_eq(bi.version_minor, 0);
    ck_assert_uint_eq(bi.block_size, BS);
    ck_assert_uint_eq(bi.block_count, 1000);
    ck_assert_uint_eq(bi.replica_id, 2);
    ck_assert_uint_eq(bi.format_seq, 5);
    ck_assert_uint_eq(bi.key_size, 0);
    ck_assert_ptr_null(bi.key);
}
END_TEST

START_TEST(decode_descriptor_block)
{
    uint8_t b[BS], v[217];
    fill_pattern(v, sizeof(v), 1);
    craft_desc(b, BS, "key", 3, 42, 500, 217, 3, 9, v);
    put_le32(b + DESC_USER_FLAGS, 0xC0FFEEu);
    block_seal(b, BS);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_DESCRIPTOR);
    ck_assert_uint_eq(bi.type_byte, 2);
    ck_assert_uint_eq(bi.header_size, 32);
    ck_assert_uint_eq(bi.key_size, 3);
    ck_assert_ptr_eq(bi.key, b + 32);
    ck_assert_mem_eq(bi.key, "key", 3);
    ck_assert_uint_eq(bi.generation, 42);
    ck_assert_uint_eq(bi.total_size, 500);
    ck_assert_uint_eq(bi.payload_size, 217);
    ck_assert_uint_eq(bi.chunk_count, 3);
    ck_assert_uint_eq(bi.next_chunk, 9);
    ck_assert_uint_eq(bi.user_flags, 0xC0FFEEu);
    ck_assert_uint_eq(bi.block_count, 0);
}
END_TEST

START_TEST(decode_descriptor_with_oversized_key_has_no_key_pointer)
{
    uint8_t b[BS], k[BS];
    memset(k, 'k', sizeof(k));
    craft_desc(b, BS, k, (uint16_t)(EKV_MAX_KEY_SIZE(BS) + 1), 1, 0, 0, 1,
               EKV_BLOCK_NONE, NULL);
    ekv_block_info bi;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_DESCRIPTOR);
    ck_assert_ptr_null(bi.key);
    craft_desc(b, BS, k, (uint16_t)EKV_MAX_KEY_SIZE(BS), 1, 0, 0, 1,
               EKV_BLOCK_NONE, NULL);
    ekv_block_decode(b, BS, &bi);
    ck_assert_ptr_nonnull(bi.key);
}
END_TEST

START_TEST(decode_chunk_block)
{
    uint8_t b[BS];
    craft_chunk(b, BS, 4, 2, 100, EKV_BLOCK_NONE, NULL);
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_CHUNK);
    ck_assert_uint_eq(bi.header_size, 20);
    ck_assert_uint_eq(bi.owner, 4);
    ck_assert_uint_eq(bi.chunk_index, 2);
    ck_assert_uint_eq(bi.payload_size, 100);
    ck_assert_uint_eq(bi.next_chunk, EKV_BLOCK_NONE);
    ck_assert_uint_eq(bi.generation, 0);
}
END_TEST

START_TEST(decode_typed_block_with_bad_crc_is_garbage)
{
    uint8_t b[BS];
    ekv_block_info bi;
    craft_desc(b, BS, "k", 1, 1, 1, 1, 1, EKV_BLOCK_NONE, "v");
    b[40] ^= 0x10;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_GARBAGE);
    ck_assert_int_eq(bi.crc_ok, 0);
    ck_assert_uint_ne(bi.crc_stored, bi.crc_computed);
    ck_assert_uint_eq(bi.type_byte, 2);

    craft_chunk(b, BS, 1, 1, 1, EKV_BLOCK_NONE, "x");
    b[BS - 2] ^= 1;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_GARBAGE);

    header_encode(b, BS, BC, 0, 0, 0);
    b[12] ^= 1;
    ekv_block_decode(b, BS, &bi);
    ck_assert_int_eq(bi.kind, EKV_BLOCK_GARBAGE);
}
END_TEST

START_TEST(decode_unknown_type_is_garbage_even_with_valid_crc)
{
    uint8_t b[BS];
    ekv_block_info bi;
    for (unsigned t = 0x04; t < 0xff; t++) {
        memset(b, 0, BS);
        b[0] = (uint8_t)t;
        block_seal(b, BS);
        ekv_block_decode(b, BS, &bi);
        ck_assert_int_eq(bi.kind, EKV_BLOCK_GARBAGE);
        ck_assert_uint_eq(bi.type_byte, t);
    }
}
END_TEST

START_TEST(decode_random_bytes_is_garbage_or_free_by_first_byte)
{
    uint8_t b[BS];
    uint64_t seed = 1;
    ekv_block_info bi;
    for (int n = 0; n < 2000; n++) {
        for (uint32_t i = 0; i < BS; i++)
            b[i] = (uint8_t)test_rand(&seed);
        ck_assert_int_eq(ekv_block_decode(b, BS, &bi), 0);
        if (b[0] == 0x00 || b[0] == 0xff)
            ck_assert_int_eq(bi.kind, EKV_BLOCK_FREE);
        else /* types 1..3 too: a random CRC is right once in 2^32 */
            ck_assert_int_eq(bi.kind, EKV_BLOCK_GARBAGE);
    }
}
END_TEST

START_TEST(decode_rejects_blocks_too_small_for_a_descriptor)
{
    uint8_t b[64] = {0};
    ekv_block_info bi;
    ck_assert_int_eq(ekv_block_decode(b, 35, &bi), EKV_EINVAL);
    ck_assert_int_eq(ekv_block_decode(b, 36, &bi), 0);
    ck_assert_int_eq(ekv_block_decode(NULL, 64, &bi), EKV_EINVAL);
    ck_assert_int_eq(ekv_block_decode(b, 64, NULL), EKV_EINVAL);
}
END_TEST

START_TEST(strerror_names_every_code)
{
    const int codes[] = {EKV_OK, EKV_ENOENT, EKV_EIO, EKV_ENOMEM,
                         EKV_EBUSY, EKV_EINVAL, EKV_EFBIG, EKV_ENOSPC,
                         EKV_EROFS, EKV_EDOM, EKV_ERANGE, EKV_ENAMETOOLONG,
                         EKV_EBADHDR, EKV_ECORRUPT, EKV_EVERSION};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *m = ekv_strerror(codes[i]);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_ne(m, "unknown error");
    }
    ck_assert_ptr_nonnull(ekv_strerror(-9999));
    ck_assert_ptr_nonnull(ekv_strerror(12345));
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("format");
    TCase *tc = tcase_create("header");
    tcase_add_test(tc, header_encode_puts_fields_at_documented_offsets);
    tcase_add_test(tc, encoded_header_validates_against_its_device);
    tcase_add_test(tc, header_with_wrong_type_byte_is_ebadhdr);
    tcase_add_test(tc, header_with_wrong_magic_is_ebadhdr);
    tcase_add_test(tc, header_with_bad_crc_is_ebadhdr);
    tcase_add_test(tc, zero_filled_and_erased_blocks_are_not_headers);
    tcase_add_test(tc, header_major_2_with_valid_crc_is_eversion);
    tcase_add_test(tc, header_with_newer_minor_version_is_accepted);
    tcase_add_test(tc, header_block_count_other_than_device_is_edom);
    tcase_add_test(tc, header_block_size_other_than_device_is_edom);
    tcase_add_test(tc, header_with_zero_block_count_is_edom);
    tcase_add_test(tc, block_sizes_from_64_to_65536_are_supported);
    tcase_add_test(tc, header_declaring_unsupported_block_size_is_edom);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, format_writes_block_0_only_and_flushes);
    tcase_add_test(tc, format_numbers_replicas_from_base_with_one_format_seq);
    tcase_add_test(tc, format_defaults_are_replica_0_and_seq_0);
    tcase_add_test(tc, format_with_erase_data_fills_every_data_block);
    tcase_add_test(tc, format_of_replicas_with_different_geometry_is_edom);
    tcase_add_test(tc, format_of_unsupported_block_size_is_edom);
    tcase_add_test(tc, format_of_read_only_device_is_erofs);
    tcase_add_test(tc, format_rejects_bad_arguments);
    tcase_add_test(tc, read_header_decodes_even_an_invalid_header);
    tcase_add_test(tc, read_header_of_blank_device_is_ebadhdr);
    tcase_add_test(tc, read_header_of_shorter_device_is_edom);
    tcase_add_test(tc, read_header_failure_of_device_is_passed_through);
    suite_add_tcase(s, tc);

    tc = tcase_create("record_blocks");
    tcase_add_test(tc, record_blocks_counts_descriptor_then_chunks);
    tcase_add_test(tc, record_blocks_of_longest_key_leaves_no_first_payload);
    tcase_add_test(tc, record_blocks_does_not_overflow_for_huge_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode");
    tcase_add_test(tc, decode_zero_filled_block_is_free);
    tcase_add_test(tc, decode_erased_ff_block_is_free);
    tcase_add_test(tc, decode_free_first_byte_with_junk_after_it_is_free);
    tcase_add_test(tc, decode_header_block);
    tcase_add_test(tc, decode_descriptor_block);
    tcase_add_test(tc, decode_descriptor_with_oversized_key_has_no_key_pointer);
    tcase_add_test(tc, decode_chunk_block);
    tcase_add_test(tc, decode_typed_block_with_bad_crc_is_garbage);
    tcase_add_test(tc, decode_unknown_type_is_garbage_even_with_valid_crc);
    tcase_add_test(tc, decode_random_bytes_is_garbage_or_free_by_first_byte);
    tcase_add_test(tc, decode_rejects_blocks_too_small_for_a_descriptor);
    tcase_add_test(tc, strerror_names_every_code);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
