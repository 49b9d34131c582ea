#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap save SOURCE OUTPUT`: a checkpoint of memory pgsnap did not
/// allocate.
struct Save: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save a raw memory image or another process's memfd to a checkpoint.",
        discussion: """
            SOURCE is memory pgsnap did not allocate: a raw (sparse) memory image \
            file, or a memfd of another process opened through /proc/PID/fd/N. Its \
            data extents (SEEK_DATA/SEEK_HOLE), rounded out to whole pages, become \
            allocated segments of one kind; its holes stay holes; pages found all \
            zero are not stored. SOURCE is only read, never changed.

            OUTPUT is a path, written atomically (it keeps its old contents unless \
            the whole checkpoint was written); s3://BUCKET/KEY, uploaded in parts \
            while compressing (the object appears only once it is whole); or - for \
            stdout, which must not be a terminal.

            A one-line summary goes to stderr (progress too, when stderr is a \
            terminal); --json also prints the result on stdout.
            """)

    @Argument(help: ArgumentHelp("The memory to save: a raw image file or /proc/PID/fd/N.", valueName: "source"))
    var source: String

    @Argument(
        help: ArgumentHelp("Where to write the checkpoint: a path, s3://BUCKET/KEY, or - for stdout.", valueName: "output"),
        transform: CheckpointArgument.parse)
    var output: CheckpointArgument

    @Option(
        help: ArgumentHelp(
            "Memory kind of the saved segments: system, anonymous, page-cache, tmpfs, ramdiskfs or mapped. (default: anonymous)",
            valueName: "kind"),
        completion: .list(MemoryKind.allCases.map(\.description)),
        transform: parseKind)
    var kind = MemoryKind.anonymous

    @Option(
        name: .customLong("annotate"),
        help: ArgumentHelp(
            "Store an annotation in the checkpoint, shown by inspect; repeatable. Keys: 1 to 64 of a-z 0-9 . _ -. pgsnap adds created (the time, or SOURCE_DATE_EPOCH) and source unless given.",
            valueName: "key=value"))
    var annotate: [String] = []

    @Option(
        help: ArgumentHelp(
            "Save incrementally against this checkpoint: pages equal to its memory's are referenced, not stored. Restoring OUTPUT needs PARENT (found by its path relative to OUTPUT, or with --parent-dir).",
            valueName: "parent"),
        transform: CheckpointArgument.parse)
    var parent: CheckpointArgument?

    @OptionGroup
    var parentSearch: ParentSearchOptions

    @OptionGroup(title: "Compression")
    var compression: CompressionOptions

    @OptionGroup(title: "Signatures and encryption")
    var protection: ProtectionOptions

    @OptionGroup(title: "Signatures and encryption")
    var parentKeys: ParentKeyOptions

    @OptionGroup
    var threads: ThreadOptions

    @OptionGroup
    var outputOptions: OutputOptions

    func validate() throws {
        _ = try annotations()
        if parent == nil && !(parentKeys.trust.isEmpty && parentKeys.identity.isEmpty) {
            throw ValidationError("--trust and --identity read the parent: they need --parent")
        }
        if source == "-" {
            throw ValidationError("SOURCE must be a file or /proc/PID/fd/N: a checkpoint cannot be saved from stdin")
        }
        if output.isStandardStream {
            if outputOptions.json {
                throw ValidationError("--json prints on stdout: it cannot be used with OUTPUT - (the checkpoint goes there)")
            }
            if isatty(1) == 1 {
                throw ValidationError("stdout is a terminal: redirect it, or give OUTPUT a path")
            }
        }
    }

    func run() throws {
        if isSameFile(source, output.path) {
            throw CommandFailure(
                "save \(source) to \(output)", ValidationError("OUTPUT is SOURCE: the checkpoint would replace the memory it saves"))
        }
        var options = compression.saveOptions(threads: threads)
        options.annotations = try annotations()
        let outputName = output.destinationName
        let subject = Subject("save \(source) to \(outputName)")
        try perform(subject) { try protection.apply(to: &options) }
        let readingKeys = try perform(subject) { try parentKeys.keys(protection) }
        let display = ProgressDisplay.make("saving", quiet: outputOptions.quiet)
        options.progress = display?.callback
        let started = ContinuousClock.now
        let report = try perform(subject) {
            defer { display?.finish() }
            if let parent {
                return try RawImage.save(
                    source: source, kind: kind, to: output.destination, parent: parent.source, parentSearchPaths: parentSearch.directories,
                    parentKeys: readingKeys, options: options)
            }
            return try RawImage.save(source: source, kind: kind, to: output.destination, options: options)
        }
        let elapsed = seconds(started.duration(to: .now))

        if outputOptions.json {
            print(Save.json(report), terminator: "")
        }
        if !outputOptions.quiet {
            printError(
                "saved \(source) to \(outputName): \(humanBytes(report.storedBytes)) stored in \(report.frames) "
                    + "frame\(report.frames == 1 ? "" : "s"), checkpoint \(humanBytes(report.checkpointBytes)) "
                    + "(ratio \(fixed(ratio(report.storedBytes, report.checkpointBytes), digits: 2))), "
                    + (report.referencedBytes + report.duplicateBytes > 0
                        ? "\(humanBytes(report.referencedBytes)) taken from the parent, \(humanBytes(report.duplicateBytes)) duplicates, " : "")
                    + "\(fixed(elapsed, digits: 2)) s, \(humanRate(report.storedBytes, seconds: elapsed))")
        }
    }

    /// The annotations to store: `--annotate`'s, and `created` and
    /// `source` unless given.
    func annotations() throws -> [String: String] {
        var out = ["created": creationTime(), "source": source]
        for item in annotate {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw ValidationError("--annotate \(item): expected key=value")
            }
            out[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        return out
    }

    /// The report of a save, as `pgsnap save --json` prints it.
    static func json(_ report: SaveReport) -> String {
        var fields: [String: JSON] = [
            "checkpointBytes": .integer(report.checkpointBytes),
            "compressionRatio": .ratio(ratio(report.storedBytes, report.checkpointBytes)),
            "duplicateBytes": .integer(report.duplicateBytes),
            "fileSize": .integer(report.fileSize),
            "frameCount": .integer(report.frames),
            "referencedBytes": .integer(report.referencedBytes),
            "scan": .string(report.scan),
            "segmentCount": .integer(UInt64(report.segments)),
            "storedBytes": .integer(report.storedBytes),
            "zeroBytesDropped": .integer(report.zeroBytesDropped),
            "identity": .string(report.identity.description),
        ]
        if let parent = report.parent {
            fields["parent"] = .parent(parent)
        }
        return JSON.object(fields).rendered
    }
}
