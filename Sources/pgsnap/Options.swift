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

/// The keys a checkpoint is read with: `--trust`, `--identity`,
/// `--encrypt-key` (key files: docs/CLI.md).
struct KeyOptions: ParsableArguments {
    @Option(
        name: .customLong("trust"),
        help: ArgumentHelp(
            "Trust signatures by the Ed25519 public key in this file (pgsnap keygen): a signature by one of them is required (inspect only reports it); repeatable.",
            valueName: "pubkey"))
    var trust: [String] = []

    @Option(
        name: .customLong("identity"),
        help: ArgumentHelp("Open a checkpoint encrypted to this X25519 private key file (pgsnap keygen --encryption); repeatable.", valueName: "key"))
    var identity: [String] = []

    @Option(
        name: .customLong("encrypt-key"),
        help: ArgumentHelp("Open a checkpoint encrypted with this symmetric key file (pgsnap keygen --symmetric); repeatable.", valueName: "file"))
    var encryptKey: [String] = []

    /// The keys, read from their files.
    func keys() throws -> CheckpointKeys {
        CheckpointKeys(
            trustedSigners: try trust.map { try CheckpointKeyFile.signingPublicKey(KeyFiles.read($0), name: $0) },
            identities: try identity.map { try CheckpointKeyFile.encryptionKey(KeyFiles.read($0), name: $0) },
            symmetricKeys: try encryptKey.map { try CheckpointKeyFile.symmetricKey(KeyFiles.read($0), name: $0) })
    }
}

/// The keys a save reads its parent chain with (`save --parent`):
/// `--trust` and `--identity`; the symmetric keys of `--encrypt-key` open
/// the chain too.
struct ParentKeyOptions: ParsableArguments {
    @Option(
        name: .customLong("trust"),
        help: ArgumentHelp(
            "With --parent: require every link of the parent's chain to be signed by the Ed25519 public key in this file; repeatable.",
            valueName: "pubkey"))
    var trust: [String] = []

    @Option(
        name: .customLong("identity"),
        help: ArgumentHelp(
            "With --parent: open links encrypted to this X25519 private key file (--encrypt-key's keys open them too); repeatable.",
            valueName: "key"))
    var identity: [String] = []

    /// The keys, read from their files, with the symmetric keys `protection`
    /// encrypts with.
    func keys(_ protection: ProtectionOptions) throws -> CheckpointKeys {
        CheckpointKeys(
            trustedSigners: try trust.map { try CheckpointKeyFile.signingPublicKey(KeyFiles.read($0), name: $0) },
            identities: try identity.map { try CheckpointKeyFile.encryptionKey(KeyFiles.read($0), name: $0) },
            symmetricKeys: try protection.encryptKey.map { try CheckpointKeyFile.symmetricKey(KeyFiles.read($0), name: $0) })
    }
}

/// How a flattened checkpoint is signed and encrypted: `--sign`,
/// `--encrypt-to`; the symmetric keys that open the chain (`--encrypt-key`)
/// encrypt it too.
struct OutputProtectionOptions: ParsableArguments {
    @Option(
        name: .customLong("sign"),
        help: ArgumentHelp("Sign the output with the Ed25519 private key in this file (pgsnap keygen NAME).", valueName: "key"))
    var sign: String?

    @Option(
        name: .customLong("encrypt-to"),
        help: ArgumentHelp(
            "Encrypt the output to the X25519 public key in this file (pgsnap keygen --encryption NAME); repeatable.",
            valueName: "pubkey"))
    var encryptTo: [String] = []

    /// Sets the signing key and the recipients of `options`: `--encrypt-to`'s
    /// and the symmetric keys of `keys`.
    func apply(to options: inout SaveOptions, keys: CheckpointKeys) throws {
        options.signingKey = try sign.map { try CheckpointKeyFile.signingKey(KeyFiles.read($0), name: $0) }
        options.recipients = try encryptTo.map { .publicKey(try CheckpointKeyFile.encryptionPublicKey(KeyFiles.read($0), name: $0)) }
            + keys.symmetricKeys.map { .symmetricKey($0) }
    }
}

/// How a save signs and encrypts: `--sign`, `--encrypt-to`, `--encrypt-key`.
struct ProtectionOptions: ParsableArguments {
    @Option(
        name: .customLong("sign"),
        help: ArgumentHelp("Sign the checkpoint with the Ed25519 private key in this file (pgsnap keygen NAME).", valueName: "key"))
    var sign: String?

    @Option(
        name: .customLong("encrypt-to"),
        help: ArgumentHelp(
            "Encrypt the checkpoint to the X25519 public key in this file (pgsnap keygen --encryption NAME); repeatable, up to 64 recipients in all.",
            valueName: "pubkey"))
    var encryptTo: [String] = []

    @Option(
        name: .customLong("encrypt-key"),
        help: ArgumentHelp("Encrypt the checkpoint with the symmetric key in this file (pgsnap keygen --symmetric NAME); repeatable.", valueName: "file"))
    var encryptKey: [String] = []

    func validate() throws {
        if encryptTo.count + encryptKey.count > 64 {
            throw ValidationError("\(encryptTo.count + encryptKey.count) recipients: a checkpoint can be encrypted to at most 64")
        }
    }

    /// Sets the signing key and the recipients of `options`, read from
    /// their files.
    func apply(to options: inout SaveOptions) throws {
        options.signingKey = try sign.map { try CheckpointKeyFile.signingKey(KeyFiles.read($0), name: $0) }
        options.recipients = try encryptTo.map { .publicKey(try CheckpointKeyFile.encryptionPublicKey(KeyFiles.read($0), name: $0)) }
            + encryptKey.map { .symmetricKey(try CheckpointKeyFile.symmetricKey(KeyFiles.read($0), name: $0)) }
    }
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
/// `--parent-dir`, and the keys (applied to every link of a chain).
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

    @OptionGroup(title: "Signatures and encryption")
    var keys: KeyOptions

    /// The library's options, with progress shown on `display`; the keys
    /// are read from their files.
    func options(_ display: ProgressDisplay?) throws -> RestoreOptions {
        var options = RestoreOptions()
        options.threads = threads.count
        options.progress = display?.callback
        options.memoryLimit = memoryLimit.bytes
        options.keys = try keys.keys()
        options.parentSearchPaths = parents.directories
        return options
    }
}
