/// The workloads' generator, splitmix64, as defined bit for bit in
/// shared/bench/WORKLOADS.md, so that every figure here is reproducible.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

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
        var g = SplitMix64(seed: 0)
        let first = g.next()
        precondition(first == 0xE220_A839_7B1D_CDAF, "splitmix64: first(0) is 0x\(String(first, radix: 16))")
    }
}
