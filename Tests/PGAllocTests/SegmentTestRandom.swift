// Seeded randomness of the SegmentSet tests: a generator whose sequence
// never changes, and the environment variables that replay a run, make it
// longer or trace it.

import Foundation

import Workloads

// MARK: - Random numbers

/// splitmix64: tiny, and the same sequence on every platform and toolchain,
/// so a printed seed replays a run exactly. The helpers below avoid the
/// standard library's `random(in:using:)`, whose algorithm is not promised
/// to stay fixed.
struct SegmentTestRandom {
    private var generator: SplitMix64

    init(seed: UInt64) {
        generator = SplitMix64(seed: seed)
    }

    mutating func next() -> UInt64 {
        generator.next()
    }

    /// A number in `[0, bound)`; `bound` must be positive.
    mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return next().multipliedFullWidth(by: bound).high
    }

    /// An index in `[0, count)`.
    mutating func index(_ count: Int) -> Int {
        Int(below(UInt64(count)))
    }

    /// A number in `[lower, upper]`.
    mutating func inClosedRange(_ lower: UInt64, _ upper: UInt64) -> UInt64 {
        precondition(lower <= upper)
        let width = upper - lower
        return width == .max ? next() : lower + below(width + 1)
    }

    /// True with probability `numerator / denominator`.
    mutating func chance(_ numerator: UInt64, _ denominator: UInt64) -> Bool {
        below(denominator) < numerator
    }
}

// MARK: - Environment

/// Knobs read from the environment, so a failing run can be replayed
/// (`PGALLOC_TEST_SEED`) or a longer soak run (`PGALLOC_TEST_OPS`).
enum SegmentTestEnvironment {
    /// The seed of the randomized tests: `PGALLOC_TEST_SEED` (decimal or
    /// 0x-prefixed hex) if set, else a fixed default so CI is repeatable.
    static var seed: UInt64 {
        guard let text = ProcessInfo.processInfo.environment["PGALLOC_TEST_SEED"] else {
            return 0x5E6_5E75
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parsed = trimmed.hasPrefix("0x") ? UInt64(trimmed.dropFirst(2), radix: 16) : UInt64(trimmed)
        guard let parsed else {
            fatalError("PGALLOC_TEST_SEED=\(text) is not a decimal or 0x-prefixed hex UInt64")
        }
        return parsed
    }

    /// The total number of random operations the model tests share out:
    /// `PGALLOC_TEST_OPS` if set, else `defaultOps`.
    static var totalOps: Int {
        guard let text = ProcessInfo.processInfo.environment["PGALLOC_TEST_OPS"] else {
            return defaultOps
        }
        guard let parsed = Int(text), parsed > 0 else {
            fatalError("PGALLOC_TEST_OPS=\(text) is not a positive integer")
        }
        return parsed
    }

    static let defaultOps = 120_000

    /// Whether to print every operation as it runs (`PGALLOC_TEST_TRACE=1`):
    /// the way to see what led up to a precondition trap, which kills the
    /// process before any assertion message can be printed.
    static var trace: Bool {
        ProcessInfo.processInfo.environment["PGALLOC_TEST_TRACE"] == "1"
    }
}
