/// The generator of ../shared/bench/WORKLOADS.md: splitmix64.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    /// A stream whose state starts at `seed` (`stream(s)`).
    public init(seed: UInt64) {
        state = seed
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The first output of `stream(seed)` (`first(s)`).
    @inline(__always)
    public static func first(_ seed: UInt64) -> UInt64 {
        var g = SplitMix64(seed: seed)
        return g.next()
    }
}
