// Wrappers for Linux interfaces that Swift's Glibc module does not import:
// memfd_create, fallocate and its FALLOC_FL_* flags, SEEK_DATA/SEEK_HOLE,
// eventfd, a few madvise flags, thread naming, and word-sized atomics over
// raw memory (the lock-free chunk table of MemoryFile).
//
// Every function returns what the underlying call returns; on failure the
// caller reads errno.
#ifndef PGALLOC_CLINUXSHIM_H
#define PGALLOC_CLINUXSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// memfd_create(2) flags.
extern const unsigned int pg_MFD_CLOEXEC;
extern const unsigned int pg_MFD_ALLOW_SEALING;

// fallocate(2) modes.
extern const int pg_FALLOC_FL_KEEP_SIZE;
extern const int pg_FALLOC_FL_PUNCH_HOLE;

// lseek(2) whence values for sparse files.
extern const int pg_SEEK_DATA;
extern const int pg_SEEK_HOLE;

// madvise(2) advice values.
extern const int pg_MADV_POPULATE_WRITE;

// eventfd(2) flags.
extern const int pg_EFD_CLOEXEC;

// open(2) flag for an unnamed file in a directory, and linkat(2)'s flag to
// follow a /proc/self/fd link.
extern const int pg_O_TMPFILE;
extern const int pg_AT_SYMLINK_FOLLOW;

int pg_memfd_create(const char *name, unsigned int flags);
int pg_fallocate(int fd, int mode, int64_t offset, int64_t length);
int64_t pg_lseek(int fd, int64_t offset, int whence);
int pg_eventfd(unsigned int initval, int flags);
int pg_mincore(void *addr, size_t length, unsigned char *vec);
// Starts writing back the dirty pages of a range of a file without waiting
// for them (sync_file_range with SYNC_FILE_RANGE_WRITE), so that a later
// fsync has less left to do.
int pg_start_writeback(int fd, int64_t offset, int64_t length);
// Sets the calling thread's name (as shown by ps and gdb); best effort.
void pg_set_thread_name(const char *name);

// Word-sized atomics over raw memory, with acquire/release ordering.
static inline uintptr_t pg_atomic_load_uintptr(const uintptr_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void pg_atomic_store_uintptr(uintptr_t *p, uintptr_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

// Tells the CPU the caller is spinning (x86 `pause`): cheaper for a sibling
// hardware thread and for power than a bare loop.
static inline void pg_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Returns 1 if the n bytes at p are all zero, 0 otherwise. p need not be
// aligned.
int pg_is_zero(const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
