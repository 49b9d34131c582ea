// libzstd's public API, including the advanced (static-linking-only) parts
// that Debian's libzstd-dev ships and exports: compression parameters and
// frame inspection.
#ifndef PGALLOC_CZSTD_SHIM_H
#define PGALLOC_CZSTD_SHIM_H
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>
#endif
