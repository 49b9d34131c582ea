import Crypto

/// Options of a save.
public struct SaveOptions: Sendable {
    /// zstd compression level. Level 1 is the measured default: see
    /// BENCHMARKS.md.
    public var level: Int32 = 1
    /// Threads that compress; every core by default.
    public var threads: Int = defaultThreadCount()
    /// Largest uncompressed size of a frame, a multiple of 4096 up to
    /// 64 MiB. Larger frames compress a little better and cost more memory
    /// per thread; see BENCHMARKS.md for the default's measurement.
    public var frameSize: Int = 8 << 20
    /// Free-form annotations stored in the checkpoint (`ANNO`): who saved
    /// it, when, from what. Keys are 1 to 64 characters of `a-z 0-9 . _ -`,
    /// values UTF-8 of at most 4096 bytes. None by default, which keeps a
    /// checkpoint a function of the memory alone.
    public var annotations: [String: String] = [:]
    /// Called from the saving thread as frames are written.
    public var progress: ProgressHandler? = nil
    /// Signs the checkpoint: an Ed25519 signature over its identity
    /// (`SIGN`), which a reader that trusts the key's public half checks,
    /// with every frame's digest, before any memory is created. None by
    /// default.
    public var signingKey: Curve25519.Signing.PrivateKey? = nil
    /// Encrypts the checkpoint to these recipients (at most 64), each of
    /// whom can open it on its own: its frames' payloads and its sealable
    /// sections (segments, annotations, accounting, prefetch order) are
    /// sealed with AES-256-GCM under a random file key wrapped for each
    /// (`ENCR`). None by default: not encrypted.
    public var recipients: [CheckpointRecipient] = []
    /// Where the random bytes of an encrypted save come from (tests fix
    /// them, to make fixtures again byte for byte).
    var entropy = Entropy.system
    /// Gives the committed pages a save finds all zero back to the host, as
    /// gVisor's save does: the file keeps running on less memory. A caller
    /// that stops or exits after the save (suspend, migration) gains
    /// nothing from it and may turn it off: it costs a hole punch, about 4 µs
    /// in the kernel, per run of zero pages (a quarter of a dense 4 GiB
    /// save's time, BENCHMARKS.md), and an isolated zero page splits a
    /// segment of the usage set. Only a `MemoryFile` is decommitted; a raw
    /// image or another process's memory never is.
    public var decommitZeroPages = true
    /// Runs of zero pages a save collects before it punches them, bounding
    /// its memory (16 bytes a run); tests lower it to exercise punching
    /// during the save.
    var zeroPageBatchLimit = 1 << 18

    public init() {}

    func validated() throws -> SaveOptions {
        guard frameSize >= 4096, frameSize % 4096 == 0, UInt64(frameSize) <= UInt64(CheckpointFormat.maxFrameLimit) else {
            throw CheckpointUsageError("frame size \(frameSize) must be a multiple of 4096 from 4096 to \(CheckpointFormat.maxFrameLimit)")
        }
        try checkThreadCount(threads)
        try AnnotationsSection.validate(annotations)
        guard recipients.count <= EncryptionSection.maxStanzas else {
            throw CheckpointUsageError("\(recipients.count) recipients: a checkpoint can be encrypted to at most \(EncryptionSection.maxStanzas)")
        }
        return self
    }
}

/// What a save did.
public struct SaveReport: Sendable, Hashable {
    /// Size of the saved file.
    public var fileSize: UInt64
    /// The saved memory's own length: `fileSize` for a MemoryFile, the
    /// image's length for a raw image.
    public var dataSize: UInt64
    /// Segments of the usage set stored.
    public var segments: Int
    /// Bytes of page data stored.
    public var storedBytes: UInt64
    /// Bytes of committed pages found all zero: not stored.
    public var zeroBytesDropped: UInt64
    /// Bytes of those zero pages given back to the host: all of them when
    /// saving a `MemoryFile` with `SaveOptions.decommitZeroPages` (the
    /// default), none otherwise.
    public var zeroBytesDecommitted: UInt64 = 0
    /// Frames written.
    public var frames: UInt64
    /// Bytes of the checkpoint.
    public var checkpointBytes: UInt64
    /// How the pages holding data were found ("none", "mincore",
    /// "seekData", "mincoreThenSeekData").
    public var scan: String
    /// The checkpoint's identity: what a child records of its parent, and
    /// what `AUTH` seals and a signature signs.
    public var identity: CheckpointIdentity
    /// Bytes of pages with data not stored because the parent chain holds
    /// them.
    public var referencedBytes: UInt64 = 0
    /// Bytes of pages with data not stored because an equal page is stored
    /// at another address of this checkpoint.
    public var duplicateBytes: UInt64 = 0
    /// The parent, for an incremental save.
    public var parent: ParentRecord? = nil
}
