import PGAlloc

/// A checkpoint of a chain, as `CheckpointReader.chain(of:)` describes it.
public struct ChainLinkDescription: Sendable {
    /// 0 for the checkpoint asked about, 1 for its parent, and so on.
    public var link: Int
    /// Where it is.
    public var path: String
    public var identity: CheckpointIdentity?
    /// Everything but its frames (segments only for link 0).
    public var metadata: CheckpointMetadata
    /// Bytes it references, by the link (counted from it) storing them:
    /// 0 for its own pages stored once.
    public var referencedBytesByLink: [Int: UInt64]
}

extension CheckpointReader {
    /// The checkpoint at `location` and its parents (found as a restore
    /// finds them, with `options.parentSearchPaths`), newest first; each
    /// parent's identity checked; every link read with `options.keys`.
    /// Frames are not read.
    public static func chain(of location: CheckpointLocation, options: RestoreOptions = RestoreOptions()) throws -> [ChainLinkDescription] {
        let opened = try OpenedInput.open(location)
        var scanner = CheckpointScanner(input: SequentialReader(opened, bufferSize: 64 << 10), keys: options.keys)
        scanner.memoryLimit = CheckpointFormat.maxFileSize
        let metadata: CheckpointMetadata
        var identity: CheckpointIdentity?
        if case .random(let file) = opened {
            metadata = try scanner.scanWithoutFrames()
            identity = metadata.header.version >= 2 ? try metadata.security.identity ?? Self.identity(of: file, metadata: metadata) : nil
        } else {
            metadata = try scanner.scan(.skip)
        }
        let chain = try metadata.parent.map {
            try CheckpointChain.resolve(parent: $0, child: location, searchPaths: options.parentSearchPaths, keys: options.keys)
        }
        try ReferenceReader.check(metadata.references, against: chain)
        var out = [describe(link: 0, path: location.description, identity: identity, metadata: metadata)]
        for (i, l) in (chain?.links ?? []).enumerated() {
            out.append(describe(link: i + 1, path: l.path, identity: l.identity, metadata: l.metadata))
        }
        return out
    }

    private static func describe(link: Int, path: String, identity: CheckpointIdentity?, metadata: CheckpointMetadata) -> ChainLinkDescription {
        var byLink: [Int: UInt64] = [:]
        for r in metadata.references {
            byLink[r.link, default: 0] += r.destination.length
        }
        return ChainLinkDescription(link: link, path: path, identity: identity, metadata: metadata, referencedBytesByLink: byLink)
    }

    /// Verifies one checkpoint: every rule and checksum, every frame
    /// decompressed and, from a file, every stored page against its hash;
    /// its references against `chain` (resolved here when nil and it has a
    /// parent).
    static func verifyOne(
        _ location: CheckpointLocation, options: RestoreOptions, chain known: CheckpointChain?, includeFrames: Bool
    ) throws -> (CheckpointMetadata, CheckpointChain?) {
        let opened = try OpenedInput.open(location)
        var scanner = CheckpointScanner(input: SequentialReader(opened), keys: options.keys)
        scanner.threads = options.threads
        scanner.progress = options.progress
        scanner.memoryLimit = options.memoryLimit
        scanner.collectFrames = includeFrames
        let resolution = ChainResolution(location: location, searchPaths: options.parentSearchPaths, keys: options.keys, known: known)
        scanner.beforeFrames = resolution.beforeFrames
        var sink: FrameSink = DiscardSink()
        if case .random(let file) = opened {
            // The page hashes are read before the frames: their runs check
            // the frames, their hashes the pages.
            scanner.checkPageHashes = true
            let probe = try CheckpointScanner(input: SequentialReader(.random(file), bufferSize: 64 << 10), keys: options.keys)
                .scanWithoutFrames()
            if let hashes = probe.pageHashes {
                sink = PageHashCheckSink(input: file, hashes: hashes)
            }
        }
        let metadata = try scanner.scan(.decompress(sink))
        try resolution.check(metadata.references)
        return (metadata, resolution.chain)
    }
}
