// Fills a new memfd the way a restore does (three pages of every four,
// in runs of three pages, from a 64 MiB source buffer) with `pwrite` or
// with UFFDIO_COPY through a shared mapping registered in missing mode, on
// N threads, and prints the time. BENCHMARKS.md, "Restore writes".
//
//   cc -O2 -pthread -o /tmp/memfd-fill Benchmarks/memfd-fill.c
//   /tmp/memfd-fill MIB pwrite|uffd THREADS
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SOURCE_BYTES (64UL << 20)
#define STEP (1UL << 20)
#define PAGE 4096UL

static size_t total;
static int use_uffd, memfd, uffd;
static char *mapping, *source;
static size_t next_step;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *fill(void *unused) {
    (void)unused;
    for (;;) {
        size_t start = __atomic_fetch_add(&next_step, STEP, __ATOMIC_RELAXED);
        if (start >= total) return NULL;
        for (size_t at = start; at < start + STEP; at += 4 * PAGE) {
            const char *from = source + at % SOURCE_BYTES;
            size_t length = 3 * PAGE;
            if (use_uffd) {
                struct uffdio_copy copy = {
                    .dst = (unsigned long)(mapping + at), .src = (unsigned long)from, .len = length};
                if (ioctl(uffd, UFFDIO_COPY, &copy) != 0) die("UFFDIO_COPY");
            } else if (pwrite(memfd, from, length, (off_t)at) != (ssize_t)length) {
                die("pwrite");
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[2], "pwrite") != 0 && strcmp(argv[2], "uffd") != 0)) {
        fprintf(stderr, "usage: %s MIB pwrite|uffd THREADS\n", argv[0]);
        return 64;
    }
    total = strtoul(argv[1], NULL, 10) << 20;
    use_uffd = strcmp(argv[2], "uffd") == 0;
    int threads = atoi(argv[3]);
    if (total == 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "%s: MIB must be positive, THREADS 1 to 64\n", argv[0]);
        return 64;
    }
    source = malloc(SOURCE_BYTES);
    if (!source) die("malloc");
    srand(1);
    for (size_t i = 0; i < SOURCE_BYTES; i++) source[i] = (char)rand();

    memfd = memfd_create("memfd-fill", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, (off_t)total) != 0) die("memfd");
    mapping = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mapping == MAP_FAILED) die("mmap");
    if (use_uffd) {
        uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
        struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM};
        if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) die("userfaultfd");
        struct uffdio_register reg = {
            .range = {.start = (unsigned long)mapping, .len = total}, .mode = UFFDIO_REGISTER_MODE_MISSING};
        if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
    }

    double started = seconds();
    pthread_t workers[64];
    for (int i = 0; i < threads; i++) pthread_create(&workers[i], NULL, fill, NULL);
    for (int i = 0; i < threads; i++) pthread_join(workers[i], NULL);
    double took = seconds() - started;

    struct stat st;
    if (fstat(memfd, &st) != 0) die("fstat");
    printf("writes=%s threads=%d fill_s=%.3f committed_bytes=%lld\n", argv[2], threads, took,
           (long long)st.st_blocks * 512);
    return 0;
}
