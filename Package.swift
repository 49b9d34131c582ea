// swift-tools-version:6.1
//
// PGAlloc: gVisor's page allocator over a memfd, ported to Swift.
// Checkpoint: save and restore of that memory through zstd.
// pgsnap: the command-line tool over both.

import PackageDescription

let package = Package(
    name: "PGAlloc",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PGAlloc", targets: ["PGAlloc"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .executable(name: "pgsnap", targets: ["pgsnap"]),
        .library(name: "Workloads", targets: ["Workloads"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // What Glibc does not expose to Swift: memfd_create, fallocate and its
        // flags, SEEK_DATA/SEEK_HOLE, eventfd, and a raw syscall entry.
        .target(name: "CLinuxShim"),
        // CRC-32C with the SSE 4.2 instruction when the CPU has it.
        .target(name: "CCRC32C"),
        // SHA-256 of many pages at once with Intel's multi-buffer crypto
        // library: its header from Debian's libipsec-mb-dev (amd64), the
        // library opened at run time (Checkpoint hashes with swift-crypto
        // where it is missing).
        .target(name: "CPageHash"),
        // libzstd, from Debian's libzstd-dev.
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // libxxhash, from Debian's libxxhash-dev: XXH3, with which a save
        // finds candidate duplicate pages before comparing their bytes.
        .systemLibrary(
            name: "CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        // libcurl, from Debian's libcurl4-openssl-dev: HTTP and AWS
        // Signature Version 4 (CURLOPT_AWS_SIGV4) for checkpoints in object
        // storage.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(
            name: "PGAlloc",
            dependencies: [
                "CLinuxShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Checkpoint",
            dependencies: [
                "PGAlloc", "CZstd", "CXXHash", "CCurl", "CCRC32C", "CLinuxShim", "CPageHash",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The reference workloads of ../shared/bench/WORKLOADS.md (page
        // contents, W-save), shared by the demo, the benchmarks and tests.
        .target(name: "Workloads", dependencies: ["PGAlloc", "CLinuxShim"]),
        .executableTarget(
            name: "pgsnap",
            dependencies: [
                "PGAlloc",
                "Checkpoint",
                "Workloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // What every test target shares: ScratchDirectory.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "PGAllocTests", dependencies: ["PGAlloc", "Workloads", "CLinuxShim", "TestSupport"]),
        .testTarget(
            name: "CheckpointTests",
            dependencies: [
                "Checkpoint", "PGAlloc", "Workloads", "CLinuxShim", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "PGSnapTests", dependencies: ["Checkpoint", "PGAlloc", "Workloads", "CLinuxShim", "TestSupport"],
            exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
