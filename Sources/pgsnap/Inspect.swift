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
            at most 16 lines of 64 cells. CHECKPOINT may be - for stdin.

            Also prints the checkpoint's identity, who signed it (and whether the \
            signature is valid; with --trust, whether it is trusted: inspect reports, \
            verify and restore refuse), and whom it is encrypted to. An encrypted \
            checkpoint needs --identity or --encrypt-key.
            """)

    @Argument(help: ArgumentHelp("The checkpoint to inspect, or - for stdin.", valueName: "checkpoint"))
    var checkpoint: CheckpointArgument

    @Flag(help: "List every segment: start, end, length, kind and references.")
    var segments = false

    @Flag(help: "Print the description as JSON on stdout (fields in docs/CLI.md).")
    var json = false

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
        let report = CheckpointReport(metadata, trust: keys.trust.isEmpty ? nil : trusted)
        if json {
            print(report.json(includeSegments: segments), terminator: "")
        } else {
            print(report.text(name: name, includeSegments: segments), terminator: "")
        }
    }
}
