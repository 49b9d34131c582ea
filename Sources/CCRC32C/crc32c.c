// CRC-32C in two implementations that give identical results:
//
// - the SSE 4.2 `crc32` instruction (x86-64), running three independent
//   checksums over three adjacent blocks at once and joining them, and
// - portable slicing-by-8 tables, for other CPUs and for tests.
//
// Vocabulary used below. The checksum register is a polynomial over GF(2) of
// degree < 32, stored bit-reversed: bit 31 holds the coefficient of x^0 and
// bit 0 that of x^31. Multiplying by x is then a right shift, and when the
// x^31 coefficient falls off the end it is reduced by adding (xor) the
// reversed polynomial 0x82F63B78. The public functions invert the register
// on entry and on exit; everything else works on the raw register.

#include "CCRC32C.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define PG_CRC32C_X86 1
#endif

#define CRC32C_POLY 0x82F63B78u

// Lengths, in bytes, of each of the three blocks checksummed side by side.
// Joining three blocks costs two table shifts (a few nanoseconds), so long
// buffers use long blocks to make that cost vanish, and medium ones (a 4 KiB
// page, say) still get the parallel speed from short blocks.
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

// slicing[k][b] is the register change caused by byte b followed by k zero
// bytes; slicing[0] is the classic byte-at-a-time table.
static uint32_t slicing[8][256];

#ifdef PG_CRC32C_X86
// A table that multiplies a register by x^(8 * block) modulo the polynomial,
// one byte of the register at a time (multiplication is linear, so the four
// partial products simply xor together).
typedef struct {
    uint32_t byte[4][256];
} shift_table;

static shift_table long_shift;
static shift_table short_shift;
static int use_hardware;
#endif

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

// The register times x, reduced.
static uint32_t times_x(uint32_t r) {
    return (r & 1) ? (r >> 1) ^ CRC32C_POLY : r >> 1;
}

#ifdef PG_CRC32C_X86
// a * b modulo the polynomial: for every term x^i present in a, add b * x^i.
static uint32_t multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t term = 0x80000000u; term != 0; term >>= 1) {
        if (a & term) {
            product ^= b;
        }
        b = times_x(b);
    }
    return product;
}

static void build_shift_table(shift_table *table, size_t block) {
    // x^(8 * block): the factor that appending `block` zero bytes applies.
    uint32_t factor = 0x80000000u;
    for (size_t i = 0; i < 8 * block; i++) {
        factor = times_x(factor);
    }
    for (int k = 0; k < 4; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            table->byte[k][b] = multiply(b << (8 * k), factor);
        }
    }
}

static inline uint32_t shift(const shift_table *table, uint32_t r) {
    return table->byte[0][r & 0xff] ^ table->byte[1][(r >> 8) & 0xff] ^
           table->byte[2][(r >> 16) & 0xff] ^ table->byte[3][r >> 24];
}
#endif

static void build_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t r = b;
        for (int i = 0; i < 8; i++) {
            r = times_x(r);
        }
        slicing[0][b] = r;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t r = slicing[k - 1][b];
            slicing[k][b] = (r >> 8) ^ slicing[0][r & 0xff];
        }
    }
#ifdef PG_CRC32C_X86
    __builtin_cpu_init();
    use_hardware = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (use_hardware) {
        build_shift_table(&long_shift, LONG_BLOCK);
        build_shift_table(&short_shift, SHORT_BLOCK);
    }
#endif
}

// Eight bytes as a little-endian integer, from any alignment.
static inline uint64_t load_le64(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static uint32_t update_portable(uint32_t r, const unsigned char *p, size_t n) {
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w = load_le64(p);
        uint32_t lo = r ^ (uint32_t)w;
        uint32_t hi = (uint32_t)(w >> 32);
        r = slicing[7][lo & 0xff] ^ slicing[6][(lo >> 8) & 0xff] ^
            slicing[5][(lo >> 16) & 0xff] ^ slicing[4][lo >> 24] ^
            slicing[3][hi & 0xff] ^ slicing[2][(hi >> 8) & 0xff] ^
            slicing[1][(hi >> 16) & 0xff] ^ slicing[0][hi >> 24];
    }
    for (; n > 0; p++, n--) {
        r = (r >> 8) ^ slicing[0][(r ^ *p) & 0xff];
    }
    return r;
}

#ifdef PG_CRC32C_X86
// Consumes as many runs of three `block`-byte blocks as fit in *n.
//
// The instruction's result depends on the previous one (3 cycles of latency)
// but a new one can start every cycle, so one chain leaves two thirds of the
// unit idle. Three chains over blocks A, B, C fill it. The register after
// A is what the caller's register becomes; B and C are summed from a zero
// register. The checksum is linear: feeding B after a register r gives
// (r times x^(8 * block)) xor (B summed from zero), because zero bytes only
// multiply the register by x^8 each. So the joined register is
// shift(shift(rA) ^ rB) ^ rC, with the shift done by table lookups.
__attribute__((target("sse4.2")))
static uint32_t update_interleaved(uint32_t r, const unsigned char **pp, size_t *n,
                                   size_t block, const shift_table *table) {
    const unsigned char *p = *pp;
    while (*n >= 3 * block) {
        uint64_t a = r, b = 0, c = 0;
        const unsigned char *end = p + block;
        do {
            a = _mm_crc32_u64(a, load_le64(p));
            b = _mm_crc32_u64(b, load_le64(p + block));
            c = _mm_crc32_u64(c, load_le64(p + 2 * block));
            p += 8;
        } while (p < end);
        r = shift(table, (uint32_t)a) ^ (uint32_t)b;
        r = shift(table, r) ^ (uint32_t)c;
        p += 2 * block;
        *n -= 3 * block;
    }
    *pp = p;
    return r;
}

__attribute__((target("sse4.2")))
static uint32_t update_hardware(uint32_t r, const unsigned char *p, size_t n) {
    // Reach an 8-byte boundary so that the wide loads never straddle one.
    for (; n > 0 && ((uintptr_t)p & 7) != 0; p++, n--) {
        r = _mm_crc32_u8(r, *p);
    }
    r = update_interleaved(r, &p, &n, LONG_BLOCK, &long_shift);
    r = update_interleaved(r, &p, &n, SHORT_BLOCK, &short_shift);
    uint64_t wide = r;
    for (; n >= 8; p += 8, n -= 8) {
        wide = _mm_crc32_u64(wide, load_le64(p));
    }
    r = (uint32_t)wide;
    for (; n > 0; p++, n--) {
        r = _mm_crc32_u8(r, *p);
    }
    return r;
}
#endif

uint32_t pg_crc32c(uint32_t crc, const void *data, size_t length) {
    pthread_once(&tables_once, build_tables);
#ifdef PG_CRC32C_X86
    if (use_hardware) {
        return ~update_hardware(~crc, data, length);
    }
#endif
    return ~update_portable(~crc, data, length);
}

uint32_t pg_crc32c_portable(uint32_t crc, const void *data, size_t length) {
    pthread_once(&tables_once, build_tables);
    return ~update_portable(~crc, data, length);
}

int pg_crc32c_hardware_available(void) {
    pthread_once(&tables_once, build_tables);
#ifdef PG_CRC32C_X86
    return use_hardware;
#else
    return 0;
#endif
}
