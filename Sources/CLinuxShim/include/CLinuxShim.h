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
#include <unistd.h>

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

// mremap(2) with MREMAP_MAYMOVE (mremap is variadic: Swift cannot call it).
void *pg_mremap_maymove(void *old_address, size_t old_size, size_t new_size);

int pg_memfd_create(const char *name, unsigned int flags);
int pg_fallocate(int fd, int mode, int64_t offset, int64_t length);
int64_t pg_lseek(int fd, int64_t offset, int whence);
int pg_eventfd(unsigned int initval, int flags);
int pg_mincore(void *addr, size_t length, unsigned char *vec);
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

// userfaultfd(2): features, the register mode, event types, fault flags.
extern const uint64_t pg_UFFD_FEATURE_EVENT_REMOVE;
extern const uint64_t pg_UFFD_FEATURE_EVENT_UNMAP;
extern const uint64_t pg_UFFD_FEATURE_MISSING_SHMEM;
extern const uint64_t pg_UFFD_FEATURE_POISON;
extern const uint64_t pg_UFFD_FEATURE_SIGBUS;
// userfaultfd(2) flag: faults taken in the kernel are not reported.
extern const int pg_UFFD_USER_MODE_ONLY;
extern const uint64_t pg_UFFDIO_REGISTER_MODE_MISSING;
extern const uint8_t pg_UFFD_EVENT_PAGEFAULT;
extern const uint8_t pg_UFFD_EVENT_REMOVE;
extern const uint8_t pg_UFFD_EVENT_UNMAP;
extern const uint8_t pg_UFFD_EVENT_REMAP;
extern const uint8_t pg_UFFD_EVENT_FORK;
extern const uint64_t pg_UFFD_PAGEFAULT_FLAG_WRITE;

// One message read from a userfaultfd: a page fault (flags, address), a
// removal or unmapping (start, end), a remapping (start = from, end = to,
// address = length).
struct pg_uffd_event {
    uint8_t event;
    uint64_t flags;
    uint64_t address;
    uint64_t start;
    uint64_t end;
};

// Opens a userfaultfd with `flags` (O_CLOEXEC, O_NONBLOCK): through
// /dev/userfaultfd if it can be opened, else the syscall.
int pg_uffd_open(int flags);
// UFFDIO_API, asking for `features`; the kernel's answer in *granted and
// *ioctls (either may be NULL).
int pg_uffd_api(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls);
int pg_uffd_register(int fd, uint64_t start, uint64_t length, uint64_t mode, uint64_t *ioctls);
int pg_uffd_unregister(int fd, uint64_t start, uint64_t length);
int pg_uffd_wake(int fd, uint64_t start, uint64_t length);
// UFFDIO_COPY of `length` bytes from src to dst (waking the faulting
// threads); *copied is the bytes copied, or a negative errno.
int pg_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t length, int64_t *copied);
int pg_uffd_zeropage(int fd, uint64_t start, uint64_t length, int64_t *done);
// UFFDIO_POISON (Linux 6.6): access to the range raises SIGBUS.
int pg_uffd_poison(int fd, uint64_t start, uint64_t length, int64_t *done);
// Reads up to `capacity` (at most 64) messages; returns how many, or -1.
int pg_uffd_read_events(int fd, struct pg_uffd_event *events, int capacity);

// sendmsg/recvmsg with one descriptor passed as SCM_RIGHTS. recv closes any
// extra descriptors and sets *fd to -1 if none came.
ssize_t pg_send_with_fd(int socket, const void *bytes, size_t length, int fd);
ssize_t pg_recv_with_fd(int socket, void *bytes, size_t length, int *fd);
// The process at the other end of a connected Unix socket (SO_PEERCRED), or
// -1.
int pg_peer_pid(int socket);

#ifdef __cplusplus
}
#endif

#endif
