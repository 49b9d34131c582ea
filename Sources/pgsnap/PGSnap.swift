#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// pgsnap: checkpoints of memory, saved and restored through zstd.
@main
struct PGSnap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgsnap",
        abstract: "Save, restore, inspect and verify zstd-compressed memory checkpoints.",
        discussion: """
            Checkpoints hold the pages of a memory file that hold data, compressed \
            on every core, with the allocator's segments and accounting (format: \
            docs/FORMAT.md). save and restore also work on memory pgsnap did not \
            allocate: raw sparse images and other processes' memfds.

            A checkpoint may be in an S3-compatible object store: s3://BUCKET/KEY \
            wherever a checkpoint goes. pgsnap reads the AWS environment: \
            AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION \
            (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for \
            another store (addressed path-style), AWS_MAX_ATTEMPTS.

            EXIT STATUS
              0    success
              64   usage error: a bad option, argument, combination or key file (EX_USAGE)
              65   bad checkpoint: corrupt, truncated, not a checkpoint (EX_DATAERR)
              69   serve-uffd: userfaultfd is not available here (EX_UNAVAILABLE)
              70   internal failure, e.g. the demo found a wrong page (EX_SOFTWARE)
              74   I/O error: a missing file or directory, a full disk; a missing bucket
                   or key, an object replaced while read (EX_IOERR)
              75   object store unavailable after retries: 5xx, throttling, no
                   connection (EX_TEMPFAIL)
              76   serve-uffd: the VMM broke the protocol or its memory is not the checkpoint's (EX_PROTOCOL)
              77   object store refused the credentials or permissions (EX_NOPERM)
              78   object store configuration unusable, e.g. a malformed
                   AWS_ENDPOINT_URL (EX_CONFIG)
              79   broken chain: a parent of an incremental checkpoint missing, changed or cyclic
              80   --trust: unsigned, signed by an untrusted key, or changed since signed
              81   encrypted, and no key given opens it (--identity, --encrypt-key)
              126  restore --exec: the command could not be executed
              127  restore --exec: the command was not found

            Every error prints exactly one line on stderr: pgsnap: <what>: <why>.
            """,
        subcommands: [Save.self, Restore.self, Inspect.self, Verify.self, Flatten.self, ServeUffd.self, Keygen.self, Demo.self])

    /// Runs the command line. Unlike ArgumentParser's own `main()`, prints
    /// every error, usage errors included, as one line on stderr, and maps
    /// library errors to pgsnap's exit statuses.
    static func main() {
        // A closed pipe is an error to report (EPIPE), not a silent death.
        signal(SIGPIPE, SIG_IGN)
        let status: Int32
        do {
            var command = try parseAsRoot()
            try command.run()
            status = ExitStatus.success
        } catch let failure as CommandFailure {
            printError(failure.line)
            status = failure.status
        } catch {
            status = report(error)
        }
        fflush(nil)
        Glibc.exit(status)
    }

    /// Prints what ArgumentParser makes of `error` (help, a version, a
    /// usage error) and returns the exit status.
    private static func report(_ error: any Error) -> Int32 {
        let code = exitCode(for: error)
        if code == .success {
            print(fullMessage(for: error))
            return ExitStatus.success
        }
        if let exit = error as? ExitCode {
            return exit.rawValue
        }
        let message = oneLine(message(for: error))
        guard code == .validationFailure else {
            // Not a parse error: a library error that escaped a command.
            printError("pgsnap: \(message)")
            return ExitStatus.of(error)
        }
        // Name the subcommand, to point at its help.
        let names = configuration.subcommands.map { String(describing: $0).lowercased() }
        let subcommand = CommandLine.arguments.dropFirst().first { names.contains($0) }
        let what = subcommand ?? "usage"
        let help = subcommand.map { "pgsnap \($0) --help" } ?? "pgsnap --help"
        printError("pgsnap: \(what): \(message) (see '\(help)')")
        return ExitStatus.usage
    }
}
