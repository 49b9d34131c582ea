// swift-tools-version:6.1
//
// Benchmarks of PGAlloc, run with ordo-one's package-benchmark:
//
//     swift package --package-path Benchmarks --scratch-path Benchmarks/.build-bench benchmark
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
    ],
    targets: [
        .executableTarget(
            name: "SegmentSetBenchmarks",
            dependencies: [
                .product(name: "PGAlloc", package: "PGAlloc"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SegmentSetBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
