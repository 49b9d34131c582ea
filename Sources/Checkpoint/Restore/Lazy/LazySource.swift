import PGAlloc

/// A checkpoint opened for a lazy restore: everything but its frames, read
/// and checked, and its parents found and recognised.
struct LazySource {
    let input: RandomAccessInput
    let metadata: CheckpointMetadata
    let chain: CheckpointChain?

    /// Opens the file at `location` (a stream cannot be read lazily).
    static func open(_ location: CheckpointLocation, options: RestoreOptions) throws -> LazySource {
        let opened = try OpenedInput.open(location)
        guard case .random(let input) = opened else {
            throw LazyRestoreError.needsRandomAccess(opened.name)
        }
        var scanner = CheckpointScanner(input: SequentialReader(opened, bufferSize: 16 << 10), keys: options.keys)
        scanner.memoryLimit = options.memoryLimit
        // Only the page hashes' run table is needed here.
        scanner.computesIdentity = false
        let metadata = try scanner.scanWithoutFrames()
        let chain = try metadata.parent.map {
            try CheckpointChain.resolve(parent: $0, child: location, searchPaths: options.parentSearchPaths, keys: options.keys)
        }
        try ReferenceReader.check(metadata.references, against: chain)
        return LazySource(input: input, metadata: metadata, chain: chain)
    }

    /// The bytes of data pages per kind: the stored pages and the
    /// referenced ones, by the kinds of the segments they lie in.
    var dataPerKind: MemoryStats {
        var stats = metadata.totals.storedPerKind
        var kinds = KindCursor(segments: metadata.segments)
        for r in metadata.references {
            kinds.account(r.destination, into: &stats)
        }
        return stats
    }

    func loader(target: LoadTarget, options: LazyRestoreOptions, hooks: LazyLoader.Hooks) throws -> LazyLoader {
        try LazyLoader(input: input, metadata: metadata, chain: chain, target: target, options: options, hooks: hooks)
    }
}
