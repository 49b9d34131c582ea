import PGAlloc

/// The memory of a parent chain as a save compares with it: the parent's
/// pages are the ones it stores (link 1) and the ones it references (from
/// the link that stores them); each page's hash is read from the `PHSH` of
/// that link.
final class ChainParentPages: ParentPages, @unchecked Sendable {
    let chain: CheckpointChain
    let record: ParentRecord

    init(chain: CheckpointChain, path: String) {
        self.chain = chain
        let parent = chain.link(1)
        record = ParentRecord(depth: (parent.metadata.parent?.depth ?? 0) + 1, identity: parent.identity, path: path)
    }

    func pages(in runs: [FileRange]) throws -> [ParentPage] {
        let parent = chain.link(1)
        var out: [ParentPage] = []
        for run in runs {
            var found: [ParentPage] = []
            // Stored by the parent.
            for s in parent.metadata.pageHashes!.runs.stretches(in: run) {
                let digests = try readDigests(link: 1, ordinal: s.ordinal, count: s.pages)
                for (i, d) in digests.enumerated() {
                    let address = s.address + UInt64(i) * CheckpointFormat.pageSize
                    found.append(ParentPage(address: address, link: 1, source: address, digest: d))
                }
            }
            // Referenced by the parent: stored by the link its reference
            // names (its link 0 is the parent itself).
            for r in references(of: parent.metadata.references, in: run) {
                let link = r.link + 1
                let piece = r.destination.intersection(run)
                let source = r.source + (piece.start - r.destination.start)
                for s in chain.link(link).metadata.pageHashes!.runs.stretches(in: FileRange(start: source, end: source + piece.length)) {
                    let digests = try readDigests(link: link, ordinal: s.ordinal, count: s.pages)
                    for (i, d) in digests.enumerated() {
                        let from = s.address + UInt64(i) * CheckpointFormat.pageSize
                        found.append(ParentPage(address: piece.start + (from - source), link: link, source: from, digest: d))
                    }
                }
            }
            found.sort { $0.address < $1.address }
            out += found
        }
        return out
    }

    func digest(link: Int, source: UInt64) throws -> PageDigest? {
        guard link >= 1 && link <= chain.links.count,
            let ordinal = chain.link(link).metadata.pageHashes!.runs.ordinal(of: source)
        else { return nil }
        return try readDigests(link: link, ordinal: ordinal, count: 1).first
    }

    /// The references whose destinations meet `range`.
    private func references(of all: SpillArray<PageReference>, in range: FileRange) -> Slice<SpillArray<PageReference>> {
        var lo = 0
        var hi = all.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if all[mid].destination.end <= range.start { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        while end < all.count && all[end].destination.start < range.end {
            end += 1
        }
        return all[lo..<end]
    }

    /// `count` hashes from link `link`'s `PHSH`, from the `ordinal`-th.
    private func readDigests(link: Int, ordinal: UInt64, count: UInt64) throws -> [PageDigest] {
        let l = chain.link(link)
        let hashes = l.metadata.pageHashes!
        var bytes = [UInt8](repeating: 0, count: Int(count) * PageDigest.length)
        try bytes.withUnsafeMutableBytes {
            try hashes.readDigests(from: l.input, ordinal: ordinal, into: $0)
        }
        return bytes.withUnsafeBytes { b in
            (0..<Int(count)).map { PageDigest(bytes: UnsafeRawBufferPointer(rebasing: b[$0 * PageDigest.length..<($0 + 1) * PageDigest.length])) }
        }
    }
}
