/// How a restore writes the memory: all of it before returning, or in the
/// background after returning.
public enum RestoreMode: Sendable {
    /// Every frame is read, checked and written before the MemoryFile is
    /// returned.
    case eager
    /// The MemoryFile is returned as soon as everything but the frames is
    /// read and checked; frames are loaded in the background, and any
    /// access waits only for the frames it needs (see `LazyRestoreOptions`).
    /// Needs a checkpoint that can be read anywhere (a file, not a pipe).
    case lazy(LazyRestoreOptions)
}

/// Options of a lazy restore.
public struct LazyRestoreOptions: Sendable {
    /// Threads that load frames in the background. They contend on the
    /// memfd's page cache: BENCHMARKS.md has the measurement behind the
    /// default (two, or one on a one-CPU machine).
    public var loaderThreads: Int = min(2, defaultThreadCount())

    /// What to do where userfaultfd is not available (no permission:
    /// `vm.unprivileged_userfaultfd=0` without CAP_SYS_PTRACE, and
    /// `/dev/userfaultfd` not open to the caller), so that raw access
    /// through the file's mappings cannot be caught.
    public enum WithoutUserfaultfd: Sendable {
        /// Load everything before returning, as an eager restore does
        /// (the default: a caller that maps the memory gets correct bytes).
        case loadEagerly
        /// Return at once; only access through the MemoryFile's API waits
        /// for contents (`mapInternal`, `forEachMappedSlice` and the
        /// rest), so the caller must touch memory only through them, and
        /// only inside the ranges they lend.
        case apiOnly
        /// Throw `LazyRestoreError.userfaultfdUnavailable`.
        case fail
    }

    public var withoutUserfaultfd = WithoutUserfaultfd.loadEagerly

    /// Record the order in which frames are first needed, for the
    /// checkpoint this file is saved to next (its `PREF` section): for at
    /// most `seconds` after the restore and at most `frameShare` of the
    /// frames, whichever ends first. Nil: do not record.
    public var recordAccessOrder: AccessRecording? = nil

    /// Called (on a loader thread) when a frame cannot be loaded: its
    /// pages hold no valid data; operations that touch them throw, and
    /// raw access to them raises SIGBUS.
    public var onFailure: (@Sendable (any Error) -> Void)? = nil

    /// Tests: behave as if userfaultfd were not available.
    var simulateNoUserfaultfd = false
    /// Tests: load only frames someone waits for (and everything once
    /// `waitUntilLoaded()` is called), so that pages stay unloaded until a
    /// test touches them.
    var backgroundLoading = true

    public init() {}
}

/// The bounds of an access-order recording.
public struct AccessRecording: Sendable, Hashable {
    /// Stop recording this long after the restore.
    public var seconds: Double
    /// Stop recording once this share of the frames (0 to 1) was needed.
    public var frameShare: Double

    public init(seconds: Double = 10, frameShare: Double = 0.25) {
        self.seconds = seconds
        self.frameShare = frameShare
    }
}

/// A lazy restore that cannot be done as asked.
public enum LazyRestoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// userfaultfd cannot be used here (the reason, from the host).
    case userfaultfdUnavailable(String)
    /// The checkpoint is a stream (a pipe): a lazy restore reads frames
    /// out of order.
    case needsRandomAccess(String)

    public var description: String {
        switch self {
        case .userfaultfdUnavailable(let why):
            "a lazy restore needs userfaultfd to catch access through the file's mappings, and it is not available: \(why)"
        case .needsRandomAccess(let name):
            "\(name) is a stream: a lazy restore reads frames out of order, from a file"
        }
    }
}
