#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint
import PGAlloc

/// pgsnap's exit statuses. They are part of its interface: the root
/// command's help and docs/CLI.md list them, and the tests check each.
enum ExitStatus {
    static let success: Int32 = 0
    /// A bad option, argument or combination of them (`EX_USAGE`).
    static let usage: Int32 = 64
    /// A bad, corrupt or truncated checkpoint, or a file that is not one
    /// (`EX_DATAERR`).
    static let dataError: Int32 = 65
    /// Anything else: a failure inside pgsnap or its libraries
    /// (`EX_SOFTWARE`).
    static let software: Int32 = 70
    /// A service the command needs is not available here: userfaultfd for
    /// a lazy restore (`EX_UNAVAILABLE`).
    static let unavailable: Int32 = 69
    /// A file or descriptor could not be opened, read or written; an
    /// object store answered that a bucket or key does not exist, that the
    /// object changed while it was read, or refused a request otherwise
    /// (`EX_IOERR`).
    static let ioError: Int32 = 74
    /// An object store could not be reached or kept failing (5xx,
    /// throttling, broken connections) after every retry: trying again
    /// later may work (`EX_TEMPFAIL`).
    static let temporaryFailure: Int32 = 75
    /// An object store refused the credentials or their permissions (401,
    /// 403, a bad signature, an unknown key, an invalid token)
    /// (`EX_NOPERM`).
    static let permissionDenied: Int32 = 77
    /// The object-store configuration in the environment cannot work (a
    /// malformed AWS_ENDPOINT_URL, a key without its secret) (`EX_CONFIG`).
    static let configuration: Int32 = 78
    /// serve-uffd: the VMM broke the protocol or sent memory regions that
    /// do not match the checkpoint (`EX_PROTOCOL`).
    static let protocolError: Int32 = 76
    /// `--trust` was given and the checkpoint is unsigned, signed by a key
    /// not trusted, or does not match its signature (or a frame its signed
    /// digest).
    static let signature: Int32 = 80
    /// The checkpoint is encrypted and no key was given, or none of those
    /// given opens it.
    static let encrypted: Int32 = 81
    /// An incremental checkpoint's chain is broken: a parent missing,
    /// changed since the child was saved, forming a cycle, or unable to be
    /// a parent.
    static let brokenChain: Int32 = 79
    /// `restore --exec`: the command exists but could not be executed
    /// (as env(1) and the shells report it).
    static let cannotExecute: Int32 = 126
    /// `restore --exec`: the command was not found.
    static let commandNotFound: Int32 = 127

    /// The status for a failure of a library call.
    static func of(_ error: any Error) -> Int32 {
        switch error {
        case is CheckpointError:
            return dataError
        case let chain as ChainError:
            return chain.reason == .parentInvalid ? dataError : brokenChain
        case is HostError:
            return ioError
        case let store as ObjectStoreError:
            switch store.kind {
            case .accessDenied: return permissionDenied
            case .unavailable: return temporaryFailure
            case .configuration: return configuration
            case .notFound, .changed, .rejected: return ioError
            }
        case is CheckpointUsageError, is ValidationError, is KeyFiles.Problem:
            return usage
        case is CheckpointSignatureError:
            return signature
        case is CheckpointEncryptionError:
            return encrypted
        case let lazy as LazyRestoreError:
            if case .userfaultfdUnavailable = lazy { return unavailable }
            return usage
        case is UffdServer.ProtocolError:
            return protocolError
        case let zstd as ZstdError:
            if case .invalidLevel = zstd { return usage }
            return software
        case let failure as CommandFailure:
            return failure.status
        default:
            // MemoryFileError, PartialFillError, and anything else
            // unexpected.
            return software
        }
    }
}

/// A command that failed: what it was doing, and why.
///
/// Printed as exactly one line on stderr, `pgsnap: <subject>: <why>`. The
/// subject names the file at fault: the checkpoint for a bad checkpoint,
/// the whole operation (source and destination) otherwise; the library's
/// description of a host failure names the call and often the path too.
struct CommandFailure: Error {
    var subject: String
    var error: any Error
    /// Overrides the status derived from `error`.
    var explicitStatus: Int32?

    init(_ subject: String, _ error: any Error, status: Int32? = nil) {
        self.subject = subject
        self.error = error
        self.explicitStatus = status
    }

    var status: Int32 { explicitStatus ?? ExitStatus.of(error) }

    var line: String { "pgsnap: \(subject): \(oneLine(describe(error)))" }
}

/// A failure of pgsnap's own making, described by its message.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What is being done to which files, to name them in an error.
struct Subject {
    /// The operation, e.g. `restore ckpt.pgsnap to out.img`.
    var action: String
    /// The checkpoint read, named when it is what is wrong.
    var checkpoint: String?

    init(_ action: String, checkpoint: String? = nil) {
        self.action = action
        self.checkpoint = checkpoint
    }

    func failure(_ error: any Error) -> CommandFailure {
        if error is CheckpointError || error is ChainError || error is CheckpointSignatureError || error is CheckpointEncryptionError,
            let checkpoint
        {
            return CommandFailure(checkpoint, error)
        }
        return CommandFailure(action, error)
    }
}

/// Runs `body`, turning what it throws into a `CommandFailure` about
/// `subject`.
func perform<T>(_ subject: Subject, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let failure as CommandFailure {
        throw failure
    } catch {
        throw subject.failure(error)
    }
}

/// The text of an error, as the libraries describe it.
func describe(_ error: any Error) -> String {
    switch error {
    case let e as ValidationError: return e.message
    case let e as CheckpointEncryptionError: return e.description + ": give --identity KEY or --encrypt-key FILE"
    case let e as CustomStringConvertible: return e.description
    default: return String(describing: error)
    }
}

/// `text` on one line: line breaks become "; ".
func oneLine(_ text: String) -> String {
    guard text.contains(where: { $0.isNewline }) else { return text }
    return text.split(whereSeparator: { $0.isNewline }).joined(separator: "; ")
}

/// Writes one line to stderr.
func printError(_ line: String) {
    writeStandardError(line + "\n")
}

/// Writes `text` to descriptor 2, unbuffered, whole.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR {
            continue
        }
        if n <= 0 {
            return
        }
        done += n
    }
}
