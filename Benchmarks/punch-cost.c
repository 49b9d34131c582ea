// punch-cost: what it costs the kernel to give isolated zero pages of a
// memfd back, the work a save does when it decommits the committed zero
// pages it finds (SaveOptions.decommitZeroPages).
//
//   gcc -O2 -Wall -o /tmp/punch-cost Benchmarks/punch-cost.c
//   /tmp/punch-cost GIB MODE
//
// Fills a GIB GiB memfd through a shared mapping as W-save's dense layout
// does in proportion (a page in four, chosen by a fixed LCG, holds zeros;
// the others hold a few bytes), then gives every run of zero pages back,
// timing only that, in one of these ways:
//
//   mapped       fallocate(PUNCH_HOLE) per run, the mapping in place (what
//                MemoryFile.decommit does)
//   unmapped     the same after munmap: no page-table entry to zap
//   madv-remove  madvise(MADV_REMOVE) per run, as gVisor's save does
//   zap-first    process_madvise(MADV_DONTNEED) over 1,024 runs at a time
//                (one TLB flush per call), then fallocate per run
//
// Prints the runs, the seconds and the microseconds per run, and checks
// that the zero pages are gone and the others kept.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define BATCH 1024

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "punch-cost: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: punch-cost GIB mapped|unmapped|madv-remove|zap-first\n");
        return 64;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10) << 30;
    const char *mode = argv[2];
    int mapped = !strcmp(mode, "mapped"), unmapped = !strcmp(mode, "unmapped");
    int remove = !strcmp(mode, "madv-remove"), zap = !strcmp(mode, "zap-first");
    if (size == 0 || !(mapped || unmapped || remove || zap)) {
        fprintf(stderr, "punch-cost: bad size or mode\n");
        return 64;
    }
    size_t pages = size / PAGE;
    int fd = memfd_create("punch-cost", MFD_CLOEXEC);
    if (fd < 0) die("memfd_create");
    if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
    char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) die("mmap");
    unsigned char *zero = malloc(pages);
    if (!zero) die("malloc");
    uint64_t state = 12345;
    for (size_t p = 0; p < pages; p++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        zero[p] = (state >> 33) % 4 == 0;
        if (zero[p]) {
            m[p * PAGE] = 0;  // committed, all zero
        } else {
            memset(m + p * PAGE, 'a' + (int)(p % 26), 64);
        }
    }
    if (unmapped && munmap(m, size) != 0) die("munmap");
    int pidfd = -1;
    if (zap) {
        pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        if (pidfd < 0) die("pidfd_open");
    }

    struct iovec iov[BATCH];
    size_t first[BATCH], end[BATCH];
    size_t runs = 0;
    int pending = 0;
    double started = now();
    for (size_t p = 0; p <= pages;) {
        int last = p == pages;
        if (!last && !zero[p]) {
            p++;
            continue;
        }
        if (!last) {
            size_t q = p;
            while (q < pages && zero[q]) q++;
            first[pending] = p;
            end[pending] = q;
            iov[pending].iov_base = m + p * PAGE;
            iov[pending].iov_len = (q - p) * PAGE;
            pending++;
            runs++;
            p = q;
        }
        if (pending == BATCH || (last && pending > 0)) {
            if (zap && syscall(SYS_process_madvise, pidfd, iov, pending, MADV_DONTNEED, 0) < 0) die("process_madvise");
            for (int i = 0; i < pending; i++) {
                off_t at = (off_t)(first[i] * PAGE), length = (off_t)((end[i] - first[i]) * PAGE);
                if (remove) {
                    if (madvise(m + at, (size_t)length, MADV_REMOVE) != 0) die("madvise");
                } else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, length) != 0) {
                    die("fallocate");
                }
            }
            pending = 0;
        }
        if (last) break;
    }
    double seconds = now() - started;

    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    size_t kept = 0;
    for (size_t p = 0; p < pages; p++) kept += !zero[p];
    int ok = (size_t)st.st_blocks * 512 == kept * PAGE;
    printf("mode=%s size_gib=%s runs=%zu punch_s=%.3f us_per_run=%.2f committed_after=%lld expected=%zu %s\n", mode, argv[1], runs,
           seconds, seconds / (double)runs * 1e6, (long long)st.st_blocks * 512, kept * PAGE, ok ? "OK" : "MISMATCH");
    return ok ? 0 : 1;
}
