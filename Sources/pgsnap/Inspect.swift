import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap inspect CHECKPOINT`: what a checkpoint holds, without
/// decompressing it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a checkpoint: sizes, accounting, segments and a map, without decompressing it.",
        discussion: """
            Reads and checks everything but the page data: header, segment table, \
            every frame's header, index and trailer (a payload's checksum is checked \
            by verify and restore, not here). Prints the sizes, the compression \
            ratio, the accounting per memory kind, and a map of the saved memory in \
            at most 16 lines of 64 cells. CHECKPOINT may be s3://BUCKET/KEY, or - for stdin.
            """)

    @Argument(
        help: ArgumentHelp("The checkpoint to inspect: a path, s3://BUCKET/KEY, or - for stdin.", valueName: "checkpoint"),
        transform: CheckpointArgument.parse)
    var checkpoint: CheckpointArgument

    @Flag(help: "List every segment: start, end, length, kind and references.")
    var segments = false

    @Flag(help: "Print the description as JSON on stdout (fields in docs/CLI.md).")
    var json = false

    @OptionGroup
    var parents: ParentSearchOptions

    func run() throws {
        let name = checkpoint.sourceName
        let subject = Subject("inspect \(name)", checkpoint: name)
        let metadata = try perform(subject) {
            try CheckpointReader.readMetadata(from: checkpoint.source, includeFrames: true)
        }
        var report = CheckpointReport(metadata)
        // A file's identity, and an incremental checkpoint's chain (from a
        // file: its parents are found relative to it).
        if metadata.header.version >= 2, !checkpoint.isStandardStream {
            var options = RestoreOptions()
            options.parentSearchPaths = parents.directories
            report.chain = try perform(subject) { try CheckpointReader.chain(of: checkpoint.source, options: options) }
        }
        if json {
            print(report.json(includeSegments: segments), terminator: "")
        } else {
            print(report.text(name: name, includeSegments: segments), terminator: "")
        }
    }
}
