import PGAlloc

/// A sink that eager restores write into, page by page, and read back.
protocol RestoreSink: FrameSink {
    /// Where the pages go; valid once `begin` was called.
    var target: RestoreTarget { get }
    /// The referenced pages are written (sorted, disjoint).
    func referencesRestored(_ ranges: [FileRange])
}

extension CheckpointScanner {
    /// Scans the checkpoint into `sink` and restores its references: the
    /// chain of parents is found and each parent's identity checked before
    /// the sink creates any memory; from a file, the references are checked
    /// against the parents then too (from a stream, once read).
    func restore(into sink: RestoreSink, location: CheckpointLocation, options: RestoreOptions) throws -> CheckpointMetadata {
        var scanner = self
        let resolution = ChainResolution(location: location, searchPaths: options.parentSearchPaths, keys: options.keys)
        scanner.beforeFrames = resolution.beforeFrames
        let metadata = try scanner.scan(.decompress(sink))
        try resolution.check(metadata.references)
        try ReferenceReader.restore(metadata.references, chain: resolution.chain, target: sink.target, threads: options.threads)
        if !metadata.references.isEmpty {
            sink.referencesRestored(metadata.references.map(\.destination))
        }
        return metadata
    }
}
