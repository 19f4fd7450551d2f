/*
 * device.c - the memory device and the generic device helpers.
 */
#include "ekv_internal.h"

void ekv_device_close(ekv_device *dev)
{
    if (dev && dev->close)
        dev->close(dev);
}

static int mem_read(ekv_device *dev, uint32_t block, void *buf)
{
    if (block >= dev->block_count)
        return EKV_EINVAL;
    memcpy(buf, (uint8_t *)dev->ctx + (size_t)block * dev->block_size,
           dev->block_size);
    return 0;
}

static int mem_write(ekv_device *dev, uint32_t block, const void *buf)
{
    if (block >= dev->block_count)
        return EKV_EINVAL;
    memcpy((uint8_t *)dev->ctx + (size_t)block * dev->block_size, buf,
           dev->block_size);
    return 0;
}

int ekv_mem_device_init(ekv_device *dev, void *mem, uint32_t block_size,
                        uint32_t block_count)
{
    if (!dev || !mem || !block_size || !block_count)
        return EKV_EINVAL;
    memset(dev, 0, sizeof(*dev));
    dev->block_size = block_size;
    dev->block_count = block_count;
    dev->read = mem_read;
    dev->write = mem_write;
    dev->ctx = mem;
    return 0;
}
