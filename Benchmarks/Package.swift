// swift-tools-version:6.1
//
// Benchmarks of PGAlloc:
//
// - SegmentSetBenchmarks: micro-benchmarks run with ordo-one's
//   package-benchmark:
//
//     swift package --package-path Benchmarks --scratch-path Benchmarks/.build-bench benchmark
//
// - pgallocbench: a plain program that runs the reference workloads of
//   shared/bench/WORKLOADS.md (W-churn, W-frag, W-save) and prints one line
//   per run in the format of gVisor's harness; Benchmarks/compare.sh runs it
//   side by side with gVisor and the cp/zstd baselines:
//
//     swift build -c release --package-path Benchmarks --scratch-path Benchmarks/.build-exec --product pgallocbench
//
// A package of its own so that the library does not depend on the benchmark
// tooling. See BENCHMARKS.md at the root for the recorded figures.

import PackageDescription

let package = Package(
    name: "PGAllocBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "PGAlloc", path: ".."),
        // The trait keeps the malloc counters; naming it also leaves out the
        // default RuntimeInterposer trait.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        .executableTarget(
            name: "SegmentSetBenchmarks",
            dependencies: [
                .product(name: "PGAlloc", package: "PGAlloc"),
                .product(name: "Workloads", package: "PGAlloc"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SegmentSetBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        // The test keys of fixtures/keys, and how pgallocbench and
        // lazybench sign and encrypt with them (`--protect`).
        .target(
            name: "BenchProtection",
            dependencies: [.product(name: "Checkpoint", package: "PGAlloc")],
            path: "Sources/BenchProtection"
        ),
        // Peak RssAnon of a phase, sampled on a thread (pgallocbench, incbench).
        .target(name: "BenchMemory", path: "Sources/BenchMemory"),
        .executableTarget(
            name: "pgallocbench",
            dependencies: [
                "BenchProtection",
                "BenchMemory",
                .product(name: "PGAlloc", package: "PGAlloc"),
                .product(name: "Checkpoint", package: "PGAlloc"),
                .product(name: "Workloads", package: "PGAlloc"),
            ],
            path: "Sources/pgallocbench"
        ),
        .executableTarget(
            name: "lazybench",
            dependencies: [
                "BenchProtection",
                .product(name: "PGAlloc", package: "PGAlloc"),
                .product(name: "Checkpoint", package: "PGAlloc"),
                .product(name: "Workloads", package: "PGAlloc"),
            ],
            path: "Sources/lazybench"
        ),
        .executableTarget(
            name: "cryptobench",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/cryptobench"
        ),
        .executableTarget(
            name: "incbench",
            dependencies: [
                "BenchMemory",
                .product(name: "PGAlloc", package: "PGAlloc"),
                .product(name: "Checkpoint", package: "PGAlloc"),
                .product(name: "Workloads", package: "PGAlloc"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/incbench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
