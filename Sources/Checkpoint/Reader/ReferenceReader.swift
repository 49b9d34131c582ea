import PGAlloc

/// Reads the pages a checkpoint references rather than stores.
enum ReferenceReader {
    /// Checks, before memory is created, that every reference to a parent
    /// names pages that parent stores (its page hashes list them).
    static func check(_ references: SpillArray<PageReference>, against chain: CheckpointChain?) throws {
        // Each link's runs taken once: a reference per run of pages.
        let stored = chain?.links.map { $0.metadata.pageHashes?.runs } ?? []
        var hints = [Int](repeating: 0, count: stored.count)
        for (i, r) in references.enumerated() where r.link > 0 {
            guard r.link <= stored.count else {
                throw CheckpointError.field(
                    .section(.references), 0, "entry \(i) link", expected: "a link of the chain (\(stored.count))", found: r.link)
            }
            if !(stored[r.link - 1]?.contains(r.sourceRange, hint: &hints[r.link - 1]) ?? false) {
                throw CheckpointError.field(
                    .section(.references), 0, "entry \(i) source", expected: "pages \(chain!.link(r.link).path) stores", found: r.sourceRange)
            }
        }
    }

    /// Writes the referenced pages to `target`, where the checkpoint's own
    /// frames are already restored: a page of link 0 is copied from its
    /// source address in the target; a page of a parent is decompressed
    /// from that parent's frame, each frame read once, on `threads`
    /// threads.
    /// With `withinDone`, the copies of link 0 were already written (as
    /// the frames were restored) and only the parents' pages are.
    static func restore(
        _ references: SpillArray<PageReference>, chain: CheckpointChain?, target: RestoreTarget, threads: Int, withinDone: Bool = false
    ) throws {
        guard !references.isEmpty else { return }
        if !withinDone {
            try copyWithin(references, target: target)
        }
        guard let chain, references.contains(where: { $0.link > 0 }) else { return }
        // Filtered lazily: no copy of the array is made (a checkpoint may
        // hold a reference per page).
        let plan = try ReferencePlan(references: references.lazy.filter { $0.link > 0 }) { chain.link($0).metadata.index }
        try decompress(plan, links: { chain.link($0) }, target: target, threads: threads)
    }

    /// Decompresses each unit's frame from its link and writes its pieces.
    static func decompress(
        _ plan: ReferencePlan, links: (Int) -> CheckpointChain.Link, target: LoadTarget, threads: Int
    ) throws {
        var start = 0
        let units = plan.units
        while start < units.count {
            var end = start
            while end < units.count && units[end].link == units[start].link {
                end += 1
            }
            let link = links(units[start].link)
            var pieces: [Int: Slice<SpillArray<ReferencePlan.Piece>>] = [:]
            for u in units[start..<end] {
                pieces[u.frame] = u.pieces
            }
            let pipeline = try FramePipeline(
                header: link.metadata.header, threads: threads, sink: PlacementSink(target: target, pieces: pieces),
                opener: link.metadata.frameOpener)
            defer { pipeline.shutDown() }
            do {
                for u in units[start..<end] {
                    let (header, payload) = try readFrameRecord(u.frame, from: link.input, metadata: link.metadata, segments: nil)
                    let payloadOffset = link.metadata.index[u.frame].offset + UInt64(header.headerLength)
                    try pipeline.submit(header, payloadOffset: payloadOffset) { buffer in
                        payload.withUnsafeBytes { buffer.copyMemory(from: $0) }
                    }
                }
                try pipeline.finish()
            } catch let error as CheckpointError {
                _ = pipeline.drain()
                throw ChainError(.parentInvalid, link: units[start].link, "\(link.path): \(error)")
            } catch {
                _ = pipeline.drain()
                throw error
            }
            start = end
        }
    }

    /// Copies pages stored once to the other addresses that hold them (the
    /// references of link 0 among `references`).
    private static func copyWithin(_ references: SpillArray<PageReference>, target: RestoreTarget) throws {
        guard references.contains(where: { $0.link == 0 }) else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        for r in references where r.link == 0 {
            var done: UInt64 = 0
            while done < r.destination.length {
                let n = Int(min(UInt64(buffer.count), r.destination.length - done))
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])
                try target.read(into: piece, at: r.source + done)
                try target.write(UnsafeRawBufferPointer(piece), at: r.destination.start + done)
                done += UInt64(n)
            }
        }
    }
}
