// libxxhash's public API (Debian's libxxhash-dev): XXH3, the fast
// non-cryptographic hash a save uses to find candidate duplicate pages.
#ifndef PGALLOC_CXXHASH_SHIM_H
#define PGALLOC_CXXHASH_SHIM_H
#include <xxhash.h>
#endif
