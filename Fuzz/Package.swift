// swift-tools-version:6.1
//
// libFuzzer targets over the checkpoint reader. A package of its own so that
// the library's build never needs the sanitizers; see fixtures/README.md and
// the `fuzz` and `fuzz-short` targets of the root Makefile:
//
//     swift build --package-path Fuzz --scratch-path Fuzz/.build-fuzz \
//         --product CheckpointFuzzer --sanitize=fuzzer \
//         -Xswiftc -sanitize=fuzzer,address
//
// The target uses only the public API of Checkpoint and PGAlloc: every
// input goes to a memfd (a seekable file) and, when small enough, to a pipe
// (a stream), and is read with readMetadata, verify and restore.

import PackageDescription

let package = Package(
    name: "PGSnapFuzz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "CheckpointFuzzer", targets: ["CheckpointFuzzer"]),
    ],
    dependencies: [
        .package(name: "PGAlloc", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "CheckpointFuzzer",
            dependencies: [
                .product(name: "Checkpoint", package: "PGAlloc"),
                .product(name: "PGAlloc", package: "PGAlloc"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
