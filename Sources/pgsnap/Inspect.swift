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

            Also prints the checkpoint's identity, who signed it (and whether the \
            signature is valid; with --trust, whether it is trusted: inspect reports, \
            verify and restore refuse), and whom it is encrypted to. An encrypted \
            checkpoint needs --identity or --encrypt-key (its parents too).
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

    @OptionGroup(title: "Signatures and encryption")
    var keys: KeyOptions

    func run() throws {
        let name = checkpoint.sourceName
        let subject = Subject("inspect \(name)", checkpoint: name)
        // --trust is reported on, not required.
        let trusted = try perform(subject) { try keys.keys() }
        var opening = trusted
        opening.trustedSigners = []
        let metadata = try perform(subject) {
            try CheckpointReader.readMetadata(from: checkpoint.source, includeFrames: true, keys: opening)
        }
        var report = CheckpointReport(metadata, trust: keys.trust.isEmpty ? nil : trusted)
        // A file's identity, and an incremental checkpoint's chain (from a
        // file: its parents are found relative to it).
        if metadata.header.version >= 2, !checkpoint.isStandardStream {
            var options = RestoreOptions()
            options.parentSearchPaths = parents.directories
            options.keys = opening
            report.chain = try perform(subject) { try CheckpointReader.chain(of: checkpoint.source, options: options) }
        }
        if json {
            print(report.json(includeSegments: segments), terminator: "")
        } else {
            print(report.text(name: name, includeSegments: segments), terminator: "")
        }
    }
}
