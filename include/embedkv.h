/*
 * embedkv.h - libembedkv, a block-based key-value store for small storage.
 *
 * This header is the library's manual. libembedkv keeps byte-string keys and
 * values in fixed-size blocks of one or more replica devices (flash, a UEFI
 * variable region, an image file), in the embedkv v1.0 on-disk format shared
 * with the Go and Rust implementations. Every used block carries a CRC32;
 * updates are copy-on-write with a per-key generation; opening a store runs
 * recovery, which keeps the newest complete record of every key and erases
 * everything else, and builds an in-memory index in the same scan.
 *
 * Conventions
 * - Every function that can fail returns an int: 0 (or a non-negative count)
 *   on success, a negative EKV_E* code on failure. ekv_strerror() names them.
 *   Codes are negative errno values where one fits (littlefs does the same),
 *   so a FUSE daemon may return them as they are.
 * - A store is not thread-safe: callers serialise calls on one store.
 * - "Durable" below means: written and flushed through every active
 *   replica's flush callback. What flush guarantees is the device's business
 *   (the POSIX file device calls fdatasync() unless opened with NOSYNC).
 * - A device read that fails, or returns a block that is neither valid nor
 *   cleanly erased, is tried once more before the core acts on it, so one
 *   transient error or bit flip never costs a record.
 * - The core calls no POSIX or stdio function. Memory comes from the
 *   allocator in ekv_options (the C library's malloc/free when none is given,
 *   unless built with EKV_NO_MALLOC).
 *
 * Copyright 2026 the embedkv C authors. Licensed under the Apache License 2.0.
 */
#ifndef EMBEDKV_H
#define EMBEDKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports what this header and embedkv_file.h declare
 * and nothing else (it is built with hidden visibility). */
#if defined(__GNUC__) && !defined(EKV_API)
#define EKV_API __attribute__((visibility("default")))
#elif !defined(EKV_API)
#define EKV_API
#endif

/* Library version (not the format version). */
#define EKV_LIB_VERSION_MAJOR 0
#define EKV_LIB_VERSION_MINOR 1
#define EKV_LIB_VERSION_PATCH 0
#define EKV_LIB_VERSION_STRING "0.1.0"

/* On-disk format version written by this library; majors other than 1 are
 * rejected on open. */
#define EKV_FORMAT_VERSION_MAJOR 1
#define EKV_FORMAT_VERSION_MINOR 0

/* Block sizes this library accepts, in bytes. 64 is the smallest block that
 * still holds a useful key and value; the largest keeps block buffers sane
 * on small targets and key sizes inside the format's u16 field. */
#define EKV_MIN_BLOCK_SIZE 64u
#define EKV_MAX_BLOCK_SIZE 65536u

/* The most replicas one store may have (replica sets are bit masks, so at
 * most 32). A firmware build may define it smaller to save stack; with 1,
 * the core's loops over replicas compile away (the smallest build). */
#ifndef EKV_MAX_REPLICAS
#define EKV_MAX_REPLICAS 32u
#endif

/* Block index meaning "none" (end of a chunk chain). */
#define EKV_BLOCK_NONE 0xFFFFFFFFu

/* Fixed sizes of the format: headers and the trailing CRC. */
#define EKV_DESCRIPTOR_HEADER_SIZE 32u
#define EKV_CHUNK_HEADER_SIZE 20u
#define EKV_CRC_SIZE 4u

/* Longest key a store with this block size can hold. */
#define EKV_MAX_KEY_SIZE(block_size) \
    ((block_size) - EKV_DESCRIPTOR_HEADER_SIZE - EKV_CRC_SIZE)

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

enum ekv_error {
    EKV_OK = 0,
    EKV_ENOENT = -2,        /* no such key */
    EKV_ENXIO = -6,         /* a replica the store's epoch names was not
                               given (open it with EKV_OPEN_DEGRADED) */
    EKV_EIO = -5,           /* a device read, write or flush failed */
    EKV_ENOMEM = -12,       /* the allocator returned NULL */
    EKV_EBUSY = -16,        /* the device is locked by another user */
    EKV_EINVAL = -22,       /* invalid argument */
    EKV_EFBIG = -27,        /* value larger than the whole store could hold */
    EKV_ENOSPC = -28,       /* not enough free blocks now */
    EKV_EROFS = -30,        /* store (or device) opened read-only */
    EKV_EDOM = -33,         /* geometry: block size/count unsupported, device
                               size != header, or replicas disagree */
    EKV_ERANGE = -34,       /* caller's buffer too small for the value */
    EKV_ENAMETOOLONG = -36, /* key longer than EKV_MAX_KEY_SIZE() */
    EKV_ENOSYS = -38,       /* not available in this build (EKV_NO_INDEX) */
    EKV_EBADHDR = -74,      /* not an embedkv image: storage header invalid */
    EKV_ENOTUNIQ = -76,     /* images are not replicas of one store: two
                               carry one replica_id, or they were written
                               apart (split brain); nothing is merged */
    EKV_ECORRUPT = -84,     /* every copy of a record is corrupt */
    EKV_EVERSION = -95,     /* unsupported format major version */
    EKV_ESTALE = -116       /* replica missed writes (epoch older than the
                               others'): never read, rebuilt by heal/repair */
};

/* A static, human-readable message for an EKV_E* code (or a negated errno
 * a device returned). Never NULL. */
EKV_API
const char *ekv_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Devices                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A device is an array of block_count blocks of block_size bytes. All I/O is
 * one whole block. Callbacks return 0 or a negative error (EKV_EIO, or a
 * negated errno); the core passes device errors through unchanged.
 */
typedef struct ekv_device ekv_device;
struct ekv_device {
    /* Bytes per block, EKV_MIN_BLOCK_SIZE..EKV_MAX_BLOCK_SIZE. */
    uint32_t block_size;
    /* Blocks on the device, header block included; at least 1. */
    uint32_t block_count;
    /* Read block `block` (< block_count) into buf (block_size bytes). */
    int (*read)(ekv_device *dev, uint32_t block, void *buf);
    /* Write buf (block_size bytes) to block `block`. Need not be durable
     * until flush returns. NULL on a read-only device. */
    int (*write)(ekv_device *dev, uint32_t block, const void *buf);
    /* Make every earlier write durable. NULL means nothing to do. */
    int (*flush)(ekv_device *dev);
    /* Release the device (ekv_device_close() calls it). May be NULL. */
    void (*close)(ekv_device *dev);
    /* The backend's own state. */
    void *ctx;
    /* Optional: read `count` consecutive blocks from `first` into buf
     * (count * block_size bytes) in one go. Recovery of the indexed core
     * uses it to scan the whole storage in batches (a buffer of about
     * 64 KiB, taken from the store's allocator for the scan only; if that
     * allocation fails, or the hook is NULL, the core reads one block at a
     * time, which is what a flash with block-sized I/O wants; the
     * EKV_NO_INDEX core never uses it). Return 0 only when all count
     * blocks are in buf; any other value is a failure, and a failure is
     * never taken as a verdict on any block: the core reads every block
     * of the range again through read(), with its usual retry. A block of
     * a good batch that is neither a valid block nor uniformly erased is
     * read again through read() as well. */
    int (*read_blocks)(ekv_device *dev, uint32_t first, uint32_t count,
                       void *buf);
    /* Optional, consulted only with read_blocks: how many blocks from
     * `first` on (at most `count`) are known to read as all 0x00 bytes
     * without being read (a hole of a sparse image file); 0 when block
     * `first` may hold data or the device does not know. Recovery takes
     * such blocks as free (0x00-erased) without reading them, so a
     * device must never count a block that could hold anything else. */
    uint32_t (*zero_run)(ekv_device *dev, uint32_t first, uint32_t count);
    /* Optional: a buffer of block_size bytes in which the core may build
     * the block it is about to write to `block`, or NULL to have it build
     * the block in its own buffer. When it lends one, the core's next call
     * on this device is write() of `block` with that very buffer, so a
     * device that gathers writes can lend the next place of its run and
     * skip the copy (the file device does). The core asks only for the
     * chunks of a value (descriptors are built in its own buffer); the
     * EKV_NO_INDEX build never asks. */
    void *(*write_buffer)(ekv_device *dev, uint32_t block);
};

/* Close a device through its close callback. NULL is accepted. */
EKV_API
void ekv_device_close(ekv_device *dev);

/*
 * ekv_mem_device_init - a device over caller-owned memory.
 * @dev:        filled in; no allocation is made.
 * @mem:        block_size * block_count bytes, kept by the caller.
 * @block_size, @block_count: the geometry.
 * Returns 0, or EKV_EINVAL for a NULL pointer or zero geometry.
 */
EKV_API
int ekv_mem_device_init(ekv_device *dev, void *mem, uint32_t block_size,
                        uint32_t block_count);

/* ------------------------------------------------------------------------ */
/* Allocation hook and options                                               */
/* ------------------------------------------------------------------------ */

typedef struct ekv_allocator {
    /* Return size bytes aligned for any object, or NULL. */
    void *(*alloc)(void *ctx, size_t size);
    /* Release what alloc returned; size is what was asked for. */
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx;
} ekv_allocator;

/* Flags of ekv_options.flags. */
/* Open read-only: recovery runs in memory only (incomplete records are
 * skipped, nothing is erased) and put/delete/repair return EKV_EROFS. No
 * device write or flush is ever issued. */
#define EKV_OPEN_RDONLY 0x1u
/* Degraded open: replicas whose header is unusable (or whose geometry
 * disagrees with the first good one) are dropped instead of failing the
 * open, as long as one replica is good. ekv_replica_report_get() says
 * which and why. */
#define EKV_OPEN_DEGRADED 0x2u

/* Heal on a writable open (see "Replica sets" below): rebuild replicas
 * whose epoch is older than the others' (EKV_ESTALE), and copy each key's
 * newest record to current replicas that lag behind after a crash. Without
 * it (and without EKV_OPEN_DEGRADED) a writable open of a set with a stale
 * replica fails with EKV_ESTALE. It also rewrites a header an interrupted
 * epoch change left torn. ekv_stats_get() and ekv_replica_report_get() say
 * what it did. EKV_NO_INDEX builds cannot
 * heal: there the flag is accepted but a stale replica still needs
 * EKV_OPEN_DEGRADED (it is then dropped). */
#define EKV_OPEN_HEAL 0x8u
/* For ekv_repair of images that are not replicas of one store
 * (EKV_ENOTUNIQ): keep the first image named with a valid header (and the
 * images that agree with it) and drop the others with EKV_ENOTUNIQ, so
 * that ekv_repair (with EKV_OPEN_DEGRADED) empties and overwrites them.
 * Destroys the dropped images' data: only on a user's explicit request. */
#define EKV_OPEN_FORCE 0x10u

/* Pick the erase byte from the storage: the first replica's free blocks
 * decide (0xFF when more of them start with 0xFF than with 0x00, else
 * erase_byte), so a tool writing to a flash dump keeps its erased state. */
#define EKV_OPEN_ERASE_AUTO 0x4u

typedef struct ekv_options {
    /* EKV_OPEN_* flags. */
    uint32_t flags;
    /* Byte that erased blocks are filled with: 0x00 (default, zero-filled
     * files) or 0xFF (erased NAND/NOR flash). Reading accepts both. */
    uint8_t erase_byte;
    /* Memory for the store; NULL uses malloc/free (an EKV_NO_MALLOC build
     * has none: the open fails with EKV_ENOMEM). */
    const ekv_allocator *allocator;
} ekv_options;

typedef struct ekv_format_options {
    /* Replica i gets replica_id = replica_id_base + i. Default 0. */
    uint32_t replica_id_base;
    /* Stored in every header as given. Default 0. */
    uint32_t format_seq;
    /* Fill used for data blocks when erase_data is set (0x00 or 0xFF). */
    uint8_t erase_byte;
    /* Non-zero: also erase every data block. Zero (the Go/Rust behaviour)
     * writes block 0 only, so old records in the data area survive and
     * recovery judges them on the next open. */
    uint8_t erase_data;
    /* Where the one block buffer comes from; NULL uses malloc/free (an
     * EKV_NO_MALLOC build has none: the format fails with EKV_ENOMEM). */
    const ekv_allocator *allocator;
    /* The participant mask written to every header's flags field (bit
     * replica_id & 31 per replica of the set, see "Replica sets"). 0 lets
     * ekv_format choose: the bits of the n replicas when n > 1, else 0 (the
     * upstream header, byte for byte). Set it to format the replicas of
     * one set one call at a time. */
    uint32_t participants;
} ekv_format_options;

/*
 * A stack allocator over caller memory, for builds without malloc: each
 * allocation takes the next 8-aligned bytes; a free gives memory back when
 * it is the top of the stack, which is how a store releases everything on
 * ekv_close (so an arena can be opened and closed any number of times).
 * ekv_store_memory() tells how much an EKV_NO_INDEX store needs.
 */
typedef struct ekv_bump {
    uint8_t *mem;
    size_t size;
    size_t used; /* bytes taken, alignment included */
} ekv_bump;

/* Set up *a to allocate from mem[0..size) through *b. */
EKV_API
void ekv_bump_init(ekv_allocator *a, ekv_bump *b, void *mem, size_t size);

/* Bytes an open store needs for block_size and replicas, when built with
 * EKV_NO_INDEX (the indexed build adds its index and free maps, see
 * ekv_stats_get), alignment slack included. */
EKV_API
size_t ekv_store_memory(uint32_t block_size, unsigned replicas);

/* A compile-time upper bound of ekv_store_memory(), for static arenas:
 * three block buffers plus the store and per-replica state. ekv_format
 * needs one block of it while it runs. */
#define EKV_STORE_MEMORY(block_size, replicas) \
    (3u * (size_t)(block_size) + 256u + 128u * (size_t)(replicas))

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct ekv_store ekv_store;

#ifndef EKV_READONLY
/*
 * ekv_format - write a fresh storage header to every device.
 * @devs, @n: 1..EKV_MAX_REPLICAS devices of the same geometry.
 * @opt:      NULL for the defaults (ids from 0, format_seq 0, header only).
 * Block 0 of replica i gets the v1.0 header with replica_id base + i. Each
 * device is flushed. Returns 0, EKV_EINVAL, EKV_EDOM (unsupported or
 * mismatched geometry), EKV_EROFS (device has no write), or a device error.
 * Durable on return: every header.
 */
EKV_API
int ekv_format(ekv_device *const devs[], unsigned n,
               const ekv_format_options *opt);
#endif

/*
 * ekv_open - open a store over replica devices: validate every header, run
 * recovery on each replica and build the key index, reading each block once.
 * @out:  receives the store.
 * @devs, @n: 1..EKV_MAX_REPLICAS devices; they must outlive the store.
 * @opt:  NULL for the defaults (read-write, erase byte 0x00, malloc).
 * Writable open: blocks that are neither free nor part of the newest
 * complete record of a key are erased and the replica flushed (the image
 * then equals what the Go/Rust recovery leaves). A replica on which a block
 * could not be read is not erased at all (it is recovered in memory only),
 * so an unreadable block never costs the rest of its record.
 * Returns 0; EKV_EBADHDR, EKV_EVERSION or EKV_EDOM for a bad header or
 * geometry (any replica, unless EKV_OPEN_DEGRADED and one is good; mixed
 * geometry degraded: the one most replicas share wins, a tie the first);
 * EKV_ENOTUNIQ for images of two stores or replicas written apart (always);
 * EKV_ESTALE for a writable open with a stale replica without
 * EKV_OPEN_HEAL or EKV_OPEN_DEGRADED; EKV_ENXIO for a writable open without
 * EKV_OPEN_DEGRADED when a replica the epoch names was not given; EKV_EIO
 * or a device error when a header cannot be read; EKV_ENOMEM; EKV_EINVAL;
 * EKV_ENOMEM also when healing runs out of memory (any other error of heal
 * leaves the open successful and is in ekv_stats.heal_error).
 * Durable on return: the recovery erasures, and what heal wrote.
 *
 * Replica sets. The storage header's format_seq (FORMAT.md offset 20) is
 * the set's epoch and its flags (offset 24) the participant mask of that
 * epoch: bit (replica_id & 31) per replica that received every write made
 * at it, 0 meaning every replica named. Upstream stores both and ignores
 * them. A replica whose format_seq is below the highest is stale: it
 * missed writes and is never read nor copied from (its report's status is
 * EKV_ESTALE). The first change of a writable store whose epoch has a
 * participant not in use first writes every active replica's header with
 * format_seq + 1 and the active replicas' mask (each flushed; a crash at
 * any of those writes leaves replicas that all hold every acknowledged
 * write, the ones not yet rewritten stale from then on). EKV_ERANGE when
 * format_seq is 0xFFFFFFFF. A header whose rewrite was cut (fixed fields
 * whole, CRC wrong) is used with the epoch it shows and rewritten by the
 * next change (report: header_torn). EKV_MAX_REPLICAS == 1 builds compile
 * these rules away.
 */
EKV_API
int ekv_open(ekv_store **out, ekv_device *const devs[], unsigned n,
             const ekv_options *opt);

/*
 * ekv_close - free the store. Devices are not closed (they are the
 * caller's). Every completed put/delete was already durable; close writes
 * nothing. NULL is accepted.
 */
EKV_API
void ekv_close(ekv_store *s);

/*
 * ekv_recover - scan the replicas again: rerun recovery (in memory only on a
 * read-only store) and rebuild the index, as ekv_open did. Use it after the
 * devices were changed behind the store's back.
 * Returns 0 or an error as ekv_open; on error the store is unusable except
 * for ekv_close.
 */
EKV_API
int ekv_recover(ekv_store *s);

/* Facts about one key. */
typedef struct ekv_key_info {
    const uint8_t *key;      /* valid until the next call that changes the
                                store; not NUL-terminated */
    size_t key_len;
    uint32_t value_size;     /* of the newest complete record */
    uint32_t generation;     /* of the newest complete record */
    uint32_t replicas;       /* bit i: replica i holds that generation */
    uint32_t stale;          /* bit i: replica i holds only an older one */
} ekv_key_info;

/*
 * ekv_stat_key - look a key up in the index (no device I/O).
 * Returns 0 and fills *info, EKV_ENOENT, or EKV_EINVAL.
 */
EKV_API
int ekv_stat_key(ekv_store *s, const void *key, size_t key_len,
                 ekv_key_info *info);

/*
 * ekv_get - read a key's value: the highest-generation complete record
 * across replicas, re-read and re-verified (CRC, chain) on every call; a
 * copy that is corrupt or unreadable falls back to the next best one.
 * @buf, @cap: where the value goes. @len: receives the value's length
 *             (also on EKV_ERANGE, so a caller can size a buffer).
 * Returns 0; EKV_ENOENT; EKV_ERANGE when cap < value length (buf is then
 * unspecified); EKV_ECORRUPT when no copy verifies; EKV_EIO (or the
 * device's error) when the only readable copies failed to read.
 */
EKV_API
int ekv_get(ekv_store *s, const void *key, size_t key_len, void *buf,
            size_t cap, size_t *len);

/*
 * ekv_get_replica - read a key's newest complete record on replica i only,
 * re-read and re-verified as ekv_get does, but with no fall-back to another
 * replica: for tools that compare replicas (embedkvfs check).
 * @buf, @cap: where the value goes; buf NULL with cap 0 only verifies.
 * @len, @generation: if not NULL, receive that copy's value length and
 *             generation (also on EKV_ERANGE and EKV_ECORRUPT).
 * Returns 0; EKV_ENOENT when replica i holds no complete copy of the key;
 * EKV_ERANGE when buf is given and cap < value length; EKV_ECORRUPT when the
 * copy no longer verifies; the replica's own error when it was dropped at
 * open; EKV_EINVAL (bad index or arguments); or the device's read error.
 */
EKV_API
int ekv_get_replica(ekv_store *s, unsigned i, const void *key, size_t key_len,
                    void *buf, size_t cap, size_t *len, uint32_t *generation);

#ifndef EKV_READONLY
/*
 * ekv_put - store a value (copy-on-write).
 * The new record gets generation = the key's highest generation + 1 (1 for a
 * new key) and is written to the lowest free blocks of every active replica
 * and flushed there; only then are the old record's blocks erased and
 * flushed. If writing the new record fails on any replica, what was written
 * is erased again and the old value stays in force everywhere.
 * @user_flags: stored verbatim in the descriptor (ekv_put uses 0).
 * Returns 0; EKV_EROFS; EKV_ENAMETOOLONG (key too long for the block size);
 * EKV_EFBIG (value needs more blocks than the store has); EKV_ENOSPC (not
 * enough free blocks on some replica now; nothing was written); EKV_ERANGE
 * (the key's generation reached 0xFFFFFFFF: delete it and put it again);
 * EKV_ENOMEM;
 * or the device's error (old value kept).
 * Durable on return 0: the new value on every active replica. If erasing
 * the old record then fails, the put still returns 0: the newer generation
 * wins on every read and recovery, and the old blocks stay out of use until
 * the next recovery erases them (ekv_stats counts the errors); a failed
 * erase is tried once more first. A delete retries a failed erase too.
 */
EKV_API
int ekv_put(ekv_store *s, const void *key, size_t key_len, const void *val,
            size_t val_len);
EKV_API
int ekv_put_flags(ekv_store *s, const void *key, size_t key_len,
                  const void *val, size_t val_len, uint32_t user_flags);

/*
 * ekv_delete - erase every block of the key's records on every replica
 * (the chunks along the chain, then the descriptor) and flush.
 * Returns 0, EKV_ENOENT, EKV_EROFS, or the device's error. On error the
 * store keeps what may still be on a device: a copy whose erase failed
 * stays in the index, and get() tells whether it still verifies (an erase
 * that got half way leaves a record that recovery will remove).
 * Durable on return 0.
 */
EKV_API
int ekv_delete(ekv_store *s, const void *key, size_t key_len);

/*
 * Streamed puts: a value written to the devices while it arrives, for
 * values too large to hand over in one piece, or to overlap producing a
 * value with writing it. The result is the same record, in the same blocks,
 * that ekv_put_flags of the whole value would write then: what differs is
 * when its blocks are written.
 *
 *   ekv_stream *w;
 *   err = ekv_stream_open(s, &w, key, key_len, 0);
 *   while (!err && more) err = ekv_stream_write(w, piece, n);
 *   err = err ? (ekv_stream_abandon(w), err) : ekv_stream_commit(w);
 *
 * - ekv_stream_write writes every chunk as soon as the data after it
 *   arrives (a chunk's header names the next block, and the last one says
 *   it is last), so one chunk's worth of data, and the first payload,
 *   wait in the stream's memory (about two blocks).
 * - ekv_stream_commit writes the last chunk and then the descriptor, and
 *   flushes, replica by replica; then it erases the old record, as ekv_put
 *   does. Until the descriptor is written nothing refers to the chunks: a
 *   crash before the commit returns leaves the old value (recovery erases
 *   the chunks), and the commit's result is ekv_put's. The generation is
 *   taken at commit, so puts and deletes of the same key in between are
 *   older than the stream's value.
 * - Other calls on the store may come between a stream's calls, and
 *   several streams may be open; the blocks a stream holds are in use for
 *   everyone else. ekv_recover and ekv_repair refuse (EKV_EBUSY) while a
 *   stream is open; ekv_close frees open streams without writing (their
 *   blocks are garbage that the next recovery erases).
 * - After an error from ekv_stream_write (EKV_ENOSPC, EKV_EFBIG, a device
 *   error) the stream is dead: every later call returns that error, and
 *   only ekv_stream_abandon is left to call. A flush of a replica that
 *   fails in any call while the stream has chunks there unflushed kills
 *   the stream too (with that error): the failed flush may have lost them,
 *   as a failed fsync may on Linux, and a commit would make a record
 *   whose chunks are gone.
 * Indexed builds only: EKV_NO_INDEX builds return EKV_ENOSYS from open.
 */
typedef struct ekv_stream ekv_stream;

/*
 * ekv_stream_open - start a streamed put of key (user_flags as for
 * ekv_put_flags). Writes nothing yet.
 * Returns 0 (*out set); EKV_EINVAL, EKV_EROFS, EKV_ENAMETOOLONG,
 * EKV_ENOMEM, EKV_ENOSYS.
 */
EKV_API
int ekv_stream_open(ekv_store *s, ekv_stream **out, const void *key,
                    size_t key_len, uint32_t user_flags);
/*
 * ekv_stream_write - append len bytes to the value. Returns 0, or the
 * stream's error: EKV_EFBIG (the value would outgrow the store or 4 GiB),
 * EKV_ENOSPC (no free block for the next chunk now), or the device's.
 */
EKV_API
int ekv_stream_write(ekv_stream *w, const void *data, size_t len);
/*
 * ekv_stream_commit - store the value written so far, and free w.
 * Returns what ekv_put would; after a failure nothing of the stream is
 * left on any device (flushed) and the old value is in force.
 */
EKV_API
int ekv_stream_commit(ekv_stream *w);
/*
 * ekv_stream_abandon - drop the stream and free w: what it wrote is erased
 * and flushed, and only then are its blocks given back (a later put takes
 * the same blocks, and its descriptor must never find a chunk of the
 * stream's there after a crash). A block whose erase or flush failed
 * stays out of use until the next recovery. NULL is ignored.
 */
EKV_API
void ekv_stream_abandon(ekv_stream *w);
#endif /* !EKV_READONLY */

/*
 * ekv_iterate - call fn once for every key, in no particular order.
 * fn returns 0 to go on, anything else to stop (that value is returned).
 * fn must not change the store. Returns 0, or fn's non-zero value.
 */
EKV_API
int ekv_iterate(ekv_store *s, int (*fn)(void *ctx, const ekv_key_info *info),
                void *ctx);

typedef struct ekv_stats {
    uint32_t block_size;
    uint32_t block_count;      /* per replica, header included */
    uint32_t replicas;         /* devices given to open */
    uint32_t active_replicas;  /* those in use (not dropped) */
    uint32_t free_blocks;      /* the fewest free blocks of any active
                                  replica: what a put can count on */
    uint32_t used_blocks;      /* block_count - 1 - free_blocks */
    uint32_t records;          /* keys in the index */
    uint32_t max_key_size;     /* EKV_MAX_KEY_SIZE(block_size) */
    uint32_t read_only;        /* opened with EKV_OPEN_RDONLY */
    uint32_t io_errors;        /* device errors seen since open */
    uint32_t epoch;            /* the set's epoch: the highest format_seq of
                                  a valid header (ekv_open, Replica sets) */
    uint32_t participants;     /* its participant mask (header flags; bit
                                  replica_id & 31), 0 = every replica named */
    uint32_t missing;          /* participants that are not in use now:
                                  absent, dropped or stale (bits as above) */
    uint32_t healed_replicas;  /* replicas rebuilt by heal/repair since open */
    uint32_t healed_records;   /* records heal/repair copied since open */
    int heal_error;            /* why EKV_OPEN_HEAL could not finish (a
                                  device error, EKV_ENOSPC), else 0: the
                                  open still succeeds, what was not healed
                                  stays out of use or diverged */
    size_t index_bytes;        /* memory held by the key index */
    size_t memory_bytes;       /* all memory held by the store */
} ekv_stats;

/* ekv_stats_get - fill *st. Returns 0 or EKV_EINVAL. No device I/O. */
EKV_API
int ekv_stats_get(ekv_store *s, ekv_stats *st);

/* What the scan of one replica found (ekv_replica_report). */
typedef struct ekv_replica_report {
    int status;              /* 0 in use, else why it was dropped:
                                EKV_ESTALE (older epoch: missed writes),
                                EKV_ENOTUNIQ (not a replica of this store),
                                EKV_EDOM (geometry), a header error, ... */
    uint32_t replica_id, format_seq;
    uint32_t participants;   /* the header's flags field: participant mask */
    uint32_t healed;         /* 1: rebuilt (emptied, refilled) by heal or
                                repair since open */
    uint32_t copied;         /* records heal or repair wrote to it */
    uint32_t header_torn;    /* 1: its header's CRC is wrong but its fixed
                                fields are this device's: a header write of
                                an epoch change was cut (used, rewritten by
                                the next change) */
    uint16_t version_major, version_minor;
    uint32_t block_size, block_count;
    uint32_t free_blocks;       /* free after recovery (in memory or not) */
    uint32_t descriptor_blocks; /* blocks with a valid descriptor CRC */
    uint32_t chunk_blocks;      /* blocks with a valid chunk CRC */
    uint32_t garbage_blocks;    /* neither free nor a valid block */
    uint32_t unreadable_blocks; /* read errors during the scan */
    uint32_t complete_records;  /* descriptors whose record verified */
    uint32_t incomplete_records;/* descriptors whose record did not */
    uint32_t stale_records;     /* complete, but not the newest of the key */
    uint32_t erased_blocks;     /* erased by the last recovery (writable) */
    uint32_t erasable_blocks;   /* what a writable recovery erases (or, on a
                                   writable store, erased): stale and
                                   incomplete records, orphans, garbage */
    uint32_t keys;              /* keys with a complete record here */
} ekv_replica_report;

/*
 * ekv_replica_report_get - what opening (or the last ekv_recover) found on
 * replica i. Returns 0, or EKV_EINVAL for a bad index. No device I/O,
 * except in a read-only scanning build (EKV_READONLY with EKV_NO_INDEX):
 * opening there runs no recovery pass (it would erase nothing and keep
 * nothing, as every lookup verifies what it reads), so the first call
 * after an open or ekv_recover scans the replica to fill the report, with
 * the stack and the O(blocks^2) reads a recovery takes.
 */
EKV_API
int ekv_replica_report_get(ekv_store *s, unsigned i, ekv_replica_report *r);

#ifndef EKV_READONLY
/*
 * ekv_repair - bring every replica to the newest complete record of every
 * key. Needs a writable store, normally opened with EKV_OPEN_DEGRADED.
 * A stale replica, and a dropped one whose device has the store's
 * geometry, is emptied (its records missed changes, so none is trusted:
 * a deleted key must not come back) and refilled; only then does every
 * replica get a header of a new epoch naming them all (a revived one with
 * a fresh replica_id following the good replicas' numbering). A stale
 * replica is never copied from. Then each key's
 * newest record is copied (same generation) to every replica that lacks it
 * or holds an older or corrupt copy: written and flushed before the older
 * copy is erased, so a crash at any point loses no key that was complete.
 * A dropped replica that cannot be revived (other geometry, read-only, or a
 * failing header write) stays dropped; the others are still repaired and
 * the first such error is returned. ekv_replica_report_get() tells which.
 * @copied: if not NULL, receives the number of records written.
 * Returns 0, EKV_EROFS, EKV_ENOSPC (a lagging replica is too full), the
 * dropped replica's error, the read error when no copy of some key could
 * be read, EKV_ENOSYS in an EKV_NO_INDEX build, or the device's error.
 * Durable on return 0.
 */
EKV_API
int ekv_repair(ekv_store *s, uint32_t *copied);
#endif

/* ------------------------------------------------------------------------ */
/* Block decoding, for inspection tools                                      */
/* ------------------------------------------------------------------------ */

enum ekv_block_kind {
    EKV_BLOCK_FREE = 0,       /* first byte 0x00 or 0xFF, no valid CRC */
    EKV_BLOCK_HEADER = 1,     /* storage header, CRC right */
    EKV_BLOCK_DESCRIPTOR = 2, /* record descriptor, CRC right */
    EKV_BLOCK_CHUNK = 3,      /* value chunk, CRC right */
    EKV_BLOCK_GARBAGE = 4     /* anything else */
};

typedef struct ekv_block_info {
    enum ekv_block_kind kind;
    uint8_t type_byte;       /* first byte as found */
    uint8_t header_size;     /* descriptor/chunk header_size field */
    int crc_ok;              /* stored CRC matches */
    uint32_t crc_stored, crc_computed;
    /* header */
    uint16_t version_major, version_minor;
    uint32_t block_size, block_count, replica_id, format_seq;
    /* descriptor and chunk */
    uint32_t flags;          /* descriptor flags, or chunk flags (u16) */
    uint32_t user_flags;
    uint16_t key_size;
    uint32_t generation, total_size, payload_size, chunk_count;
    uint32_t next_chunk, owner, chunk_index;
    const uint8_t *key;      /* points into the block buffer; NULL if the
                                key does not fit the block */
} ekv_block_info;

/*
 * ekv_block_decode - classify one raw block and decode its fields, without
 * any device. Fields not of the block's type are zero, except next_chunk,
 * which is EKV_BLOCK_NONE unless the block is a descriptor or chunk. Always succeeds for
 * block_size >= 36 (returns 0); EKV_EINVAL otherwise.
 */
EKV_API
int ekv_block_decode(const void *buf, uint32_t block_size,
                     ekv_block_info *info);

#ifndef EKV_NO_MALLOC
/*
 * ekv_read_header - read and validate block 0 of one device, decoding it
 * into *info (if not NULL) even when it is invalid, for messages and
 * inspection. Returns 0, EKV_EBADHDR, EKV_EVERSION, EKV_EDOM (device
 * geometry unsupported or not the header's), EKV_EINVAL, EKV_ENOMEM, or the
 * device's read error. Uses the default allocator.
 */
EKV_API
int ekv_read_header(ekv_device *dev, ekv_block_info *info);
#endif

/* CRC-32/IEEE (zlib's crc32()) of len bytes, continuing from crc (start
 * with 0): ekv_crc32(ekv_crc32(0, a, n), b, m) is the CRC of a then b.
 *
 * Platform CRC: a core built with EKV_CRC_EXTERN does not define this
 * function; the platform does, with exactly this contract (reflected
 * polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF applied
 * inside, so that it chains as above), typically over a hardware CRC unit
 * or a ROM routine. The core then has no CRC table and computes every
 * block's CRC through it; it may be called with any alignment and any
 * length, len 0 included (return crc then). EKV_CRC_SMALL has no effect
 * with EKV_CRC_EXTERN. */
EKV_API
uint32_t ekv_crc32(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKV_H */
