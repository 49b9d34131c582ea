import PGAlloc

/// Reading a checkpoint without restoring it.
public enum CheckpointReader {
    /// Reads and checks everything but the page data: header, segment
    /// table, every frame's header (with `includeFrames`, returned), index
    /// and trailer. From a file, payloads are skipped by seeking.
    public static func readMetadata(path: String, includeFrames: Bool = false) throws -> CheckpointMetadata {
        try readMetadata(CheckpointInput(path: path), includeFrames: includeFrames)
    }

    /// As `readMetadata(path:includeFrames:)`, from a descriptor that stays
    /// the caller's.
    public static func readMetadata(descriptor: Int32, includeFrames: Bool = false) throws -> CheckpointMetadata {
        try readMetadata(CheckpointInput(descriptor: descriptor, name: "descriptor \(descriptor)"), includeFrames: includeFrames)
    }

    private static func readMetadata(_ input: CheckpointInput, includeFrames: Bool) throws -> CheckpointMetadata {
        var scanner = CheckpointScanner(input: input)
        scanner.collectFrames = includeFrames
        return try scanner.scan(.skip)
    }

    /// Checks every rule and every checksum, and decompresses every frame
    /// (on every core) without keeping the data: what a restore would
    /// check, without creating memory.
    public static func verify(
        path: String, threads: Int = defaultThreadCount(), includeFrames: Bool = false,
        progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    ) throws -> CheckpointMetadata {
        try verify(CheckpointInput(path: path), threads: threads, includeFrames: includeFrames, progress: progress)
    }

    /// As `verify(path:...)`, from a descriptor that stays the caller's.
    public static func verify(
        descriptor: Int32, threads: Int = defaultThreadCount(), includeFrames: Bool = false,
        progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    ) throws -> CheckpointMetadata {
        try verify(
            CheckpointInput(descriptor: descriptor, name: "descriptor \(descriptor)"), threads: threads,
            includeFrames: includeFrames, progress: progress)
    }

    private static func verify(
        _ input: CheckpointInput, threads: Int, includeFrames: Bool, progress: (@Sendable (CheckpointProgress) -> Void)?
    ) throws -> CheckpointMetadata {
        try checkThreadCount(threads)
        var scanner = CheckpointScanner(input: input)
        scanner.threads = threads
        scanner.collectFrames = includeFrames
        scanner.progress = progress
        return try scanner.scan(.decompress(DiscardSink()))
    }
}

/// Drops decompressed data: verification only.
final class DiscardSink: FrameSink, @unchecked Sendable {
    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}
    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {}
}
