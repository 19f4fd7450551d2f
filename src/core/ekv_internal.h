/*
 * ekv_internal.h - what the core's modules share and the public header
 * does not show: little-endian field access, block layout offsets, the
 * key index, the free-block map and the store structure.
 */
#ifndef EKV_INTERNAL_H
#define EKV_INTERNAL_H

#include <stdbool.h>
#include <string.h>

#include "embedkv.h"

/* The functions the core's modules share are linked as ekvi_NAME: no name
 * of the library's may meet one of the program it is linked into (a
 * firmware's own dev_read, say). tests/meson.build checks every archive
 * for a global name without the ekv_ or ekvi_ prefix. */
#define batch_close ekvi_batch_close
#define batch_open ekvi_batch_open
#define batch_read ekvi_batch_read
#define batch_zeros ekvi_batch_zeros
#define block_crc ekvi_block_crc
#define block_crc_ok ekvi_block_crc_ok
#define block_seal ekvi_block_seal
#define check_writable ekvi_check_writable
#define chunk_buffer ekvi_chunk_buffer
#define chunk_sane ekvi_chunk_sane
#define copies_in_order ekvi_copies_in_order
#define decide_erase_byte ekvi_decide_erase_byte
#define desc_sane ekvi_desc_sane
#define dev_flush ekvi_dev_flush
#define dev_read ekvi_dev_read
#define dev_write ekvi_dev_write
#define erase_chain ekvi_erase_chain
#define erase_chunks ekvi_erase_chunks
#define fill_info ekvi_fill_info
#define freemap_bytes ekvi_freemap_bytes
#define freemap_free ekvi_freemap_free
#define freemap_init ekvi_freemap_init
#define freemap_is_free ekvi_freemap_is_free
#define freemap_set_free ekvi_freemap_set_free
#define freemap_set_free_range ekvi_freemap_set_free_range
#define freemap_set_used ekvi_freemap_set_used
#define freemap_take_lowest ekvi_freemap_take_lowest
#define geometry_supported ekvi_geometry_supported
#define header_encode ekvi_header_encode
#define header_validate ekvi_header_validate
#define index_adopt_arena ekvi_index_adopt_arena
#define index_find ekvi_index_find
#define index_find_or_link ekvi_index_find_or_link
#define index_free ekvi_index_free
#define index_get_or_add ekvi_index_get_or_add
#define index_init ekvi_index_init
#define index_remove ekvi_index_remove
#define index_reserve ekvi_index_reserve
#define key_hash ekvi_key_hash
#define mem_alloc ekvi_mem_alloc
#define mem_free ekvi_mem_free
#define mode_alloc ekvi_mode_alloc
#define mode_forget ekvi_mode_forget
#define mode_free_count ekvi_mode_free_count
#define mode_init ekvi_mode_init
#define mode_iterate ekvi_mode_iterate
#define mode_locate ekvi_mode_locate
#define mode_locate_or_add ekvi_mode_locate_or_add
#define mode_memory ekvi_mode_memory
#define mode_next_entry ekvi_mode_next_entry
#define mode_records ekvi_mode_records
#define mode_recover ekvi_mode_recover
#define mode_release ekvi_mode_release
#define mode_release_block ekvi_mode_release_block
#define mode_report ekvi_mode_report
#define mode_reset_replica ekvi_mode_reset_replica
#define put_prepare ekvi_put_prepare
#define put_retire ekvi_put_retire
#define read_plausible ekvi_read_plausible
#define read_record ekvi_read_record
#define record_block ekvi_record_block
#define record_blocks ekvi_record_blocks
#define replica_before_change ekvi_replica_before_change
#define replica_header_torn ekvi_replica_header_torn
#define replica_heal ekvi_replica_heal
#define replica_settle ekvi_replica_settle
#define streams_drop ekvi_streams_drop
#define streams_lost ekvi_streams_lost
#define streams_memory ekvi_streams_memory
#define write_everywhere ekvi_write_everywhere

/* A function the compiler must keep out of line, or inline, to bound the
 * stack depth. */
#if defined(__GNUC__)
#define EKV_NOINLINE __attribute__((noinline))
#define EKV_ALWAYS_INLINE __attribute__((always_inline))
#else
#define EKV_NOINLINE
#define EKV_ALWAYS_INLINE
#endif

/* Block type bytes. */
#define EKV_TYPE_HEADER 0x01u
#define EKV_TYPE_DESCRIPTOR 0x02u
#define EKV_TYPE_CHUNK 0x03u

/* Storage header field offsets (block 0). */
#define HDR_MAGIC 1
#define HDR_VMAJOR 4
#define HDR_VMINOR 6
#define HDR_BLOCK_SIZE 8
#define HDR_BLOCK_COUNT 12
#define HDR_REPLICA_ID 16
#define HDR_FORMAT_SEQ 20
#define HDR_FLAGS 24
#define HDR_SIZE 28

/* Record descriptor field offsets. */
#define DESC_HEADER_SIZE 1
#define DESC_KEY_SIZE 2
#define DESC_GENERATION 4
#define DESC_TOTAL_SIZE 8
#define DESC_FIRST_SIZE 12
#define DESC_CHUNK_COUNT 16
#define DESC_NEXT 20
#define DESC_FLAGS 24
#define DESC_USER_FLAGS 28

/* Value chunk field offsets. */
#define CHUNK_HEADER_SIZE 1
#define CHUNK_FLAGS 2
#define CHUNK_OWNER 4
#define CHUNK_INDEX 8
#define CHUNK_PAYLOAD_SIZE 12
#define CHUNK_NEXT 16

/* Little-endian fields at any alignment. On a little-endian target the
 * fixed-size memcpy is one load or store where the CPU allows unaligned
 * access (Cortex-M3 and up, x86) and byte accesses where it does not: the
 * compiler knows which, so the code is always correct and small. (The
 * builtin, as a freestanding build does not treat memcpy as one.) */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint16_t get_le16(const uint8_t *p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    __builtin_memcpy(p, &v, sizeof(v));
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof(v));
}
#else
static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
#endif

/* Value bytes a descriptor / a chunk of this block size can hold. */
static inline uint32_t first_capacity(uint32_t bs, uint32_t key_len)
{
    return bs - EKV_DESCRIPTOR_HEADER_SIZE - key_len - EKV_CRC_SIZE;
}

static inline uint32_t chunk_capacity(uint32_t bs)
{
    return bs - EKV_CHUNK_HEADER_SIZE - EKV_CRC_SIZE;
}

/* ---- format.c: block encoding ---------------------------------------- */

/* CRC of a block as the format defines it (last 4 bytes taken as zero). */
uint32_t block_crc(const uint8_t *buf, uint32_t bs);
/* Store block_crc() in the last 4 bytes. */
void block_seal(uint8_t *buf, uint32_t bs);
/* Whether the stored CRC is right. */
bool block_crc_ok(const uint8_t *buf, uint32_t bs);

/* Validate a storage header read from block 0 of a device of bs x bc
 * blocks. Returns 0 or EKV_EBADHDR, EKV_EVERSION, EKV_EDOM (the header
 * describes another geometry, or one the format does not allow). */
int header_validate(const uint8_t *buf, uint32_t bs, uint32_t bc);
/* Fill buf (bs bytes) with a v1.0 header; flags is the participant mask
 * (replica.c). */
void header_encode(uint8_t *buf, uint32_t bs, uint32_t bc,
                   uint32_t replica_id, uint32_t format_seq, uint32_t flags);

bool geometry_supported(uint32_t bs, uint32_t bc);

/* Number of blocks a record needs; 0 if it could never be represented
 * (more than 2^32 - 1 blocks). */
uint64_t record_blocks(uint32_t bs, size_t key_len, size_t val_len);

/* ---- index.c: the key index ---------------------------------------------
 * One entry per key, found by an open-addressing hash table of pointers
 * (linear probing, load factor kept between 0.4 and 0.8). An entry holds,
 * for every replica, the descriptor block, generation and value size of the
 * newest complete record of the key there (desc == EKV_BLOCK_NONE: none);
 * the key bytes follow the replica slots. */
typedef struct ekv_slot {
    uint32_t desc;
    uint32_t gen;
    uint32_t size;
} ekv_slot;

typedef struct ekv_entry {
    uint32_t hash;
    uint16_t key_len;
    uint16_t in_arena; /* 1: lives in the index's arena, not alone */
    ekv_slot rep[]; /* nrep slots, then key_len key bytes */
} ekv_entry;

static inline uint8_t *entry_key(ekv_entry *e, unsigned nrep)
{
    return (uint8_t *)&e->rep[nrep];
}

typedef struct ekv_index {
    ekv_entry **slots;
    /* One byte per slot, in the same allocation after the slots: 0 for an
     * empty slot, else a tag taken from the entry's hash. Probes read the
     * tags and look at an entry only when its tag matches, so a lookup
     * costs about one entry access instead of one per probe. */
    uint8_t *tags;
    uint32_t cap; /* power of two, or 0 */
    uint32_t count;
    unsigned nrep;
    const ekv_allocator *alloc;
    size_t bytes; /* table + entries + arena, as asked of the allocator */
    /* Recovery takes the entries of the keys it finds from one arena, one
     * allocation instead of one per key (and one free at close); entries
     * added later, or when the arena cannot be had, are allocated alone.
     * The arena goes back once no entry lives in it. */
    uint8_t *arena;
    size_t arena_size, arena_used;
    uint32_t arena_live;
} ekv_index;

uint32_t key_hash(const void *key, size_t len);
void index_init(ekv_index *ix, unsigned nrep, const ekv_allocator *alloc);
void index_free(ekv_index *ix);
ekv_entry *index_find(const ekv_index *ix, const void *key, size_t len,
                      uint32_t hash);
/* Find or add the key; a new entry has every slot empty. NULL: no memory. */
ekv_entry *index_get_or_add(ekv_index *ix, const void *key, size_t len,
                            uint32_t hash);
void index_remove(ekv_index *ix, ekv_entry *e);
/* Size the table for n keys in one step (recovery knows how many it will
 * add). 0 or EKV_ENOMEM; on failure the index is unchanged. */
int index_reserve(ekv_index *ix, uint32_t n);
/* Start loading the table slot of a hash that a lookup will soon need
 * (inline: recovery asks once per key). */
static inline void index_prefetch(const ekv_index *ix, uint32_t hash)
{
#if defined(__GNUC__) || defined(__clang__)
    if (ix->cap) {
        uint32_t i = hash & (ix->cap - 1);
        __builtin_prefetch(&ix->tags[i]);
        __builtin_prefetch(&ix->slots[i]);
    }
#else
    (void)ix, (void)hash;
#endif
}
/* Take buf (size bytes from the allocator, the first `used` holding
 * entries laid out as the arena lays them) as the arena, if the index is
 * empty and has none; false: not taken. */
bool index_adopt_arena(ekv_index *ix, uint8_t *buf, size_t used,
                       size_t size);
/* The entry of e's key, or, when the key is not there, e itself (which
 * lies in the arena) put into the table; NULL: the table could not grow. */
ekv_entry *index_find_or_link(ekv_index *ix, ekv_entry *e);
/* Bytes an entry for a key of len bytes takes in the arena (entries hold
 * 32-bit fields: each one stays 4-byte aligned). */
static inline size_t index_entry_bytes(const ekv_index *ix, size_t len)
{
    return (sizeof(ekv_entry) + ix->nrep * sizeof(ekv_slot) + len + 3u) &
           ~(size_t)3u;
}

/* ---- freemap.c: free blocks of one replica ------------------------------
 * A bitmap (1 = free) with a summary bitmap of its non-zero words, so that
 * taking the lowest free block costs a few word scans, not a storage scan. */
typedef struct ekv_freemap {
    uint64_t *bits;
    uint64_t *summary;
    uint32_t nblocks;
    uint32_t nwords;
    uint32_t nsummary;
    uint32_t free_count;
    uint32_t hint; /* no summary word below this one is non-zero */
} ekv_freemap;

int freemap_init(ekv_freemap *fm, uint32_t nblocks, const ekv_allocator *a);
void freemap_free(ekv_freemap *fm, const ekv_allocator *a);
void freemap_set_free(ekv_freemap *fm, uint32_t block);
/* Blocks b .. b + n - 1 free (n may be 0). */
void freemap_set_free_range(ekv_freemap *fm, uint32_t b, uint32_t n);
void freemap_set_used(ekv_freemap *fm, uint32_t block);
bool freemap_is_free(const ekv_freemap *fm, uint32_t block);
/* Take (mark used) and return the lowest free block, or EKV_BLOCK_NONE. */
uint32_t freemap_take_lowest(ekv_freemap *fm);
size_t freemap_bytes(uint32_t nblocks);

/* ---- alloc.c ------------------------------------------------------------ */
#ifndef EKV_NO_MALLOC
extern const ekv_allocator ekv_default_allocator;
#define EKV_DEFAULT_ALLOCATOR (&ekv_default_allocator)
#else
/* No default allocator: an open or format that passes none gets
 * EKV_ENOMEM from its first mem_alloc. */
#define EKV_DEFAULT_ALLOCATOR ((const ekv_allocator *)NULL)
#endif
/* NULL when a is NULL or has no alloc function. */
void *mem_alloc(const ekv_allocator *a, size_t size);
void mem_free(const ekv_allocator *a, void *p, size_t size);

/* ---- store.c: what the two index modes share ------------------------
 * The core is built in one of two modes:
 * - indexed (default): mode_index.c keeps the key index and a free-block
 *   map per replica, so put/get/delete touch only the record's blocks;
 * - EKV_NO_INDEX: mode_scan.c keeps nothing per key or block and finds
 *   records and free blocks by reading the device; RAM is the store struct
 *   and three block buffers.
 * store.c holds everything else and calls the mode through these hooks. */
typedef struct ekv_replica {
    ekv_device *dev;
    int status; /* 0 active; else why it was dropped */
#ifndef EKV_NO_INDEX
    ekv_freemap fm;
#endif
    ekv_replica_report report;
#if defined(EKV_NO_INDEX) && defined(EKV_READONLY)
    bool report_due; /* report not computed yet (mode_scan.c) */
#endif
} ekv_replica;

struct ekv_store {
    ekv_allocator alloc;
    uint32_t flags;
    uint8_t erase_byte;
    uint32_t bs, bc;
    uint32_t id_base; /* replica_id of replica 0 as the good headers say */
    uint32_t format_seq; /* the set's epoch E (replica.c) */
    uint32_t mask;       /* participants at E: bit replica_id & 31 */
    unsigned n;
    uint32_t io_errors;
    uint8_t *rbuf;   /* block read scratch */
    uint8_t *wbuf;   /* block build scratch */
    uint8_t *ebuf;   /* a block of erase_byte */
#ifndef EKV_NO_INDEX
    ekv_index index;
#else
    ekv_entry *tmp;  /* the entry locate() fills: slots only, no key */
#endif
    uint32_t free00, freeff; /* free blocks by first byte, last scan */
    bool erase_decided;      /* EKV_OPEN_ERASE_AUTO has chosen */
    const uint8_t *sound; /* the buffer dev_read last filled with a typed
                             block whose CRC it verified, else NULL */
    int lookup_err;  /* scan mode: a read error the last locate met, so
                        "not found" may be wrong; 0 in indexed mode */
    bool need_bump;  /* a participant of the epoch is not in use: the
                        first change starts a new epoch (replica.c) */
#ifndef EKV_NO_INDEX
    uint32_t healed_replicas, healed_records;
    int heal_err; /* why EKV_OPEN_HEAL could not finish, or 0 */
#endif
#if !defined(EKV_NO_INDEX) && !defined(EKV_READONLY)
    ekv_stream *streams; /* open streamed puts (stream.c) */
#endif
    ekv_replica rep[];
};

/* Replicas of the store. A build with EKV_MAX_REPLICAS == 1 knows it is 1,
 * so every loop over replicas folds to straight-line code on replica 0. */
static inline unsigned nrep(const ekv_store *s)
{
    return EKV_MAX_REPLICAS == 1 ? 1u : s->n;
}

/* Index of replica r in the store's arrays: a one-replica build knows it
 * is 0, which spares the functions taking r their index arithmetic. */
static inline unsigned rep_index(unsigned r)
{
    return EKV_MAX_REPLICAS == 1 ? 0u : r;
}

static inline bool replica_active(const ekv_store *s, unsigned r)
{
    /* With one replica, an open store has it active: open fails when no
     * replica is good. */
    return EKV_MAX_REPLICAS == 1 || s->rep[r].status == 0;
}

/* Whether the store was opened read-only; always so in an EKV_READONLY
 * build, which lets the compiler drop what only a writer does. */
#ifdef EKV_READONLY
#define store_rdonly(s) ((void)(s), true)
#else
#define store_rdonly(s) (((s)->flags & EKV_OPEN_RDONLY) != 0)
#endif

/* store.c, for the modes */
/* With EKV_OPEN_ERASE_AUTO, settle the erase byte from the free blocks the
 * scan of the first recovered replica counted (free00/freeff). */
#ifndef EKV_READONLY
void decide_erase_byte(ekv_store *s);
#else
static inline void decide_erase_byte(ekv_store *s)
{
    (void)s; /* nothing is ever erased */
}
#endif
int dev_read(ekv_store *s, unsigned r, uint32_t b, void *buf);
/* Whether a block read looks like what a write or an erase leaves: a known
 * type with a right CRC, or uniformly 0x00 or 0xFF. */
bool read_plausible(const uint8_t *p, uint32_t bs);
/* The CRC check for a buffer dev_read just filled: free when dev_read
 * already verified it (every read is checked once there, for the retry). */
static inline bool read_crc_ok(const ekv_store *s, const uint8_t *buf)
{
    return buf == s->sound || block_crc_ok(buf, s->bs);
}
#ifndef EKV_READONLY
int dev_write(ekv_store *s, unsigned r, uint32_t b, const void *buf);
int dev_flush(ekv_store *s, unsigned r);
#else
/* A read-only build has no write path: these fold every erase away. */
static inline int dev_write(ekv_store *s, unsigned r, uint32_t b,
                            const void *buf)
{
    (void)s, (void)r, (void)b, (void)buf;
    return EKV_EROFS;
}
static inline int dev_flush(ekv_store *s, unsigned r)
{
    (void)s, (void)r;
    return EKV_EROFS;
}
#endif
bool desc_sane(const uint8_t *buf, uint32_t bs);
bool chunk_sane(const uint8_t *buf, uint32_t bs);
/* Read and verify the record of slot sl on replica r; copy the value to
 * buf if not NULL (it must hold sl->size bytes). 0, EKV_ECORRUPT or a
 * device error. Uses rbuf. */
int read_record(ekv_store *s, unsigned r, const ekv_slot *sl,
                const uint8_t *key, size_t key_len, uint8_t *buf);
/* Write a record to every replica in mask, flushing each; on failure erase
 * what was written. desc[r] gets the descriptor block on replica r. */
int write_everywhere(ekv_store *s, uint32_t mask, uint32_t count,
                     const uint8_t *key, size_t key_len, const uint8_t *val,
                     size_t val_len, uint32_t gen, uint32_t user_flags,
                     uint32_t desc[]);
/* Erase a record (chunks along its chain, then the descriptor) and
 * flush. count: its block count if known (1 saves a read), else 0. */
int erase_chain(ekv_store *s, unsigned r, uint32_t desc, uint32_t count);
/* What store.c shares with stream.c (streamed puts). A scanning build has
 * no streams: there they stay static in store.c, where the compiler can
 * inline them into their one caller, as a firmware build wants. */
#ifdef EKV_NO_INDEX
#define FOR_STREAMS static
#else
#define FOR_STREAMS
/* Erase, from block next on, the chunks 1 .. count - 1 of descriptor desc
 * on replica r, as long as each one still names desc and its index; no
 * flush. Returns how many it found; the first write error goes to *err if
 * that is 0. */
uint32_t erase_chunks(ekv_store *s, unsigned r, uint32_t desc,
                      uint32_t next, uint32_t count, int *err);
#endif
#if !defined(EKV_READONLY) && !defined(EKV_NO_INDEX)
/* Build block idx of a record in blk (bs bytes): the descriptor (idx 0,
 * holding val's first bytes, val_len as the total size) or chunk idx (the
 * bytes of val from *off on, as many as fit); *off advances past what
 * went in. */
void record_block(ekv_store *s, uint8_t *blk, uint32_t idx, uint32_t desc,
                  uint32_t next, uint32_t count, const uint8_t *key,
                  size_t key_len, const uint8_t *val, size_t val_len,
                  size_t *off, uint32_t gen, uint32_t user_flags);
/* Where to build the chunk about to be written to block b of replica r:
 * the buffer the device lends (write_buffer), else s->wbuf. Nothing but
 * that write may reach the device in between. */
uint8_t *chunk_buffer(ekv_store *s, unsigned r, uint32_t b);
#endif
/* stream.c: whether a streamed put is open on s; free every open one
 * (ekv_close), without writing; the memory the open ones hold. */
#if !defined(EKV_NO_INDEX) && !defined(EKV_READONLY)
static inline bool streams_open(const ekv_store *s)
{
    return s->streams != NULL;
}
void streams_drop(ekv_store *s);
size_t streams_memory(const ekv_store *s);
/* A flush of replica r failed with err: streams that wrote there fail. */
void streams_lost(ekv_store *s, unsigned r, int err);
#else
static inline bool streams_open(const ekv_store *s)
{
    (void)s;
    return false;
}
static inline void streams_drop(ekv_store *s)
{
    (void)s;
}
static inline size_t streams_memory(const ekv_store *s)
{
    (void)s;
    return 0;
}
static inline void streams_lost(ekv_store *s, unsigned r, int err)
{
    (void)s, (void)r, (void)err;
}
#endif
#if !defined(EKV_READONLY) && !defined(EKV_NO_INDEX)
/* 0, EKV_EINVAL (no store) or EKV_EROFS. */
int check_writable(ekv_store *s);
/* The first half of a put of key: its entry (added if new), the
 * generation the new record gets, and the slots of the records it
 * replaces. 0, EKV_ENOMEM, EKV_ERANGE or a scan's read error. */
int put_prepare(ekv_store *s, const uint8_t *key, size_t key_len,
                ekv_entry **e, uint32_t *gen, ekv_slot old[]);
/* The second half, once the new record (desc[r] on every replica of mask)
 * is durable: erase the old records, point the entry at the new one. */
void put_retire(ekv_store *s, ekv_entry *e, const ekv_slot old[],
                uint32_t mask, const uint32_t desc[], uint32_t gen,
                size_t key_len, size_t val_len);
#endif
void fill_info(const ekv_store *s, const ekv_entry *e, const uint8_t *key,
               ekv_key_info *info);
unsigned copies_in_order(const ekv_store *s, const ekv_entry *e,
                         unsigned order[]);

#ifndef EKV_NO_INDEX
/* scan_batch.c: recovery's reads of a replica, in ascending block order,
 * many blocks per device call when the device has read_blocks. */
typedef struct scan_batch {
    uint8_t *buf;   /* cap blocks, only while the scan runs */
    uint32_t cap;   /* 0: one read() per block */
    uint32_t first; /* the blocks in buf: first .. first + count - 1 */
    uint32_t count;
    bool failed;    /* read_blocks failed for them: read each again */
} scan_batch;
void batch_open(ekv_store *s, unsigned r, scan_batch *sb);
void batch_close(ekv_store *s, scan_batch *sb);
/* Blocks from b on that the device says read as zeros (free) without
 * being read; 0 when it does not know or b is already in the buffer. */
uint32_t batch_zeros(ekv_store *s, unsigned r, scan_batch *sb, uint32_t b);
/* Block b as dev_read() would give it: 0 and *out, or a device error. A
 * typed block's CRC is checked (s->sound == *out). */
int batch_read(ekv_store *s, unsigned r, scan_batch *sb, uint32_t b,
               const uint8_t **out);
#endif

/* mode_index.c or mode_scan.c */
#ifndef EKV_NO_INDEX
int mode_init(ekv_store *s);        /* before recovering every replica */
void mode_release(ekv_store *s);    /* frees what mode_init and use made */
#else
/* Scan mode keeps nothing per key or block, so its hooks for the index
 * and the free map are no-ops, inline here so that calling them costs
 * nothing. The scratch entry lives in the store's own allocation, after
 * the replicas (store.c: store_size). */
static inline int mode_init(ekv_store *s)
{
    s->tmp = (ekv_entry *)(void *)&s->rep[nrep(s)];
    return 0;
}
static inline void mode_release(ekv_store *s)
{
    (void)s;
}
static inline void mode_forget(ekv_store *s, ekv_entry *e)
{
    (void)s, (void)e;
}
static inline void mode_release_block(ekv_store *s, unsigned r, uint32_t b)
{
    (void)s, (void)r, (void)b;
}
#endif
int mode_recover(ekv_store *s, unsigned r);
/* Bring replica r's report up to date before it is handed out: a no-op,
 * but for the read-only scanning build, which computes it on demand. */
#if defined(EKV_NO_INDEX) && defined(EKV_READONLY)
void mode_report(ekv_store *s, unsigned r);
#else
static inline void mode_report(ekv_store *s, unsigned r)
{
    (void)s, (void)r;
}
#endif
/* The key's entry (slots of every replica), or NULL when no replica has
 * a complete record of it. Scan mode returns s->tmp (overwritten by the
 * next call). */
ekv_entry *mode_locate(ekv_store *s, const uint8_t *key, size_t key_len);
/* As mode_locate, but an indexed store adds a new empty entry (NULL: no
 * memory). */
ekv_entry *mode_locate_or_add(ekv_store *s, const uint8_t *key,
                              size_t key_len);
#ifndef EKV_NO_INDEX
/* Drop an entry none of whose slots holds a record any more. */
void mode_forget(ekv_store *s, ekv_entry *e);
#endif
uint32_t mode_free_count(ekv_store *s, unsigned r, uint32_t need);
/* Take the lowest free block above `after` (EKV_BLOCK_NONE: from 1). */
uint32_t mode_alloc(ekv_store *s, unsigned r, uint32_t after);
#ifndef EKV_NO_INDEX
/* Give block b of replica r back to the free map. */
void mode_release_block(ekv_store *s, unsigned r, uint32_t b);
#endif
int mode_iterate(ekv_store *s, int (*fn)(void *, const ekv_key_info *),
                 void *ctx);
uint32_t mode_records(ekv_store *s);
size_t mode_memory(ekv_store *s, size_t *index_bytes);
#ifndef EKV_NO_INDEX
/* Indexed mode only, for replica.c: the next entry of the index from
 * position *pos (start at 0), or NULL at the end; and a replica whose data
 * area was just erased gets a free map with every data block free. */
ekv_entry *mode_next_entry(ekv_store *s, uint32_t *pos);
int mode_reset_replica(ekv_store *s, unsigned r);
#endif

/* ---- replica.c: every rule about a set of replicas ----------------------
 * Identity, geometry, epochs (the header's format_seq) and participant
 * masks (its flags), the epoch bump before the first change, heal and
 * repair. A build of one replica at most (EKV_MAX_REPLICAS == 1) has no set
 * to keep: the rules compile away. */
#if EKV_MAX_REPLICAS > 1
/* After every header was read (status and report filled): settle geometry,
 * identity, epochs and participants, drop what must be dropped, and say
 * whether the open may go on (0) or why not. */
int replica_settle(ekv_store *s);
/* Whether a header that failed validation is one whose write an epoch
 * change left torn: type, magic, major version, block size and count (the
 * fields a header rewrite never changes) intact, only the CRC wrong. */
bool replica_header_torn(const uint8_t *buf, uint32_t bs, uint32_t bc);
/* Before the first change of the store (put, delete, heal, repair): when a
 * participant of the epoch is not in use, start a new epoch on every active
 * replica. 0 or the error that stops the change. */
#ifndef EKV_READONLY
int replica_before_change(ekv_store *s);
#ifndef EKV_NO_INDEX
/* EKV_OPEN_HEAL, after recovery of the active replicas. */
int replica_heal(ekv_store *s);
#endif
#endif
#else
static inline bool replica_header_torn(const uint8_t *buf, uint32_t bs,
                                       uint32_t bc)
{
    (void)buf, (void)bs, (void)bc;
    return false;
}
static inline int replica_settle(ekv_store *s)
{
    s->bs = s->rep[0].dev->block_size;
    s->bc = s->rep[0].dev->block_count;
    return s->rep[0].status;
}
static inline int replica_before_change(ekv_store *s)
{
    (void)s;
    return 0;
}
static inline int replica_heal(ekv_store *s)
{
    (void)s;
    return 0;
}
#endif

#endif /* EKV_INTERNAL_H */
