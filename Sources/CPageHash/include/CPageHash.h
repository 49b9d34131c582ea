// SHA-256 of many equal-length buffers at once, through Intel's
// multi-buffer crypto library (Debian's libipsec-mb-dev for the header,
// libIPSec_MB.so.1 opened at run time): with the SHA extensions it keeps
// two buffers in flight on each core, twice the rate of hashing them one
// after the other; without them, its AVX2 or SSE code hashes up to eight
// at a time. The digests are standard SHA-256. Where the library is
// missing, or the build is not for x86-64, there is no hasher.
#ifndef PGALLOC_CPAGEHASH_H
#define PGALLOC_CPAGEHASH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// A hasher: the library's state for one thread. Not thread-safe: each
// thread hashes with its own.
typedef struct pg_page_hasher pg_page_hasher;

// A new hasher, or NULL with errno set: ENOENT if the library cannot be
// opened, ENOSYS if this build has no use of it, ENOMEM.
pg_page_hasher *pg_page_hasher_new(void);

void pg_page_hasher_free(pg_page_hasher *hasher);

// Writes the SHA-256 of each of the `count` buffers of `length` bytes laid
// end to end at `base` to `digests + 32 * i`. Returns 0, or the library's
// error number (pg_page_hasher_error names it), which only a misuse can
// cause.
int pg_page_hasher_sha256(pg_page_hasher *hasher, const void *base, size_t count, size_t length,
                          unsigned char *digests);

// The library's description of an error number.
const char *pg_page_hasher_error(int error);

// The name of the code the library chose on this machine ("sse, SHA
// extensions", "avx2", ...), for reports.
const char *pg_page_hasher_kind(const pg_page_hasher *hasher);

#ifdef __cplusplus
}
#endif

#endif
