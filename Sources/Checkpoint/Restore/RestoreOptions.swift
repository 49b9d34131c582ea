import PGAlloc

/// Options of a restore, and of a verification (which reads as a restore
/// does, without creating memory).
public struct RestoreOptions: Sendable {
    /// Eager (the default) or lazy (`RestoreMode.lazy`).
    public var mode = RestoreMode.eager
    /// Threads that decompress; every core by default.
    public var threads: Int = defaultThreadCount()
    /// Options of the MemoryFile restored into.
    public var memoryFile = MemoryFileOptions()
    /// Called from the restoring thread as frames are read.
    public var progress: ProgressHandler? = nil
    /// The largest memory file a checkpoint may ask for (its `fileSize`),
    /// checked before any memory is created: a checkpoint asking for more
    /// is refused (`CheckpointError.Reason.limitExceeded`). Verification
    /// applies it too, so that it accepts what a restore would.
    public var memoryLimit: UInt64 = RestoreOptions.defaultMemoryLimit
    /// Whose signatures are required, and what opens encrypted
    /// checkpoints: applied to every checkpoint read (lazy restores and
    /// serve-uffd included).
    public var keys = CheckpointKeys()

    /// Directories where the parents of an incremental checkpoint are
    /// looked for (by file name) when they are not at the path the child
    /// records.
    public var parentSearchPaths: [String] = []
    /// Whether an eager restore into a MemoryFile writes its pages with
    /// UFFDIO_COPY where it can (`UffdCopyTarget`); tests turn it off to
    /// exercise the pwrite path.
    var writeWithUserfaultfd = true

    /// The default memory limit: 1 TiB.
    public static let defaultMemoryLimit: UInt64 = 1 << 40

    public init() {}

    /// Default options, but for the thread count.
    public init(threads: Int) {
        self.threads = threads
    }
}
