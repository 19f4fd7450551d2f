/*
 * Recovery (FORMAT.md "Recovery" and "A record is complete only if"):
 * writable recovery erases garbage, orphan chunks, stale and incomplete
 * records and keeps the newest complete record of every key; read-only
 * recovery skips the same blocks and leaves every byte as it was.
 *
 * Incomplete records are made by hand, one broken rule at a time, over a
 * healthy image: key "k" has a complete generation-1 record at block 8
 * ("gen1") and a generation-2 record at blocks 1 (descriptor), 2 and 3
 * (chunks) holding 500 bytes. Each breaker damages the generation-2 record
 * in one way; recovery must then fall back to "gen1".
 *
 * Then power-loss sweeps: scripted operations (a new key, an update of a
 * multi-chunk value, a delete, and the same on two replicas) run with the
 * power cut after write N, for every N, with the cut block dropped or torn
 * in each way simdev knows, and unflushed writes kept in full or in part.
 * After the reboot every key holds its old or its new complete value, no
 * other key changed, and a put that returned 0 is there.
 */
#include <stdio.h>

#include "helpers.h"

#define BS 256u
#define BC 16u
#define GEN2_LEN 500u
/* Key "k": first payload 219, chunk payload 232: 219 + 232 + 49. */
#define FIRST 219u
#define C1 232u
#define C2 49u

static uint8_t gen2_value[GEN2_LEN];

static simdev *formatted(uint32_t bc, uint8_t fill)
{
    simdev *sd = sim_new(BS, bc, fill);
    ekv_device *d = &sd->dev;
    ck_assert_int_eq(ekv_format(&d, 1, NULL), 0);
    return sd;
}

static ekv_store *open_one(simdev *sd, uint32_t flags)
{
    ekv_device *d = &sd->dev;
    ekv_options o = {.flags = flags};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    return s;
}

static void poke_desc(simdev *sd, uint32_t b, const char *key, uint32_t gen,
                      uint32_t total, uint32_t first, uint32_t count,
                      uint32_t next, const void *payload)
{
    uint8_t blk[BS];
    craft_desc(blk, BS, key, (uint16_t)strlen(key), gen, total, first, count,
               next, payload);
    sim_poke(sd, b, blk);
}

static void poke_chunk(simdev *sd, uint32_t b, uint32_t owner, uint32_t idx,
                       uint32_t size, uint32_t next, const void *payload)
{
    uint8_t blk[BS];
    craft_chunk(blk, BS, owner, idx, size, next, payload);
    sim_poke(sd, b, blk);
}

/* Change a field of block b and seal it again. */
static void set32(simdev *sd, uint32_t b, uint32_t off, uint32_t v)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, b), BS);
    put_le32(blk + off, v);
    block_seal(blk, BS);
    sim_poke(sd, b, blk);
}

static void set8(simdev *sd, uint32_t b, uint32_t off, uint8_t v)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, b), BS);
    blk[off] = v;
    block_seal(blk, BS);
    sim_poke(sd, b, blk);
}

static void set16(simdev *sd, uint32_t b, uint32_t off, uint16_t v)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, b), BS);
    put_le16(blk + off, v);
    block_seal(blk, BS);
    sim_poke(sd, b, blk);
}

static void zero_block(simdev *sd, uint32_t b)
{
    uint8_t blk[BS] = {0};
    sim_poke(sd, b, blk);
}

/* The healthy image described at the top. */
static simdev *two_generations(void)
{
    simdev *sd = formatted(BC, 0);
    fill_pattern(gen2_value, GEN2_LEN, 22);
    poke_desc(sd, 1, "k", 2, GEN2_LEN, FIRST, 3, 2, gen2_value);
    poke_chunk(sd, 2, 1, 1, C1, 3, gen2_value + FIRST);
    poke_chunk(sd, 3, 1, 2, C2, EKV_BLOCK_NONE, gen2_value + FIRST + C1);
    poke_desc(sd, 8, "k", 1, 4, 4, 1, EKV_BLOCK_NONE, "gen1");
    return sd;
}

/* ---- the breakers ------------------------------------------------------- */

typedef struct breaker {
    const char *name;
    void (*apply)(simdev *sd);
} breaker;

static void chunk_owner_wrong(simdev *sd) { set32(sd, 2, CHUNK_OWNER, 7); }
static void chunk_owner_of_later_chunk_wrong(simdev *sd)
{
    set32(sd, 3, CHUNK_OWNER, 2);
}
static void chunk_indexes_swapped(simdev *sd)
{
    set32(sd, 2, CHUNK_INDEX, 2);
    set32(sd, 3, CHUNK_INDEX, 1);
}
static void chunk_index_skips(simdev *sd) { set32(sd, 3, CHUNK_INDEX, 3); }
static void chunk_index_zero(simdev *sd) { set32(sd, 2, CHUNK_INDEX, 0); }
static void desc_next_out_of_range(simdev *sd)
{
    set32(sd, 1, DESC_NEXT, BC);
}
static void chunk_next_out_of_range(simdev *sd)
{
    set32(sd, 2, CHUNK_NEXT, 1000000);
}
static void desc_next_is_header_block(simdev *sd)
{
    set32(sd, 1, DESC_NEXT, 0);
}
static void chain_cycles_back_to_a_chunk(simdev *sd)
{
    set32(sd, 1, DESC_CHUNK_COUNT, 5);
    set32(sd, 3, CHUNK_NEXT, 2);
}
static void chain_cycles_back_to_itself(simdev *sd)
{
    set32(sd, 1, DESC_CHUNK_COUNT, 4);
    set32(sd, 3, CHUNK_NEXT, 3);
}
static void chain_cycles_to_the_descriptor(simdev *sd)
{
    set32(sd, 1, DESC_CHUNK_COUNT, 4);
    set32(sd, 3, CHUNK_NEXT, 1);
}
static void count_larger_than_chain(simdev *sd)
{
    set32(sd, 1, DESC_CHUNK_COUNT, 4);
}
static void count_smaller_than_chain(simdev *sd)
{
    /* Two blocks counted, sizes adding up for two: the chain goes on. */
    set32(sd, 1, DESC_CHUNK_COUNT, 2);
    set32(sd, 1, DESC_TOTAL_SIZE, FIRST + C1);
}
static void sizes_add_up_to_more(simdev *sd)
{
    set32(sd, 1, DESC_TOTAL_SIZE, GEN2_LEN - 1);
}
static void sizes_add_up_to_less(simdev *sd)
{
    set32(sd, 1, DESC_TOTAL_SIZE, GEN2_LEN + 1);
}
static void desc_header_size_wrong(simdev *sd)
{
    set8(sd, 1, DESC_HEADER_SIZE, 31);
}
static void chunk_header_size_wrong(simdev *sd)
{
    set8(sd, 2, CHUNK_HEADER_SIZE, 24);
}
static void chunk_crc_wrong(simdev *sd)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, 3), BS);
    blk[30] ^= 0x08;
    sim_poke(sd, 3, blk);
}
static void desc_crc_wrong(simdev *sd)
{
    uint8_t blk[BS];
    memcpy(blk, sim_block(sd, 1), BS);
    blk[BS - 4] ^= 0x01;
    sim_poke(sd, 1, blk);
}
static void chunk_missing(simdev *sd) { zero_block(sd, 3); }
static void first_chunk_missing(simdev *sd) { zero_block(sd, 2); }
static void first_payload_over_capacity(simdev *sd)
{
    set32(sd, 1, DESC_FIRST_SIZE, FIRST + 1);
    set32(sd, 1, DESC_TOTAL_SIZE, GEN2_LEN + 1);
}
static void chunk_payload_over_capacity(simdev *sd)
{
    set32(sd, 2, CHUNK_PAYLOAD_SIZE, C1 + 1);
    set32(sd, 1, DESC_TOTAL_SIZE, GEN2_LEN + 1);
}
static void key_size_over_maximum(simdev *sd)
{
    set16(sd, 1, DESC_KEY_SIZE, (uint16_t)(EKV_MAX_KEY_SIZE(BS) + 1));
}
static void chunk_count_zero(simdev *sd)
{
    set32(sd, 1, DESC_CHUNK_COUNT, 0);
}
static void one_block_record_with_next(simdev *sd)
{
    /* The generation-2 record as one block whose next is not "none". */
    zero_block(sd, 2);
    zero_block(sd, 3);
    poke_desc(sd, 1, "k", 2, 4, 4, 1, 2, "gen2");
}
static void multi_block_record_without_next(simdev *sd)
{
    set32(sd, 1, DESC_NEXT, EKV_BLOCK_NONE);
}
static void chain_runs_through_a_descriptor(simdev *sd)
{
    /* Chunk 2 is looked for at block 8, which is the gen-1 descriptor. */
    set32(sd, 2, CHUNK_NEXT, 8);
}
static void chain_runs_through_a_header_copy(simdev *sd)
{
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    sim_poke(sd, 3, h);
}
static void chunk_is_a_descriptor(simdev *sd)
{
    /* Itself broken (two blocks, no next), so nothing else keeps it. */
    poke_desc(sd, 3, "x", 1, 0, 0, 2, EKV_BLOCK_NONE, NULL);
}

static const breaker breakers[] = {
    {"chunk owner wrong", chunk_owner_wrong},
    {"owner of a later chunk wrong", chunk_owner_of_later_chunk_wrong},
    {"chunk indexes out of order", chunk_indexes_swapped},
    {"chunk index skips one", chunk_index_skips},
    {"chunk index zero", chunk_index_zero},
    {"descriptor next out of range", desc_next_out_of_range},
    {"chunk next out of range", chunk_next_out_of_range},
    {"descriptor next is block 0", desc_next_is_header_block},
    {"chain cycles back to a chunk", chain_cycles_back_to_a_chunk},
    {"chain cycles back to itself", chain_cycles_back_to_itself},
    {"chain cycles to the descriptor", chain_cycles_to_the_descriptor},
    {"chunk_count larger than chain", count_larger_than_chain},
    {"chunk_count smaller than chain", count_smaller_than_chain},
    {"payload sizes add up to more", sizes_add_up_to_more},
    {"payload sizes add up to less", sizes_add_up_to_less},
    {"descriptor header_size wrong", desc_header_size_wrong},
    {"chunk header_size wrong", chunk_header_size_wrong},
    {"chunk CRC wrong", chunk_crc_wrong},
    {"descriptor CRC wrong", desc_crc_wrong},
    {"last chunk missing", chunk_missing},
    {"first chunk missing", first_chunk_missing},
    {"first payload over capacity", first_payload_over_capacity},
    {"chunk payload over capacity", chunk_payload_over_capacity},
    {"key_size over maximum", key_size_over_maximum},
    {"chunk_count zero", chunk_count_zero},
    {"one-block record with a next", one_block_record_with_next},
    {"multi-block record without next", multi_block_record_without_next},
    {"chain runs through a descriptor", chain_runs_through_a_descriptor},
    {"chain runs through a header copy", chain_runs_through_a_header_copy},
    {"chunk is a descriptor", chunk_is_a_descriptor},
};
#define NBREAKERS ((int)(sizeof(breakers) / sizeof(breakers[0])))

START_TEST(complete_newest_record_is_kept_and_older_erased)
{
    simdev *sd = two_generations();
    ekv_store *s = open_one(sd, 0);
    assert_value(s, "k", 1, gen2_value, GEN2_LEN);
    ekv_key_info ki;
    ekv_stat_key(s, "k", 1, &ki);
    ck_assert_uint_eq(ki.generation, 2);
    ck_assert(block_is_filled(sd, 8, 0x00));
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.complete_records, 2);
    ck_assert_uint_eq(r.stale_records, 1);
    ck_assert_uint_eq(r.erased_blocks, 1);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

/* The older record is the one of several blocks and lies first: it is
 * taken, then loses to the newer one found after it, and every block of
 * its chain (not only its descriptor) is erased. */
START_TEST(older_chain_found_first_is_erased_whole)
{
    simdev *sd = formatted(BC, 0);
    fill_pattern(gen2_value, GEN2_LEN, 22);
    poke_desc(sd, 1, "k", 1, GEN2_LEN, FIRST, 3, 2, gen2_value);
    poke_chunk(sd, 2, 1, 1, C1, 3, gen2_value + FIRST);
    poke_chunk(sd, 3, 1, 2, C2, EKV_BLOCK_NONE, gen2_value + FIRST + C1);
    poke_desc(sd, 8, "k", 2, 4, 4, 1, EKV_BLOCK_NONE, "gen2");
    ekv_store *s = open_one(sd, 0);
    assert_value(s, "k", 1, "gen2", 4);
    for (uint32_t b = 1; b <= 3; b++)
        ck_assert(block_is_filled(sd, b, 0x00));
    ck_assert(!block_is_filled(sd, 8, 0x00));
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.complete_records, 2);
    ck_assert_uint_eq(r.stale_records, 1);
    ck_assert_uint_eq(r.erased_blocks, 3);
    ck_assert_uint_eq(r.keys, 1);
    ekv_close(s);
    /* Recovered again: nothing left to erase, the same value. */
    s = open_one(sd, 0);
    assert_value(s, "k", 1, "gen2", 4);
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.erased_blocks, 0);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(incomplete_record_is_erased_by_writable_recovery)
{
    const breaker *b = &breakers[_i];
    simdev *sd = two_generations();
    b->apply(sd);
    uint8_t blk8[BS];
    memcpy(blk8, sim_block(sd, 8), BS);
    ekv_store *s = open_one(sd, 0);
    const char *v = get_s(s, "k");
    ck_assert_msg(v && strcmp(v, "gen1") == 0, "%s: got %s", b->name,
                  v ? v : "(absent)");
    ekv_key_info ki;
    ekv_stat_key(s, "k", 1, &ki);
    ck_assert_uint_eq(ki.generation, 1);
    /* Everything but the header and the gen-1 record is free now. */
    ck_assert_mem_eq(sim_block(sd, 8), blk8, BS);
    for (uint32_t blk = 1; blk < BC; blk++)
        if (blk != 8)
            ck_assert_msg(block_is_filled(sd, blk, 0x00), "%s: block %u",
                          b->name, blk);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.free_blocks, BC - 2);
    ekv_close(s);
    /* What recovery leaves is clean: the durable image, reopened. */
    sim_powercycle(sd);
    sim_reset_faults(sd);
    s = open_one(sd, 0);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_str_eq(get_s(s, "k"), "gen1");
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(incomplete_record_is_skipped_by_read_only_recovery_untouched)
{
    const breaker *b = &breakers[_i];
    simdev *sd = two_generations();
    b->apply(sd);
    uint8_t *before = sim_snapshot(sd);
    sim_reset_faults(sd);
    ekv_store *s = open_one(sd, EKV_OPEN_RDONLY);
    const char *v = get_s(s, "k");
    ck_assert_msg(v && strcmp(v, "gen1") == 0, "%s: got %s", b->name,
                  v ? v : "(absent)");
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.erased_blocks, 0);
    ck_assert_uint_gt(r.erasable_blocks, 0);
    /* Skipped blocks are not free for a writer either. */
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.free_blocks, r.free_blocks);
    ck_assert_uint_eq(st.free_blocks + r.erasable_blocks, BC - 2);
    ekv_close(s);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_uint_eq(sd->flushes, 0);
    ck_assert_mem_eq(sim_image(sd), before, BS * BC);
    free(before);
    sim_free(sd);
}
END_TEST

/* ---- other leftovers ---------------------------------------------------- */

START_TEST(garbage_block_is_erased_by_writable_recovery)
{
    simdev *sd = formatted(BC, 0);
    uint8_t junk[BS];
    memset(junk, 0x42, BS);
    sim_poke(sd, 5, junk);
    poke_desc(sd, 2, "live", 1, 1, 1, 1, EKV_BLOCK_NONE, "v");
    ekv_store *s = open_one(sd, 0);
    ck_assert(block_is_filled(sd, 5, 0x00));
    ck_assert_str_eq(get_s(s, "live"), "v");
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.garbage_blocks, 1);
    ck_assert_uint_eq(r.erased_blocks, 1);
    ck_assert_uint_eq(r.erasable_blocks, 1);
    ck_assert_uint_eq(r.keys, 1);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(garbage_is_erased_with_the_store_erase_byte)
{
    simdev *sd = formatted(BC, 0xff);
    uint8_t junk[BS];
    memset(junk, 0x42, BS);
    sim_poke(sd, 5, junk);
    ekv_device *d = &sd->dev;
    ekv_options o = {.erase_byte = 0xff};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
    ck_assert(block_is_filled(sd, 5, 0xff));
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(orphan_chunk_is_erased_by_writable_recovery)
{
    simdev *sd = formatted(BC, 0);
    poke_chunk(sd, 4, 9, 1, 3, EKV_BLOCK_NONE, "orp");  /* owner is free */
    poke_chunk(sd, 6, 99, 1, 3, EKV_BLOCK_NONE, "orp"); /* out of range */
    ekv_store *s = open_one(sd, 0);
    ck_assert(block_is_filled(sd, 4, 0x00));
    ck_assert(block_is_filled(sd, 6, 0x00));
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.chunk_blocks, 2);
    ck_assert_uint_eq(r.erased_blocks, 2);
    ekv_stats st;
    ekv_stats_get(s, &st);
    ck_assert_uint_eq(st.free_blocks, BC - 1);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(leftovers_are_skipped_by_read_only_recovery_untouched)
{
    simdev *sd = formatted(BC, 0);
    uint8_t junk[BS];
    memset(junk, 0x42, BS);
    sim_poke(sd, 5, junk);
    poke_chunk(sd, 4, 9, 1, 3, EKV_BLOCK_NONE, "orp");
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    sim_poke(sd, 7, h);
    poke_desc(sd, 2, "live", 1, 1, 1, 1, EKV_BLOCK_NONE, "v");
    uint8_t *before = sim_snapshot(sd);
    sim_reset_faults(sd);
    ekv_store *s = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_str_eq(get_s(s, "live"), "v");
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.erasable_blocks, 3);
    ck_assert_uint_eq(r.erased_blocks, 0);
    ck_assert_int_eq(ekv_recover(s), 0);
    ekv_close(s);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_mem_eq(sim_image(sd), before, BS * BC);
    free(before);
    sim_free(sd);
}
END_TEST

START_TEST(header_copy_outside_block_0_is_garbage)
{
    simdev *sd = formatted(BC, 0);
    uint8_t h[BS];
    header_encode(h, BS, BC, 0, 0, 0);
    sim_poke(sd, 7, h);
    ekv_store *s = open_one(sd, 0);
    ck_assert(block_is_filled(sd, 7, 0x00));
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.garbage_blocks, 1);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(blocks_of_either_free_byte_are_left_alone)
{
    /* A 0xFF-erased flash part opened with erase byte 0x00 (and the other
     * way round): free is free, nothing is rewritten. */
    for (int fill = 0; fill < 2; fill++) {
        simdev *sd = formatted(BC, fill ? 0xff : 0x00);
        uint8_t half[BS];
        memset(half, fill ? 0x00 : 0xff, BS);
        memset(half + BS / 2, 0x37, BS / 2); /* junk after a free byte */
        sim_poke(sd, 3, half);
        sim_reset_faults(sd);
        ekv_device *d = &sd->dev;
        ekv_options o = {.erase_byte = fill ? 0x00 : 0xff};
        ekv_store *s = NULL;
        ck_assert_int_eq(ekv_open(&s, &d, 1, &o), 0);
        ck_assert_uint_eq(sd->writes, 0);
        ekv_stats st;
        ekv_stats_get(s, &st);
        ck_assert_uint_eq(st.free_blocks, BC - 1);
        /* A put there writes the whole block. */
        ck_assert_int_eq(put_s(s, "a", "1"), 0);
        ck_assert_int_eq(put_s(s, "b", "2"), 0);
        ck_assert_int_eq(put_s(s, "c", "3"), 0);
        ekv_block_info bi;
        ekv_block_decode(sim_block(sd, 3), BS, &bi);
        ck_assert_int_eq(bi.kind, EKV_BLOCK_DESCRIPTOR);
        ck_assert_str_eq(get_s(s, "c"), "3");
        ekv_close(s);
        sim_free(sd);
    }
}
END_TEST

START_TEST(equal_generations_lowest_block_wins)
{
    simdev *sd = formatted(BC, 0);
    poke_desc(sd, 9, "k", 5, 6, 6, 1, EKV_BLOCK_NONE, "high-9");
    poke_desc(sd, 4, "k", 5, 5, 5, 1, EKV_BLOCK_NONE, "low-4");
    poke_desc(sd, 12, "k", 5, 7, 7, 1, EKV_BLOCK_NONE, "high-12");
    ekv_store *s = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_str_eq(get_s(s, "k"), "low-4");
    ekv_close(s);
    s = open_one(sd, 0);
    ck_assert_str_eq(get_s(s, "k"), "low-4");
    ck_assert(block_is_filled(sd, 9, 0x00));
    ck_assert(block_is_filled(sd, 12, 0x00));
    ck_assert(!block_is_filled(sd, 4, 0x00));
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(higher_incomplete_generation_falls_back_to_next_complete_one)
{
    simdev *sd = formatted(BC, 0);
    poke_desc(sd, 1, "k", 3, 3, 3, 1, EKV_BLOCK_NONE, "gn3");
    poke_desc(sd, 2, "k", 9, 500, FIRST, 3, 3, gen2_value); /* no chunks */
    poke_desc(sd, 5, "k", 7, 300, FIRST, 2, 6, gen2_value); /* no chunk */
    poke_desc(sd, 7, "k", 1, 3, 3, 1, EKV_BLOCK_NONE, "gn1");
    ekv_store *s = open_one(sd, 0);
    ck_assert_str_eq(get_s(s, "k"), "gn3");
    ekv_key_info ki;
    ekv_stat_key(s, "k", 1, &ki);
    ck_assert_uint_eq(ki.generation, 3);
    /* The next put continues from the newest complete generation. */
    ck_assert_int_eq(put_s(s, "k", "next"), 0);
    ekv_stat_key(s, "k", 1, &ki);
    ck_assert_uint_eq(ki.generation, 4);
    ekv_close(s);
    sim_free(sd);
}
END_TEST

START_TEST(recovery_twice_gives_the_same_image_and_writes_nothing)
{
    simdev *sd = two_generations();
    chunk_crc_wrong(sd);
    uint8_t junk[BS];
    memset(junk, 0x99, BS);
    sim_poke(sd, 11, junk);
    poke_chunk(sd, 13, 40, 2, 3, EKV_BLOCK_NONE, "zzz");
    poke_desc(sd, 14, "other", 1, 2, 2, 1, EKV_BLOCK_NONE, "ok");
    ekv_store *s = open_one(sd, 0);
    ekv_close(s);
    uint8_t *once = sim_snapshot(sd);
    sim_reset_faults(sd);
    s = open_one(sd, 0);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_uint_eq(sd->flushes, 0);
    ekv_replica_report r;
    ekv_replica_report_get(s, 0, &r);
    ck_assert_uint_eq(r.erasable_blocks, 0);
    ck_assert_int_eq(ekv_recover(s), 0);
    ck_assert_uint_eq(sd->writes, 0);
    ck_assert_mem_eq(sim_image(sd), once, BS * BC);
    ck_assert_str_eq(get_s(s, "k"), "gen1");
    ck_assert_str_eq(get_s(s, "other"), "ok");
    ekv_close(s);
    free(once);
    sim_free(sd);
}
END_TEST

START_TEST(read_only_and_writable_recovery_agree_on_random_images)
{
    /* Random mixtures of valid records, broken chains, orphans and junk. */
    uint64_t seed = 500 + (uint64_t)_i;
    const uint32_t bc = 48;
    simdev *sd = formatted(bc, 0);
    uint8_t v[800];
    for (uint32_t b = 1; b < bc; b++) {
        unsigned what = (unsigned)(test_rand(&seed) % 6);
        char key[4] = {'k', (char)('0' + test_rand(&seed) % 4), 0, 0};
        uint32_t gen = (uint32_t)(test_rand(&seed) % 4) + 1;
        fill_pattern(v, sizeof(v), (uint32_t)b);
        if (what == 0 || what == 1) {
            /* a one-block record */
            poke_desc(sd, b, key, gen, 20, 20, 1, EKV_BLOCK_NONE, v);
        } else if (what == 2 && b + 1 < bc) {
            /* a two-block record, sometimes with a broken chunk */
            uint32_t total = (FIRST + 1) + 100;
            poke_desc(sd, b, key, gen, total, FIRST + 1, 2, b + 1, v);
            poke_chunk(sd, b + 1, test_rand(&seed) % 3 ? b : b + 5, 1, 100,
                       EKV_BLOCK_NONE, v);
            b++;
        } else if (what == 3) {
            poke_chunk(sd, b, (uint32_t)(test_rand(&seed) % bc), 1, 10,
                       EKV_BLOCK_NONE, v);
        } else if (what == 4) {
            uint8_t junk[BS];
            for (uint32_t i = 0; i < BS; i++)
                junk[i] = (uint8_t)test_rand(&seed);
            sim_poke(sd, b, junk);
        }
    }
    uint8_t *before = sim_snapshot(sd);
    ekv_store *ro = open_one(sd, EKV_OPEN_RDONLY);
    ck_assert_mem_eq(sim_image(sd), before, (size_t)BS * bc);
    ekv_store *rw = open_one(sd, 0);
    for (int k = 0; k < 4; k++) {
        char key[3] = {'k', (char)('0' + k), 0};
        ekv_key_info a, b;
        int ra = ekv_stat_key(ro, key, 2, &a);
        ck_assert_int_eq(ekv_stat_key(rw, key, 2, &b), ra);
        if (ra)
            continue;
        ck_assert_uint_eq(a.generation, b.generation);
        ck_assert_uint_eq(a.value_size, b.value_size);
        static uint8_t va[1000];
        size_t la;
        ck_assert_int_eq(ekv_get(ro, key, 2, va, sizeof(va), &la), 0);
        assert_value(rw, key, 2, va, la);
    }
    ekv_replica_report r1, r2;
    ekv_replica_report_get(ro, 0, &r1);
    ekv_replica_report_get(rw, 0, &r2);
    ck_assert_uint_eq(r1.erasable_blocks, r2.erased_blocks);
    ck_assert_uint_eq(r1.keys, r2.keys);
    ekv_close(ro);
    ekv_close(rw);
    /* After writable recovery every used block belongs to a kept record. */
    sim_reset_faults(sd);
    rw = open_one(sd, 0);
    ck_assert_uint_eq(sd->writes, 0);
    ekv_replica_report_get(rw, 0, &r2);
    ck_assert_uint_eq(r2.garbage_blocks + r2.incomplete_records +
                          r2.stale_records + r2.erasable_blocks, 0);
    ekv_close(rw);
    free(before);
    sim_free(sd);
}
END_TEST

/* ---- power-loss sweeps --------------------------------------------------- */

#define PBC 32u

typedef enum { W_NEW_KEY, W_UPDATE, W_DELETE, W_UPDATE_SMALL } workload;

typedef struct scenario {
    const char *name;
    workload w;
    unsigned replicas;
} scenario;

static const scenario scenarios[] = {
    {"new multi-chunk key", W_NEW_KEY, 1},
    {"update of a multi-chunk value", W_UPDATE, 1},
    {"delete of a multi-chunk value", W_DELETE, 1},
    {"update of a one-block value", W_UPDATE_SMALL, 1},
#if EKV_MAX_REPLICAS >= 3 /* not in a one-replica firmware build */
    {"new key on two replicas", W_NEW_KEY, 2},
    {"update on two replicas", W_UPDATE, 2},
    {"delete on two replicas", W_DELETE, 2},
    {"update on three replicas", W_UPDATE, 3},
#endif
};
#define NSCENARIOS ((int)(sizeof(scenarios) / sizeof(scenarios[0])))

typedef struct failure_model {
    enum sim_tear tear;
    uint32_t tear_bytes;
    enum sim_lose lose;
} failure_model;

static const failure_model models[] = {
    {SIM_TEAR_NONE, 0, SIM_LOSE_NONE},
    {SIM_TEAR_PREFIX, BS / 2, SIM_LOSE_NONE},
    {SIM_TEAR_SUFFIX, BS / 2, SIM_LOSE_NONE},
    {SIM_TEAR_PREFIX, BS, SIM_LOSE_NONE}, /* written, never acknowledged */
    {SIM_TEAR_RANDOM, 0, SIM_LOSE_NONE},
    {SIM_TEAR_PARTIAL_ERASE, BS / 2, SIM_LOSE_NONE},
    {SIM_TEAR_ERASE_HEAD, BS / 2, SIM_LOSE_NONE},
    {SIM_TEAR_NONE, 0, SIM_LOSE_SUBSET},
    {SIM_TEAR_PREFIX, BS / 2, SIM_LOSE_SUBSET},
};
#define NMODELS ((int)(sizeof(models) / sizeof(models[0])))

static uint8_t old_t[700], new_t[900], val_a[100], val_b[600];

static void values_init(void)
{
    fill_pattern(old_t, sizeof(old_t), 1);
    fill_pattern(new_t, sizeof(new_t), 2);
    fill_pattern(val_a, sizeof(val_a), 3);
    fill_pattern(val_b, sizeof(val_b), 4);
}

/* Fresh replicas with "a", "b", "c" and (unless the workload creates it)
 * the target "t", all durable. */
static void setup_state(simdev **sd, unsigned n, workload w)
{
    ekv_device *d[3];
    for (unsigned i = 0; i < n; i++) {
        sd[i] = sim_new(BS, PBC, 0);
        d[i] = &sd[i]->dev;
    }
    ck_assert_int_eq(ekv_format(d, n, NULL), 0);
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, d, n, NULL), 0);
    ck_assert_int_eq(ekv_put(s, "a", 1, val_a, sizeof(val_a)), 0);
    if (w != W_NEW_KEY)
        ck_assert_int_eq(ekv_put(s, "t", 1, old_t,
                                 w == W_UPDATE_SMALL ? 50 : sizeof(old_t)),
                         0);
    ck_assert_int_eq(ekv_put(s, "b", 1, val_b, sizeof(val_b)), 0);
    ck_assert_int_eq(put_s(s, "c", "ccc"), 0);
    ekv_close(s);
}

static int run_workload(simdev **sd, unsigned n, workload w)
{
    ekv_device *d[3];
    for (unsigned i = 0; i < n; i++)
        d[i] = &sd[i]->dev;
    ekv_store *s = NULL;
    int rc = ekv_open(&s, d, n, NULL);
    ck_assert_int_eq(rc, 0); /* the image is clean: open writes nothing */
    switch (w) {
    case W_NEW_KEY:
    case W_UPDATE:
        rc = ekv_put(s, "t", 1, new_t, sizeof(new_t));
        break;
    case W_UPDATE_SMALL:
        rc = ekv_put(s, "t", 1, new_t, 60);
        break;
    case W_DELETE:
        rc = ekv_delete(s, "t", 1);
        break;
    }
    ekv_close(s);
    return rc;
}

/* The target's state after the reboot: 0 absent, 1 old, 2 new. */
static int target_state(ekv_store *s, workload w)
{
    static uint8_t buf[1000];
    size_t len = 0;
    int rc = ekv_get(s, "t", 1, buf, sizeof(buf), &len);
    if (rc == EKV_ENOENT)
        return 0;
    ck_assert_msg(rc == 0, "get of the target: %s", ekv_strerror(rc));
    size_t old_len = w == W_UPDATE_SMALL ? 50 : sizeof(old_t);
    size_t new_len = w == W_UPDATE_SMALL ? 60 : sizeof(new_t);
    if (len == old_len && memcmp(buf, old_t, len) == 0)
        return 1;
    if (len == new_len && memcmp(buf, new_t, len) == 0)
        return 2;
    ck_abort_msg("target holds a value that is neither old nor new");
    return -1;
}

static void assert_others_unchanged(ekv_store *s)
{
    assert_value(s, "a", 1, val_a, sizeof(val_a));
    assert_value(s, "b", 1, val_b, sizeof(val_b));
    ck_assert_str_eq(get_s(s, "c"), "ccc");
}

/* One cut at write `cut`; returns 0 when the workload finished before. */
static int sweep_one(const scenario *sc, const failure_model *fm, uint64_t cut,
                     uint64_t *writes_seen)
{
    simdev *sd[3];
    const unsigned n = sc->replicas;
    setup_state(sd, n, sc->w);
    simgroup g;
    memset(&g, 0, sizeof(g));
    for (unsigned i = 0; i < n; i++) {
        sim_reset_faults(sd[i]);
        sd[i]->tear = fm->tear;
        sd[i]->tear_bytes = fm->tear_bytes;
        sd[i]->lose = fm->lose;
        sd[i]->seed = cut * 7919 + i;
        sim_group_add(&g, sd[i]);
    }
    g.cut_at = cut;
    int rc = run_workload(sd, n, sc->w);
    *writes_seen = g.writes;
    const int was_cut = g.cut;
    sim_group_powercycle(&g);

    ekv_device *d[3];
    for (unsigned i = 0; i < n; i++) {
        d[i] = &sd[i]->dev;
        sim_reset_faults(sd[i]);
    }
    g.cut_at = 0;
    /* Read-only first: it must see what the writable recovery will keep,
     * and write nothing. */
    ekv_options ro = {.flags = EKV_OPEN_RDONLY};
    ekv_store *s = NULL;
    ck_assert_int_eq(ekv_open(&s, d, n, &ro), 0);
    int st_ro = target_state(s, sc->w);
    assert_others_unchanged(s);
    ekv_close(s);
    for (unsigned i = 0; i < n; i++)
        ck_assert_uint_eq(sd[i]->writes, 0);

    ck_assert_int_eq(ekv_open(&s, d, n, NULL), 0);
    int st = target_state(s, sc->w);
    ck_assert_int_eq(st, st_ro);
    assert_others_unchanged(s);
    switch (sc->w) {
    case W_NEW_KEY:
        ck_assert(st == 0 || st == 2);
        if (rc == 0)
            ck_assert_int_eq(st, 2);
        break;
    case W_UPDATE:
    case W_UPDATE_SMALL:
        ck_assert(st == 1 || st == 2);
        if (rc == 0)
            ck_assert_int_eq(st, 2);
        break;
    case W_DELETE:
        ck_assert(st == 0 || st == 1);
        if (rc == 0)
            ck_assert_int_eq(st, 0);
        break;
    }
    ekv_stats stats;
    ekv_stats_get(s, &stats);
    ck_assert_uint_eq(stats.records, 3u + (st != 0));
    ck_assert_uint_eq(stats.active_replicas, n);
    /* Still usable: a new value for the target goes in and stays. */
    ck_assert_int_eq(put_s(s, "t", "after"), 0);
    ekv_close(s);
    for (unsigned i = 0; i < n; i++)
        sim_reset_faults(sd[i]);
    ck_assert_int_eq(ekv_open(&s, d, n, NULL), 0);
    for (unsigned i = 0; i < n; i++)
        ck_assert_uint_eq(sd[i]->writes, 0); /* recovery had left it clean */
    ck_assert_str_eq(get_s(s, "t"), "after");
    assert_others_unchanged(s);
    ekv_close(s);
    for (unsigned i = 0; i < n; i++)
        sim_free(sd[i]);
    return was_cut;
}

START_TEST(power_cut_after_every_write_leaves_old_or_new_value)
{
    values_init();
    const scenario *sc = &scenarios[_i / NMODELS];
    const failure_model *fm = &models[_i % NMODELS];
    uint64_t total = 0;
    /* A cut beyond the last write never happens: that run proves the
     * workload ends, and tells how many writes it makes. */
    for (uint64_t cut = 1;; cut++) {
        uint64_t seen = 0;
        if (!sweep_one(sc, fm, cut, &seen)) {
            total = seen;
            ck_assert_uint_eq(cut, total + 1);
            break;
        }
        ck_assert_uint_le(cut, 200);
    }
    ck_assert_uint_ge(total, 2);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("records");
    tcase_add_test(tc, complete_newest_record_is_kept_and_older_erased);
    tcase_add_test(tc, older_chain_found_first_is_erased_whole);
    tcase_add_loop_test(tc, incomplete_record_is_erased_by_writable_recovery,
                        0, NBREAKERS);
    tcase_add_loop_test(tc,
                        incomplete_record_is_skipped_by_read_only_recovery_untouched,
                        0, NBREAKERS);
    tcase_add_test(tc, equal_generations_lowest_block_wins);
    tcase_add_test(tc, higher_incomplete_generation_falls_back_to_next_complete_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("leftovers");
    tcase_add_test(tc, garbage_block_is_erased_by_writable_recovery);
    tcase_add_test(tc, garbage_is_erased_with_the_store_erase_byte);
    tcase_add_test(tc, orphan_chunk_is_erased_by_writable_recovery);
    tcase_add_test(tc, leftovers_are_skipped_by_read_only_recovery_untouched);
    tcase_add_test(tc, header_copy_outside_block_0_is_garbage);
    tcase_add_test(tc, blocks_of_either_free_byte_are_left_alone);
    tcase_add_test(tc, recovery_twice_gives_the_same_image_and_writes_nothing);
    tcase_add_loop_test(tc, read_only_and_writable_recovery_agree_on_random_images,
                        0, 40);
    suite_add_tcase(s, tc);

    tc = tcase_create("power_loss");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, power_cut_after_every_write_leaves_old_or_new_value,
                        0, NSCENARIOS * NMODELS);
    suite_add_tcase(s, tc);
    return s;
}

RUN_SUITE(make)
