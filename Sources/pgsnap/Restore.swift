#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap restore CHECKPOINT OUTPUT` and
/// `pgsnap restore CHECKPOINT --exec -- CMD ARGS...`.
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a checkpoint to a sparse raw image, or into a memfd handed to a command.",
        // Written out: the generated line puts the options after `--`, where
        // they would go to the command.
        usage: """
            pgsnap restore <checkpoint> <output> [--threads <n>] [--memory-limit <size>] [<keys>] [--quiet] [--json]
            pgsnap restore <checkpoint> [--threads <n>] [--memory-limit <size>] [<keys>] [--quiet] --exec -- <command> [<argument> ...]
              <keys>: [--trust <pubkey> ...] [--identity <key> ...] [--encrypt-key <file> ...]
            """,
        discussion: """
            With OUTPUT, writes a sparse raw image of the saved memory's exact \
            length: the stored pages, and holes wherever nothing was stored. OUTPUT \
            is written atomically: a restore that fails leaves it as it was.

            With --exec, restores into a new memfd (a MemoryFile, accounting \
            included) and replaces pgsnap with CMD, which inherits the memfd: its \
            descriptor number is in the environment variable PGSNAP_MEMFD, the \
            memfd's size in bytes in PGSNAP_MEMFD_SIZE, and the saved memory's own \
            length (a raw image's exact size) in PGSNAP_DATA_SIZE. CMD is looked up \
            in PATH.

            CHECKPOINT may be s3://BUCKET/KEY, or - for stdin. Give OUTPUT or --exec, \
            not both.
            """)

    @Argument(
        help: ArgumentHelp("The checkpoint to restore: a path, s3://BUCKET/KEY, or - for stdin.", valueName: "checkpoint"),
        transform: CheckpointArgument.parse)
    var checkpoint: CheckpointArgument

    @Argument(help: ArgumentHelp("The raw image to write (a path).", valueName: "output"))
    var output: String?

    @Flag(help: "Restore into a memfd and run the command after --, which inherits it.")
    var exec = false

    @Flag(help: "Refused, with the reason: an image is written whole, and --exec's command maps the memfd itself. Use serve-uffd to restore a VMM's memory lazily.")
    var lazy = false

    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp("With --exec: the command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    @OptionGroup
    var reading: ReadOptions

    @OptionGroup
    var outputOptions: OutputOptions

    func validate() throws {
        if lazy {
            throw ValidationError(
                exec
                    ? "--lazy cannot apply to --exec: the command maps the memfd itself, where pgsnap cannot catch its page faults; serve-uffd restores a VMM's memory lazily"
                    : "--lazy cannot apply to an image: the image is written whole before anyone reads it; serve-uffd restores a VMM's memory lazily")
        }
        if exec {
            if output != nil {
                throw ValidationError("give OUTPUT or --exec, not both")
            }
            if command.isEmpty {
                throw ValidationError("--exec needs a command after --: pgsnap restore CHECKPOINT --exec -- CMD ARGS...")
            }
            if outputOptions.json {
                throw ValidationError("--json cannot be used with --exec: pgsnap is replaced by the command")
            }
        } else {
            if !command.isEmpty {
                throw ValidationError("a command after -- needs --exec")
            }
            guard let output else {
                throw ValidationError("give OUTPUT (a raw image path) or --exec -- CMD")
            }
            if output == "-" {
                throw ValidationError("OUTPUT must be a path: a sparse image cannot be written to stdout")
            }
        }
    }

    func run() throws {
        let checkpointName = checkpoint.sourceName
        let display = ProgressDisplay.make("restoring", quiet: outputOptions.quiet)
        if exec {
            try restoreAndExec(checkpointName: checkpointName, display: display)
        }
        let output = output!
        if isSameFile(checkpoint.path, output) {
            throw CommandFailure(
                "restore \(checkpointName) to \(output)", ValidationError("OUTPUT is CHECKPOINT: the image would replace the checkpoint it reads"))
        }
        let subject = Subject("restore \(checkpointName) to \(output)", checkpoint: checkpointName)
        let started = ContinuousClock.now
        let metadata = try perform(subject) {
            defer { display?.finish() }
            return try RawImage.restore(from: checkpoint.source, toImage: output, options: try reading.options(display))
        }
        let elapsed = seconds(started.duration(to: .now))

        if outputOptions.json {
            print(Restore.json(metadata), terminator: "")
        }
        if !outputOptions.quiet {
            let stored = metadata.totals.storedBytes
            printError(
                "restored \(checkpointName) to \(output): \(humanBytes(metadata.header.dataSize)) image, "
                    + "\(humanBytes(stored)) stored in \(metadata.totals.frameCount) frame\(metadata.totals.frameCount == 1 ? "" : "s"), "
                    + "\(fixed(elapsed, digits: 2)) s, \(humanRate(stored, seconds: elapsed))")
        }
    }

    /// What a restore read, as `pgsnap restore --json` prints it.
    static func json(_ m: CheckpointMetadata) -> String {
        var fields = JSON.checkpointSummary(m)
        fields["storedPerKind"] = .kinds(m.totals.storedPerKind)
        return JSON.object(fields).rendered
    }
}
