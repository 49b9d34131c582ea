import ArgumentParser
import Checkpoint
import PGAlloc

/// How a save compresses: `--level`, `--frame-size`.
struct CompressionOptions: ParsableArguments {
    // Unconditional: the value of `--level -1` starts with a dash, which the
    // parser would otherwise take for an option.
    @Option(
        parsing: .unconditional,
        help: "zstd compression level: higher levels compress more and more slowly; negative levels are faster.")
    var level: Int32 = SaveOptions().level

    @Option(
        help: ArgumentHelp(
            "Largest uncompressed size of a frame: a multiple of 4KiB from 4KiB to 64MiB, e.g. 1MiB or 16M. (default: \(CompressionOptions.defaultFrameSize))",
            valueName: "size"),
        transform: ByteSize.parse)
    var frameSize = CompressionOptions.defaultFrameSize

    /// The library's default.
    static let defaultFrameSize = ByteSize(UInt64(SaveOptions().frameSize))

    func validate() throws {
        let levels = ZstdCompressor.supportedLevels
        guard levels.contains(level) else {
            throw ValidationError("--level \(level) is outside the zstd levels \(levels.lowerBound)...\(levels.upperBound)")
        }
        let size = frameSize.bytes
        guard size >= 4096, size % 4096 == 0, size <= UInt64(CheckpointFormat.maxFrameLimit) else {
            throw ValidationError("--frame-size \(frameSize) must be a multiple of 4KiB from 4KiB to 64MiB")
        }
    }

    /// The library's options.
    func saveOptions(threads: ThreadOptions) -> SaveOptions {
        var options = SaveOptions()
        options.level = level
        options.frameSize = Int(frameSize.bytes)
        if let n = threads.threads {
            options.threads = n
        }
        return options
    }
}

/// `--threads`: how many threads compress or decompress.
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads that compress or decompress, 1 to 1024 (default: one per online CPU).", valueName: "n"))
    var threads: Int?

    func validate() throws {
        if let n = threads, !threadCountRange.contains(n) {
            throw ValidationError("--threads \(n) must be from 1 to 1024")
        }
    }

    /// The count to use.
    var count: Int { threads ?? defaultThreadCount() }
}

/// What a command prints: `--quiet`, `--json`.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print no progress and no summary: only errors.")
    var quiet = false

    @Flag(help: "Print the result as JSON on stdout (fields in docs/CLI.md).")
    var json = false
}

/// Parses a memory kind by its name.
func parseKind(_ name: String) throws -> MemoryKind {
    guard let kind = MemoryKind(name: name) else {
        let names = MemoryKind.allCases.map(\.description).joined(separator: ", ")
        throw ValidationError("'\(name)' is not a memory kind: use one of \(names)")
    }
    return kind
}

/// Where the parents of an incremental checkpoint are looked for:
/// `--parent-dir`.
struct ParentSearchOptions: ParsableArguments {
    @Option(
        name: .customLong("parent-dir"),
        help: ArgumentHelp(
            "A directory where the parents of an incremental checkpoint are looked for, by file name, when they are not at the path the child records; repeatable.",
            valueName: "dir"))
    var directories: [String] = []
}

/// How restore and verify read a checkpoint: `--threads`, `--memory-limit`,
/// `--parent-dir`.
struct ReadOptions: ParsableArguments {
    @OptionGroup
    var threads: ThreadOptions

    @OptionGroup
    var parents: ParentSearchOptions

    @Option(
        help: ArgumentHelp(
            "The largest memory a checkpoint may ask for (its file size), checked before any memory is created, e.g. 64GiB. (default: \(ReadOptions.defaultMemoryLimit))",
            valueName: "size"),
        transform: ByteSize.parse)
    var memoryLimit = ReadOptions.defaultMemoryLimit

    /// The library's default.
    static let defaultMemoryLimit = ByteSize(RestoreOptions.defaultMemoryLimit)

    /// The library's options, with progress shown on `display`.
    func options(_ display: ProgressDisplay?) -> RestoreOptions {
        var options = RestoreOptions()
        options.threads = threads.count
        options.progress = display?.callback
        options.memoryLimit = memoryLimit.bytes
        options.parentSearchPaths = parents.directories
        return options
    }
}
