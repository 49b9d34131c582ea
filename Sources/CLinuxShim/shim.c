#define _GNU_SOURCE
#include "CLinuxShim.h"

#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

const unsigned int pg_MFD_CLOEXEC = MFD_CLOEXEC;
const unsigned int pg_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
const int pg_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
const int pg_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
const int pg_SEEK_DATA = SEEK_DATA;
const int pg_SEEK_HOLE = SEEK_HOLE;
const int pg_MADV_POPULATE_WRITE = MADV_POPULATE_WRITE;
const int pg_EFD_CLOEXEC = EFD_CLOEXEC;
const int pg_O_TMPFILE = O_TMPFILE;
const int pg_AT_SYMLINK_FOLLOW = AT_SYMLINK_FOLLOW;

int pg_memfd_create(const char *name, unsigned int flags) {
    return memfd_create(name, flags);
}

int pg_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}

int64_t pg_lseek(int fd, int64_t offset, int whence) {
    return (int64_t)lseek(fd, (off_t)offset, whence);
}

int pg_eventfd(unsigned int initval, int flags) {
    return eventfd(initval, flags);
}

int pg_mincore(void *addr, size_t length, unsigned char *vec) {
    return mincore(addr, length, vec);
}

void pg_set_thread_name(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

int pg_is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    // Head, until 8-byte alignment.
    while (n > 0 && ((uintptr_t)b & 7) != 0) {
        if (*b != 0) return 0;
        b++;
        n--;
    }
    // Body, 64 bytes at a time: the OR of eight words lets the compiler
    // vectorize and keeps one branch per cache line.
    const uint64_t *w = (const uint64_t *)b;
    while (n >= 64) {
        uint64_t acc = w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
        if (acc != 0) return 0;
        w += 8;
        n -= 64;
    }
    b = (const unsigned char *)w;
    while (n > 0) {
        if (*b != 0) return 0;
        b++;
        n--;
    }
    return 1;
}

void *pg_mremap_maymove(void *old_address, size_t old_size, size_t new_size) {
    return mremap(old_address, old_size, new_size, MREMAP_MAYMOVE);
}
