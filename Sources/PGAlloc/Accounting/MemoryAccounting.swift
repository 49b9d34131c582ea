import Synchronization

/// Bytes of committed memory per kind, as a snapshot.
public struct MemoryStats: Hashable, Sendable, CustomStringConvertible {
    private var bytes: [UInt64]

    public init() {
        bytes = Array(repeating: 0, count: MemoryKind.allCases.count)
    }

    /// Bytes of `kind`.
    public subscript(kind: MemoryKind) -> UInt64 {
        get { bytes[Int(kind.rawValue)] }
        set { bytes[Int(kind.rawValue)] = newValue }
    }

    /// Bytes of every kind together.
    public var total: UInt64 { bytes.reduce(0, &+) }

    public var description: String {
        MemoryKind.allCases.map { "\($0)=\(self[$0])" }.joined(separator: " ")
    }
}

/// Per-kind totals of committed memory, changed by the allocator as pages
/// become known committed, are freed or decommitted; the seed's
/// `usage.MemoryAccounting`.
///
/// Each `MemoryFile` charges the accounting given in its options; by
/// default one of its own. Several files may share one.
public final class MemoryAccounting: Sendable {
    private let stats = Mutex(MemoryStats())

    public init() {}

    /// Adds `bytes` to `kind`.
    public func inc(_ bytes: UInt64, _ kind: MemoryKind) {
        stats.withLock { $0[kind] &+= bytes }
    }

    /// Takes `bytes` from `kind`.
    ///
    /// - Precondition: `kind` holds at least `bytes`.
    public func dec(_ bytes: UInt64, _ kind: MemoryKind) {
        stats.withLock { s in
            precondition(s[kind] >= bytes, "MemoryAccounting.dec(\(bytes), \(kind)): only \(s[kind]) accounted")
            s[kind] -= bytes
        }
    }

    /// Moves `bytes` from one kind to another, atomically with respect to
    /// `snapshot()`.
    ///
    /// - Precondition: `from` holds at least `bytes`.
    public func move(_ bytes: UInt64, to: MemoryKind, from: MemoryKind) {
        stats.withLock { s in
            precondition(s[from] >= bytes, "MemoryAccounting.move(\(bytes), to: \(to), from: \(from)): only \(s[from]) accounted")
            s[from] -= bytes
            s[to] &+= bytes
        }
    }

    /// A consistent copy of every total.
    public func snapshot() -> MemoryStats {
        stats.withLock { $0 }
    }

    /// The sum over every kind.
    public var total: UInt64 {
        stats.withLock { $0.total }
    }
}
