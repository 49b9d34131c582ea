// The workloads' generator, splitmix64 (shared/bench/WORKLOADS.md), comes
// from the root package's Workloads product; these are the helpers the
// benchmarks add to it, so that every figure here is reproducible.

import Workloads

extension SplitMix64 {
    /// A number in `0..<bound`, by modulo (the bias is negligible for the
    /// small bounds used here).
    mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.next(below: \(bound))")
        return Int(next() % UInt64(bound))
    }

    /// Fisher-Yates with this generator: unlike `shuffle(using:)`, whose
    /// algorithm the standard library may change, the order depends only on
    /// the seed.
    mutating func shuffle<T>(_ array: inout [T]) {
        var i = array.count - 1
        while i > 0 {
            array.swapAt(i, next(below: i + 1))
            i -= 1
        }
    }

    /// The check from WORKLOADS.md: `first(0) == 0xE220A8397B1DCDAF`.
    static func selfCheck() {
        let first = SplitMix64.first(0)
        precondition(first == 0xE220_A839_7B1D_CDAF, "splitmix64: first(0) is 0x\(String(first, radix: 16))")
    }
}
