// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78), the checksum of
// iSCSI, ext4 and PostgreSQL's WAL, used by the checkpoint format.
//
// The functions take the running checksum and return the updated one: start
// with 0 and feed the data in pieces of any size; the conventional pre- and
// post-inversion happen inside, so pg_crc32c(0, "123456789", 9) is the
// standard check value 0xE3069283 and
// pg_crc32c(pg_crc32c(0, a, n), b, m) is the checksum of a followed by b.
#ifndef PGALLOC_CCRC32C_H
#define PGALLOC_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The checksum of `length` bytes at `data`, continuing from `crc`. Uses the
// SSE 4.2 crc32 instruction when the CPU has it, the table-driven code
// otherwise. `data` may be NULL when `length` is 0. Thread-safe.
uint32_t pg_crc32c(uint32_t crc, const void *data, size_t length);

// The same result as pg_crc32c, always computed by the portable
// slicing-by-8 code. For tests and measurements.
uint32_t pg_crc32c_portable(uint32_t crc, const void *data, size_t length);

// 1 if pg_crc32c uses the crc32 instruction on this machine, 0 otherwise.
int pg_crc32c_hardware_available(void);

#ifdef __cplusplus
}
#endif

#endif
