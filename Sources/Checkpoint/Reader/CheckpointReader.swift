import PGAlloc

/// Reading a checkpoint without restoring it.
public enum CheckpointReader {
    /// Reads and checks everything but the page data: header, sections,
    /// segment table, every frame's header (with `includeFrames`,
    /// returned), index and trailer. From a file, payloads are skipped by
    /// seeking. `keys` open an encrypted checkpoint; with trusted signers,
    /// a signature by one of them is required (of what is read: the
    /// frames' payloads are not).
    public static func readMetadata(
        from location: CheckpointLocation, includeFrames: Bool = false, keys: CheckpointKeys = CheckpointKeys()
    ) throws -> CheckpointMetadata {
        // Payloads are skipped: a small read-ahead buffer reads little more
        // than the headers from a file.
        var scanner = CheckpointScanner(input: SequentialReader(try OpenedInput.open(location), bufferSize: 64 << 10), keys: keys)
        scanner.collectFrames = includeFrames
        scanner.memoryLimit = CheckpointFormat.maxFileSize
        return try scanner.scan(.skip)
    }

    /// Checks every rule and every checksum, and decompresses every frame
    /// (on `options.threads` threads) without keeping the data: what a
    /// restore would check, without creating memory. From a file, each
    /// stored page is also compared with its SHA-256 in the page hashes.
    /// An incremental checkpoint's parents (found with
    /// `options.parentSearchPaths`) are verified too, each as a whole, and
    /// every reference against the parent it names.
    public static func verify(
        _ location: CheckpointLocation, options: RestoreOptions = RestoreOptions(), includeFrames: Bool = false
    ) throws -> CheckpointMetadata {
        let (metadata, chain) = try verifyOne(location, options: options, chain: nil, includeFrames: includeFrames)
        if let chain {
            for (i, link) in chain.links.enumerated() {
                do {
                    _ = try verifyOne(link.location, options: options, chain: CheckpointChain(links: Array(chain.links[(i + 1)...])),
                                      includeFrames: false)
                } catch let error as CheckpointError {
                    throw ChainError(.parentInvalid, link: i + 1, "\(link.path): \(error)")
                }
            }
        }
        return metadata
    }
}

/// Drops decompressed data: verification only.
final class DiscardSink: FrameSink, @unchecked Sendable {
    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}
    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {}
}
