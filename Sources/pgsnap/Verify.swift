import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap verify CHECKPOINT`: every check a restore makes, without
/// creating memory.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every rule and checksum of a checkpoint and decompress every frame.",
        discussion: """
            Checks what a restore would check, on every core, without keeping the \
            data: the format's rules, every checksum, and that every frame \
            decompresses to its declared size. Exits 0 only if every check passes, \
            printing "OK: N frames, X bytes stored"; a bad checkpoint exits 65 with \
            one line on stderr naming the problem. CHECKPOINT may be \
            s3://BUCKET/KEY, or - for stdin.
            """)

    @Argument(
        help: ArgumentHelp("The checkpoint to verify: a path, s3://BUCKET/KEY, or - for stdin.", valueName: "checkpoint"),
        transform: CheckpointArgument.parse)
    var checkpoint: CheckpointArgument

    @OptionGroup
    var reading: ReadOptions

    @OptionGroup
    var outputOptions: OutputOptions

    func run() throws {
        let name = checkpoint.sourceName
        let display = ProgressDisplay.make("verifying", quiet: outputOptions.quiet)
        let metadata = try perform(Subject("verify \(name)", checkpoint: name)) {
            defer { display?.finish() }
            return try CheckpointReader.verify(checkpoint.source, options: try reading.options(display))
        }
        if outputOptions.json {
            print(Verify.json(metadata), terminator: "")
        } else if !outputOptions.quiet {
            let chain = metadata.parent.map { ", and its chain of \($0.depth) parent\($0.depth == 1 ? "" : "s")" } ?? ""
            print("OK: \(metadata.totals.frameCount) frames, \(metadata.totals.storedBytes) bytes stored\(chain)")
        }
    }

    /// A passed verification, as `pgsnap verify --json` prints it.
    static func json(_ m: CheckpointMetadata) -> String {
        var fields = JSON.checkpointSummary(m)
        fields["ok"] = .bool(true)
        return JSON.object(fields).rendered
    }
}
