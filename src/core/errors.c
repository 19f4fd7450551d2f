/*
 * errors.c - messages for the EKV_E* codes.
 */
#include "ekv_internal.h"

const char *ekv_strerror(int err)
{
    switch (err) {
    case EKV_OK: return "success";
    case EKV_ENOENT: return "no such key";
    case EKV_ENXIO: return "a replica of this store is missing "
                           "(name every image, or open degraded)";
    case EKV_ENOTUNIQ: return "images are not replicas of one store";
    case EKV_ESTALE: return "stale replica: it missed writes "
                            "(older epoch than the others)";
    case EKV_EIO: return "input/output error";
    case EKV_ENOMEM: return "out of memory";
    case EKV_EBUSY: return "image is locked by another process (mounted?)";
    case EKV_EINVAL: return "invalid argument";
    case EKV_EFBIG: return "value too large for this storage";
    case EKV_ENOSPC: return "no free blocks left on the storage";
    case EKV_EROFS: return "storage is read-only";
    case EKV_EDOM: return "unsupported or mismatched geometry "
                          "(block size, block count or image size)";
    case EKV_ERANGE: return "buffer too small for the value";
    case EKV_ENAMETOOLONG: return "key too long for the block size";
    case EKV_ENOSYS: return "not available in this build";
    case EKV_EBADHDR: return "not an embedkv image (storage header invalid)";
    case EKV_ECORRUPT: return "record corrupt in every replica";
    case EKV_EVERSION: return "unsupported embedkv format version";
    case -1: return "operation not permitted";
    case -13: return "permission denied";
    case -21: return "is a directory";
    case -24: return "too many open files";
    default: return "unknown error";
    }
}
