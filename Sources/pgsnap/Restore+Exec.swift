#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import PGAlloc

// `pgsnap restore CHECKPOINT --exec -- CMD ARGS...`: the memfd handover.
//
// The contract (docs/CLI.md): CMD runs in place of pgsnap (same pid, same
// stdin/stdout/stderr) with one more open descriptor, a memfd holding the
// restored memory at the addresses it was saved at, holes where nothing
// was stored; PGSNAP_MEMFD is its number (3 or more) and PGSNAP_MEMFD_SIZE
// its size in bytes (the saved file's size, a multiple of 1 GiB; a raw
// image's own length is `dataSize` in `pgsnap inspect`). SIGPIPE is back
// to its default disposition.

extension Restore {
    func restoreAndExec(checkpointName: String, display: ProgressDisplay?) throws -> Never {
        let subject = Subject("restore \(checkpointName) --exec \(command[0])", checkpoint: checkpointName)
        let options = try perform(subject) { try reading.options(display) }
        // Find the command first: a missing one should not cost a restore.
        let path = try resolveCommand(command[0], checkpointName: checkpointName)
        let (file, metadata) = try perform(subject) {
            defer { display?.finish() }
            return try MemoryFile.restoreWithMetadata(from: checkpoint.source, options: options)
        }

        // A descriptor without close-on-exec, above the standard three.
        let fd = try perform(subject) {
            try retryingInterrupts("fcntl(F_DUPFD) of the restored memfd") {
                fcntl(file.fileDescriptor, F_DUPFD, Int32(3))
            }
        }
        let size = file.totalSize
        setenv("PGSNAP_MEMFD", String(fd), 1)
        setenv("PGSNAP_MEMFD_SIZE", String(size), 1)
        // The saved memory's own length: a raw image's, which the memfd's
        // size (whole 1 GiB chunks) rounds up.
        setenv("PGSNAP_DATA_SIZE", String(metadata.header.dataSize), 1)
        if !outputOptions.quiet {
            printError("restored \(checkpointName) into memfd \(fd) (\(humanBytes(size))); running \(command[0])")
        }

        signal(SIGPIPE, SIG_DFL)
        fflush(nil)
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        withExtendedLifetime(file) {
            _ = execv(path, &argv)
        }
        // Still here: the command could not be run.
        let code = errno
        signal(SIGPIPE, SIG_IGN)
        throw execFailure("execv \(path)", code, checkpointName: checkpointName)
    }

    /// The path of `name`: itself if it holds a slash, else the first
    /// executable regular file of that name in PATH (as execvp looks).
    private func resolveCommand(_ name: String, checkpointName: String) throws -> String {
        if name.contains("/") {
            guard access(name, X_OK) == 0 else {
                throw execFailure("\(name)", errno, checkpointName: checkpointName)
            }
            return name
        }
        let searchPath = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        var denied = false
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 {
                return candidate
            }
            denied = true
        }
        throw execFailure("\(name) (in PATH)", denied ? EACCES : ENOENT, checkpointName: checkpointName)
    }

    /// The failure to run the command: 127 if it does not exist, 126 if it
    /// cannot be executed.
    private func execFailure(_ call: String, _ code: Int32, checkpointName: String) -> CommandFailure {
        CommandFailure(
            "restore \(checkpointName) --exec", HostError(call, errno: code),
            status: code == ENOENT || code == ENOTDIR ? ExitStatus.commandNotFound : ExitStatus.cannotExecute)
    }
}
