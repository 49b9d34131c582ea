import PGAlloc

/// The memory of a save's parent chain, as the save compares its pages with
/// it. Made by whoever resolves the chain (`MemoryFile.save(to:parent:)`);
/// the writer only asks.
protocol ParentPages: AnyObject, Sendable {
    /// The child's `PRNT`: its depth, the parent's identity and path.
    var record: ParentRecord { get }
    /// The parent's pages that lie in `runs` (in address order, not
    /// overlapping), in address order, each with the link that stores it
    /// and its hash. Called from several workers at once.
    func pages(in runs: [FileRange]) throws -> [ParentPage]
    /// The hash of the page at `source` stored by `link` (1 or more), if
    /// that link stores it.
    func digest(link: Int, source: UInt64) throws -> PageDigest?
}

/// A page of the parent's memory.
struct ParentPage {
    var address: UInt64
    /// The link storing it (1 for the parent itself) and where.
    var link: Int
    var source: UInt64
    var digest: PageDigest
}
