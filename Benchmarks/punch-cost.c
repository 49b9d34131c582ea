// punch-cost: what it costs the kernel to give isolated zero pages of a
// memfd back, the work a save does when it decommits the committed zero
// pages it finds (SaveOptions.decommitZeroPages).
//
//   gcc -O2 -Wall -pthread -o /tmp/punch-cost Benchmarks/punch-cost.c
//   /tmp/punch-cost GIB MODE
//   READER=1 /tmp/punch-cost GIB MODE
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
//   zap-first    process_madvise(MADV_DONTNEED) over 1,024 runs at a time,
//                then fallocate per run
//   zap-only     the process_madvise calls alone (nothing is punched)
//   bulk-zap     one madvise(MADV_DONTNEED) over each stretch of 1,024
//                runs, data pages included (one TLB flush), then fallocate
//                per run
//   split        the process zaps each run (madvise(MADV_DONTNEED)) and a
//                forked child, whose address space does not map the memfd
//                where it matters, punches it: the two on two CPUs
//
// With READER=1, a thread of the same process copies a private 256 MiB
// buffer over and over on another CPU meanwhile, as a save's workers run
// while its zero pages are punched: a zap of this process's page-table
// entries then needs a TLB flush on that CPU too. The reader's rate alone
// and during the punching is printed.
//
// Prints the runs, the seconds and the microseconds per run, and checks
// that the zero pages are gone and the others kept (for zap-only, that
// nothing is gone).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define BATCH 1024
#define READ_BYTES (256UL << 20)
#define RING 65536

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "punch-cost: %s: %s\n", what, strerror(errno));
    exit(1);
}

static atomic_int stopReader;
static atomic_ulong bytesRead;

// Copies a private buffer, 1 MiB at a time, until told to stop.
static void *reader(void *unused) {
    (void)unused;
    char *from = malloc(READ_BYTES), *to = malloc(1 << 20);
    if (!from || !to) die("malloc");
    memset(from, 1, READ_BYTES);
    uint64_t sum = 0;
    while (!atomic_load(&stopReader)) {
        for (size_t off = 0; off < READ_BYTES && !atomic_load(&stopReader); off += 1 << 20) {
            memcpy(to, from + off, 1 << 20);
            sum += (unsigned char)to[off % (1 << 20)];
            atomic_fetch_add(&bytesRead, 1 << 20);
        }
    }
    free(from);
    free(to);
    return (void *)(uintptr_t)sum;
}

// Runs the child of `split` hands to the puncher, in order; a run of
// length 0 ends them.
struct ring {
    _Atomic size_t posted, punched;
    size_t start[RING], length[RING];
};

static void punch(int fd, size_t start, size_t length) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)start, (off_t)length) != 0) die("fallocate");
}

// The child of `split`: punches what the ring holds, spinning between runs.
static void puncher(int fd, struct ring *ring) {
    size_t done = 0;
    for (;;) {
        size_t posted;
        while ((posted = atomic_load(&ring->posted)) == done) {
        }
        for (; done < posted; done++) {
            size_t i = done % RING;
            if (ring->length[i] == 0) _exit(0);
            if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)ring->start[i], (off_t)ring->length[i]) != 0) _exit(2);
        }
        atomic_store(&ring->punched, done);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: punch-cost GIB mapped|unmapped|madv-remove|zap-first|zap-only|bulk-zap|split\n");
        return 64;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10) << 30;
    const char *mode = argv[2];
    int unmapped = !strcmp(mode, "unmapped"), remove = !strcmp(mode, "madv-remove");
    int zapFirst = !strcmp(mode, "zap-first"), zapOnly = !strcmp(mode, "zap-only");
    int bulk = !strcmp(mode, "bulk-zap"), split = !strcmp(mode, "split");
    if (size == 0 || !(!strcmp(mode, "mapped") || unmapped || remove || zapFirst || zapOnly || bulk || split)) {
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
    if (zapFirst || zapOnly) {
        pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        if (pidfd < 0) die("pidfd_open");
    }
    struct ring *ring = NULL;
    pid_t child = -1;
    if (split) {
        ring = mmap(NULL, sizeof *ring, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (ring == MAP_FAILED) die("mmap");
        child = fork();
        if (child < 0) die("fork");
        if (child == 0) puncher(fd, ring);
    }
    pthread_t readerThread;
    double readerAlone = 0;
    int withReader = getenv("READER") != NULL;
    if (withReader) {
        if (pthread_create(&readerThread, NULL, reader, NULL) != 0) die("pthread_create");
        usleep(300000);
        unsigned long before = atomic_load(&bytesRead);
        double t = now();
        usleep(500000);
        readerAlone = (double)(atomic_load(&bytesRead) - before) / (now() - t);
    }

    struct iovec iov[BATCH];
    size_t first[BATCH], end[BATCH];
    size_t runs = 0, posted = 0;
    int pending = 0;
    unsigned long readBefore = atomic_load(&bytesRead);
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
            if ((zapFirst || zapOnly) && syscall(SYS_process_madvise, pidfd, iov, pending, MADV_DONTNEED, 0) < 0) die("process_madvise");
            if (bulk && madvise(m + first[0] * PAGE, (end[pending - 1] - first[0]) * PAGE, MADV_DONTNEED) != 0) die("madvise");
            for (int i = 0; i < pending && !zapOnly; i++) {
                size_t at = first[i] * PAGE, length = (end[i] - first[i]) * PAGE;
                if (split) {
                    if (madvise(m + at, length, MADV_DONTNEED) != 0) die("madvise");
                    while (posted - atomic_load(&ring->punched) >= RING - 1) {
                    }
                    ring->start[posted % RING] = at;
                    ring->length[posted % RING] = length;
                    posted++;
                    if (posted % 64 == 0) atomic_store(&ring->posted, posted);
                } else if (remove) {
                    if (madvise(m + at, length, MADV_REMOVE) != 0) die("madvise");
                } else {
                    punch(fd, at, length);
                }
            }
            pending = 0;
        }
        if (last) break;
    }
    if (split) {
        while (posted - atomic_load(&ring->punched) >= RING - 1) {
        }
        ring->length[posted % RING] = 0;
        atomic_store(&ring->posted, posted + 1);
        int status;
        if (waitpid(child, &status, 0) != child) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "punch-cost: the punching child failed\n");
            return 1;
        }
    }
    double seconds = now() - started;
    if (withReader) {
        double during = (double)(atomic_load(&bytesRead) - readBefore) / seconds;
        atomic_store(&stopReader, 1);
        pthread_join(readerThread, NULL);
        printf("reader alone %.2f GB/s, during the punching %.2f GB/s\n", readerAlone / 1e9, during / 1e9);
    }

    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    size_t kept = 0;
    for (size_t p = 0; p < pages; p++) kept += !zero[p] || zapOnly;
    int ok = (size_t)st.st_blocks * 512 == kept * PAGE;
    printf("mode=%s size_gib=%s reader=%d runs=%zu punch_s=%.3f us_per_run=%.2f committed_after=%lld expected=%zu %s\n", mode,
           argv[1], withReader, runs, seconds, seconds / (double)runs * 1e6, (long long)st.st_blocks * 512, kept * PAGE,
           ok ? "OK" : "MISMATCH");
    return ok ? 0 : 1;
}
