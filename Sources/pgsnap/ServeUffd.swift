import ArgumentParser
import Checkpoint
import PGAlloc

/// `pgsnap serve-uffd CHECKPOINT --socket PATH`: a VMM's guest memory
/// served lazily from a compressed checkpoint, through Firecracker's
/// userfaultfd handler protocol.
struct ServeUffd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-uffd",
        abstract: "Serve a VMM's guest memory from a checkpoint through Firecracker's userfaultfd protocol.",
        discussion: """
            Listens on the Unix socket PATH for one VMM, which sends, as Firecracker \
            does when it loads a snapshot with a Uffd memory backend, the JSON list of \
            its guest memory regions and the userfaultfd they are registered on. Every \
            page fault is then served from CHECKPOINT (the frame holding the page \
            first, decompressed and copied in), pages never stored read as zero, and \
            the other frames load in the background, in the checkpoint's prefetch \
            order when it has one. Ranges the VMM removes (a balloon) read as zero \
            afterwards. Serves until the VMM exits.

            CHECKPOINT holds the VMM's memory file (its regions end to end), e.g. \
            `pgsnap save mem.snap mem.pgsnap` of a Firecracker memory snapshot; it \
            must be a file (frames are read out of order). Prints "listening on PATH" \
            on stderr once the socket is ready.
            """)

    @Argument(help: ArgumentHelp("The checkpoint of the VMM's memory file.", valueName: "checkpoint"))
    var checkpoint: CheckpointArgument

    @Option(help: ArgumentHelp("The Unix socket to listen on (created; an old socket there is replaced).", valueName: "path"))
    var socket: String

    @Option(help: ArgumentHelp("Threads that load frames in the background (default: 2).", valueName: "n"))
    var loaders: Int?

    @OptionGroup
    var reading: ReadOptions

    @OptionGroup
    var outputOptions: OutputOptions

    func validate() throws {
        if checkpoint.isStandardStream {
            throw ValidationError("CHECKPOINT must be a file: a served checkpoint is read out of order")
        }
        if let n = loaders, !(1...64).contains(n) {
            throw ValidationError("--loaders \(n) must be from 1 to 64")
        }
    }

    func run() throws {
        var lazy = LazyRestoreOptions()
        if let n = loaders {
            lazy.loaderThreads = n
        }
        // The first frame that failed gives the exit status.
        let firstFailure = StateLock<(any Error)?>(nil)
        lazy.onFailure = { error in
            firstFailure.withLock { first in
                if first == nil { first = error }
            }
            printError("pgsnap: \(checkpoint): \(oneLine(describe(error))): its pages raise SIGBUS in the VMM")
        }
        let subject = Subject("serve-uffd \(checkpoint) on \(socket)", checkpoint: checkpoint.sourceName)
        let server = UffdServer(checkpoint: checkpoint.source, options: try perform(subject) { try reading.options(nil) }, lazy: lazy)
        let quiet = outputOptions.quiet
        let socketPath = socket
        let stats = try perform(subject) {
            try server.serve(socketPath: socketPath) {
                if !quiet {
                    printError("listening on \(socketPath)")
                }
            }
        }
        if outputOptions.json {
            print(JSON.object([
                "bytesLoaded": .integer(stats.bytesLoaded),
                "firstFrameSeconds": .number(stats.firstFrameSeconds.map { fixed($0, digits: 6) } ?? "null"),
                "framesFailed": .integer(UInt64(stats.framesFailed)),
                "framesLoaded": .integer(UInt64(stats.framesLoaded)),
                "regions": .integer(UInt64(stats.regions)),
            ]).rendered, terminator: "")
        }
        if !quiet {
            printError(
                "served \(checkpoint): \(stats.regions) region\(stats.regions == 1 ? "" : "s"), \(stats.framesLoaded) frames, "
                    + "\(humanBytes(stats.bytesLoaded)) loaded" + (stats.framesFailed > 0 ? ", \(stats.framesFailed) frames FAILED" : ""))
        }
        if stats.framesFailed > 0 {
            let status = firstFailure.withLock { $0 }.map(ExitStatus.of) ?? ExitStatus.dataError
            throw CommandFailure(subject.action, Failure("\(stats.framesFailed) frames could not be loaded"), status: status)
        }
    }
}
