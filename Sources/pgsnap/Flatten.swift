import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap flatten CHECKPOINT OUTPUT`: one self-contained checkpoint of a
/// chain.
struct Flatten: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an incremental checkpoint and its parents as one self-contained checkpoint.",
        discussion: """
            Restores the chain ending at CHECKPOINT (each parent found by the path \
            its child records, or by name in a --parent-dir, and recognised by its \
            identity) into memory and saves that memory with no parent: OUTPUT \
            restores to the same memory and needs no other file. The whole memory \
            is held once while this runs. OUTPUT is written atomically, and may be \
            CHECKPOINT itself (children saved against CHECKPOINT then no longer \
            find their parent). The annotations are CHECKPOINT's.

            Every link is read with the keys given (--trust, --identity, \
            --encrypt-key). OUTPUT is signed with --sign and encrypted to \
            --encrypt-to's recipients and with --encrypt-key's keys; an encrypted \
            chain is never written in clear (without recipients, flatten refuses).
            """)

    @Argument(help: ArgumentHelp("The last checkpoint of the chain.", valueName: "checkpoint"))
    var checkpoint: CheckpointArgument

    @Argument(help: ArgumentHelp("Where to write the flattened checkpoint: a path, or - for stdout.", valueName: "output"))
    var output: CheckpointArgument

    @OptionGroup(title: "Compression")
    var compression: CompressionOptions

    @OptionGroup
    var reading: ReadOptions

    @OptionGroup(title: "Signing and encrypting the output")
    var protection: OutputProtectionOptions

    @OptionGroup
    var outputOptions: OutputOptions

    func validate() throws {
        if output.isStandardStream && outputOptions.json {
            throw ValidationError("--json prints on stdout: it cannot be used with OUTPUT - (the checkpoint goes there)")
        }
        if checkpoint.isStandardStream && output.isStandardStream {
            throw ValidationError("CHECKPOINT and OUTPUT cannot both be -")
        }
    }

    func run() throws {
        let name = checkpoint.sourceName
        let subject = Subject("flatten \(name) to \(output.destinationName)", checkpoint: name)
        let started = ContinuousClock.now
        let report = try perform(subject) {
            let restoreOptions = try reading.options(nil)
            var saveOptions = compression.saveOptions(threads: reading.threads)
            try protection.apply(to: &saveOptions, keys: restoreOptions.keys)
            return try MemoryFile.flatten(checkpoint.source, to: output.destination, restoreOptions: restoreOptions, saveOptions: saveOptions)
        }
        let elapsed = seconds(started.duration(to: .now))
        if outputOptions.json {
            print(Save.json(report), terminator: "")
        }
        if !outputOptions.quiet {
            printError(
                "flattened \(name) to \(output.destinationName): \(humanBytes(report.storedBytes)) stored in \(report.frames) "
                    + "frame\(report.frames == 1 ? "" : "s"), checkpoint \(humanBytes(report.checkpointBytes)), \(fixed(elapsed, digits: 2)) s")
        }
    }
}
