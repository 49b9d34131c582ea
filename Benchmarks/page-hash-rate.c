// page-hash-rate: one thread's rate of SHA-256 over 4 KiB pages, the hash
// `PHSH` keeps of every stored page, computed one page after another (as
// OpenSSL's or BoringSSL's SHA256 does it) and by CPageHash, the code a
// save uses (Intel's multi-buffer library, opened at run time: its SSE
// manager, whose SHA-NI code keeps two pages in flight, where the CPU has
// the SHA extensions). For comparison, the manager the library would pick
// by itself (its AVX2 code here, which does not use them).
//
//   gcc -O2 -Wall -I Sources/CPageHash/include -o /tmp/page-hash-rate
//       Benchmarks/page-hash-rate.c Sources/CPageHash/page_hash.c -lIPSec_MB -lcrypto
//   (one command)
//   /tmp/page-hash-rate [PAGES]        (default 65536 pages, 256 MiB)
//
// Prints GB/s for each, three rounds, and checks that all give the same
// digests.
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CPageHash.h"

// The library's old names (SHA1, SHA256, ...) clash with OpenSSL's.
#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>

#define PAGE 4096

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// Hashes every page with the library's automatic manager; returns the
// seconds taken.
static double hash_automatic(IMB_MGR *manager, const unsigned char *data, size_t pages, unsigned char *digests) {
    double t = now();
    for (size_t i = 0; i < pages; i++) {
        IMB_JOB *job = IMB_GET_NEXT_JOB(manager);
        job->cipher_mode = IMB_CIPHER_NULL;
        job->cipher_direction = IMB_DIR_ENCRYPT;
        job->chain_order = IMB_ORDER_HASH_CIPHER;
        job->hash_alg = IMB_AUTH_SHA_256;
        job->src = data + i * PAGE;
        job->hash_start_src_offset_in_bytes = 0;
        job->msg_len_to_hash_in_bytes = PAGE;
        job->cipher_start_src_offset_in_bytes = 0;
        job->msg_len_to_cipher_in_bytes = 0;
        job->auth_tag_output = digests + i * 32;
        job->auth_tag_output_len_in_bytes = 32;
        for (job = IMB_SUBMIT_JOB(manager); job; job = IMB_GET_COMPLETED_JOB(manager)) {
            if (job->status != IMB_STATUS_COMPLETED) {
                fprintf(stderr, "page-hash-rate: job failed: %s\n", imb_get_strerror(imb_get_errno(manager)));
                exit(1);
            }
        }
    }
    while (IMB_FLUSH_JOB(manager)) {
    }
    return now() - t;
}

int main(int argc, char **argv) {
    size_t pages = argc > 1 ? strtoul(argv[1], NULL, 10) : 65536;
    if (pages == 0) {
        fprintf(stderr, "usage: page-hash-rate [PAGES]\n");
        return 64;
    }
    unsigned char *data = aligned_alloc(PAGE, pages * PAGE);
    unsigned char *one = malloc(pages * 32), *multi = malloc(pages * 32);
    if (!data || !one || !multi) {
        perror("page-hash-rate: alloc");
        return 1;
    }
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < pages * PAGE / 8; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        memcpy(data + i * 8, &state, 8);
    }

    pg_page_hasher *hasher = pg_page_hasher_new();
    IMB_MGR *automatic = alloc_mb_mgr(0);
    if (!hasher || !automatic) {
        fprintf(stderr, "page-hash-rate: no hasher (is libipsec-mb-dev installed?)\n");
        return 1;
    }
    IMB_ARCH arch;
    init_mb_mgr_auto(automatic, &arch);

    for (int round = 0; round < 3; round++) {
        double t = now();
        for (size_t i = 0; i < pages; i++) {
            unsigned int length = 32;
            EVP_Digest(data + i * PAGE, PAGE, one + i * 32, &length, EVP_sha256(), NULL);
        }
        double oneSeconds = now() - t;
        t = now();
        int error = pg_page_hasher_sha256(hasher, data, pages, PAGE, multi);
        double multiSeconds = now() - t;
        if (error != 0) {
            fprintf(stderr, "page-hash-rate: %s\n", pg_page_hasher_error(error));
            return 1;
        }
        int same = memcmp(one, multi, pages * 32) == 0;
        double autoSeconds = hash_automatic(automatic, data, pages, multi);
        same = same && memcmp(one, multi, pages * 32) == 0;
        printf("pages=%zu one_at_a_time_gb_s=%.2f cpagehash_gb_s=%.2f (%s) ratio=%.2f automatic_arch_%d_gb_s=%.2f %s\n", pages,
               (double)(pages * PAGE) / oneSeconds / 1e9, (double)(pages * PAGE) / multiSeconds / 1e9,
               pg_page_hasher_kind(hasher), oneSeconds / multiSeconds, (int)arch, (double)(pages * PAGE) / autoSeconds / 1e9,
               same ? "same digests" : "DIGESTS DIFFER");
        if (!same) {
            return 1;
        }
    }
    pg_page_hasher_free(hasher);
    free_mb_mgr(automatic);
    return 0;
}
