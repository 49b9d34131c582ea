#include "CPageHash.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) && __has_include(<intel-ipsec-mb.h>)
#include <dlfcn.h>
#include <pthread.h>

// The header's compatibility names (SHA1, SHA256, ...) clash with OpenSSL's
// and are not needed.
#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>

// The library is opened at run time rather than linked, so that a build
// runs where it is missing (PageHasher then hashes with swift-crypto) and
// the package builds where Debian does not ship it (its only architecture
// is amd64). Everything else is called through the manager's own function
// pointers.
static struct {
    IMB_MGR *(*alloc)(uint64_t);
    void (*free)(IMB_MGR *);
    void (*init_sse)(IMB_MGR *);
    void (*init_auto)(IMB_MGR *, IMB_ARCH *);
    int (*get_errno)(IMB_MGR *);
    const char *(*strerror)(int);
} library;
static int library_loaded;
static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void load_library(void) {
    void *handle = dlopen("libIPSec_MB.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        return;
    }
    library.alloc = (IMB_MGR * (*)(uint64_t)) dlsym(handle, "alloc_mb_mgr");
    library.free = (void (*)(IMB_MGR *))dlsym(handle, "free_mb_mgr");
    library.init_sse = (void (*)(IMB_MGR *))dlsym(handle, "init_mb_mgr_sse");
    library.init_auto = (void (*)(IMB_MGR *, IMB_ARCH *))dlsym(handle, "init_mb_mgr_auto");
    library.get_errno = (int (*)(IMB_MGR *))dlsym(handle, "imb_get_errno");
    library.strerror = (const char *(*)(int))dlsym(handle, "imb_get_strerror");
    library_loaded = library.alloc && library.free && library.init_sse && library.init_auto && library.get_errno &&
                     library.strerror;
}

struct pg_page_hasher {
    IMB_MGR *manager;
    const char *kind;
};

pg_page_hasher *pg_page_hasher_new(void) {
    pthread_once(&library_once, load_library);
    if (!library_loaded) {
        errno = ENOENT;
        return NULL;
    }
    pg_page_hasher *hasher = calloc(1, sizeof *hasher);
    if (hasher == NULL) {
        return NULL;
    }
    hasher->manager = library.alloc(0);
    if (hasher->manager == NULL) {
        free(hasher);
        errno = ENOMEM;
        return NULL;
    }
    // The library's automatic choice prefers its AVX2 code, which hashes
    // eight buffers at once with vector instructions but does not use the
    // SHA extensions; where they exist, the SSE code's two interleaved
    // SHA-NI streams are about 1.8 times as fast (BENCHMARKS.md).
    if (hasher->manager->features & IMB_FEATURE_SHANI) {
        library.init_sse(hasher->manager);
        hasher->kind = "sse, SHA extensions";
    } else {
        IMB_ARCH arch = IMB_ARCH_NONE;
        library.init_auto(hasher->manager, &arch);
        hasher->kind = arch == IMB_ARCH_AVX512 ? "avx512"
                       : arch == IMB_ARCH_AVX2 ? "avx2"
                       : arch == IMB_ARCH_AVX  ? "avx"
                       : arch == IMB_ARCH_SSE  ? "sse"
                                               : "generic";
    }
    return hasher;
}

void pg_page_hasher_free(pg_page_hasher *hasher) {
    if (hasher == NULL) {
        return;
    }
    library.free(hasher->manager);
    free(hasher);
}

// Takes back every job the manager has finished; returns the first error.
static int collect(IMB_MGR *manager, IMB_JOB *job, int error) {
    while (job != NULL) {
        if (job->status != IMB_STATUS_COMPLETED && error == 0) {
            error = library.get_errno(manager);
            if (error == 0) {
                error = IMB_ERR_JOB_NULL_SRC;
            }
        }
        job = IMB_GET_COMPLETED_JOB(manager);
    }
    return error;
}

// Hands one buffer to the manager, taking back the jobs it finishes.
static int submit(IMB_MGR *manager, const void *buffer, size_t length, unsigned char *digest, int error) {
    IMB_JOB *job = IMB_GET_NEXT_JOB(manager);
    job->cipher_mode = IMB_CIPHER_NULL;
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    job->hash_alg = IMB_AUTH_SHA_256;
    job->src = buffer;
    job->dst = NULL;
    job->cipher_start_src_offset_in_bytes = 0;
    job->msg_len_to_cipher_in_bytes = 0;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = length;
    job->auth_tag_output = digest;
    job->auth_tag_output_len_in_bytes = 32;
    return collect(manager, IMB_SUBMIT_JOB(manager), error);
}

// Finishes the jobs still in flight, so that every digest is written.
static int finish(IMB_MGR *manager, int error) {
    IMB_JOB *job;
    while ((job = IMB_FLUSH_JOB(manager)) != NULL) {
        error = collect(manager, job, error);
    }
    return error;
}

int pg_page_hasher_sha256(pg_page_hasher *hasher, const void *base, size_t count, size_t length,
                          unsigned char *digests) {
    int error = 0;
    for (size_t i = 0; i < count; i++) {
        error = submit(hasher->manager, (const unsigned char *)base + i * length, length, digests + 32 * i, error);
    }
    return finish(hasher->manager, error);
}

const char *pg_page_hasher_error(int error) { return library_loaded ? library.strerror(error) : "no library"; }

const char *pg_page_hasher_kind(const pg_page_hasher *hasher) { return hasher->kind; }

#else

// Built without the library's header (or not for x86-64): no hasher, and
// PageHasher hashes with swift-crypto.
pg_page_hasher *pg_page_hasher_new(void) {
    errno = ENOSYS;
    return NULL;
}

void pg_page_hasher_free(pg_page_hasher *hasher) { (void)hasher; }

int pg_page_hasher_sha256(pg_page_hasher *hasher, const void *base, size_t count, size_t length,
                          unsigned char *digests) {
    (void)hasher, (void)base, (void)count, (void)length, (void)digests;
    return -1;
}

const char *pg_page_hasher_error(int error) {
    (void)error;
    return "built without Intel's multi-buffer library";
}

const char *pg_page_hasher_kind(const pg_page_hasher *hasher) {
    (void)hasher;
    return "none";
}

#endif
