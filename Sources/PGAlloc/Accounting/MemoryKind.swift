/// What a range of memory is used for; the seed's `usage.MemoryKind`.
///
/// The raw values are stored in checkpoints: never renumber them.
public enum MemoryKind: UInt8, CaseIterable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// Memory of the allocator itself, including freed pages that the
    /// reclaimer has not taken back yet, and pages seen committed but not
    /// accounted to any range (swap).
    case system = 0
    /// Anonymous application memory.
    case anonymous = 1
    /// Memory backing files that have no host descriptor of their own.
    case pageCache = 2
    /// Memory of a tmpfs.
    case tmpfs = 3
    /// Memory of a ramdisk file system.
    case ramdiskfs = 4
    /// Memory of host files mapped directly.
    case mapped = 5

    public var description: String {
        switch self {
        case .system: "system"
        case .anonymous: "anonymous"
        case .pageCache: "page-cache"
        case .tmpfs: "tmpfs"
        case .ramdiskfs: "ramdiskfs"
        case .mapped: "mapped"
        }
    }

    /// The kind named `name` (as printed by `description`), if any.
    public init?(name: String) {
        guard let kind = MemoryKind.allCases.first(where: { $0.description == name }) else {
            return nil
        }
        self = kind
    }
}
