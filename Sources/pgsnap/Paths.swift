#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint

/// A checkpoint named on the command line: a path, `s3://BUCKET/KEY` for
/// an object in an S3-compatible store (reached as the AWS environment
/// variables say), or `-` for the standard stream (stdin when read, stdout
/// when written). The one place where `-` and `s3://` are understood.
struct CheckpointArgument: ExpressibleByArgument, CustomStringConvertible {
    /// The argument as given.
    let argument: String
    /// The object, for `s3://BUCKET/KEY`.
    let object: ObjectLocation?

    /// Parses an argument; a malformed `s3://` location is a usage error
    /// that says what is wrong with it.
    static func parse(_ argument: String) throws -> CheckpointArgument {
        guard !argument.isEmpty else {
            throw ValidationError("a checkpoint must be a path, s3://BUCKET/KEY or -")
        }
        do {
            return CheckpointArgument(argument: argument, object: try ObjectLocation.parse(argument))
        } catch let error as CheckpointUsageError {
            throw ValidationError(error.description)
        }
    }

    private init(argument: String, object: ObjectLocation?) {
        self.argument = argument
        self.object = object
    }

    init?(argument: String) {
        guard let parsed = try? CheckpointArgument.parse(argument) else { return nil }
        self = parsed
    }

    /// Whether it is `-`.
    var isStandardStream: Bool { argument == "-" }

    /// The path, unless it is `-` or an object.
    var path: String? { isStandardStream || object != nil ? nil : argument }

    /// Where to read the checkpoint from.
    var source: CheckpointLocation {
        if let object { return .object(object) }
        return isStandardStream ? .standardInput : .path(argument)
    }

    /// Where to write the checkpoint to.
    var destination: CheckpointLocation {
        if let object { return .object(object) }
        return isStandardStream ? .standardOutput : .path(argument)
    }

    /// How messages name it when it is read.
    var sourceName: String { isStandardStream ? "stdin" : argument }

    /// How messages name it when it is written.
    var destinationName: String { isStandardStream ? "stdout" : argument }

    var description: String { argument }
}

/// Whether two paths name the same existing file (same device and inode):
/// writing one atomically would replace the other while it is read.
func isSameFile(_ a: String?, _ b: String?) -> Bool {
    guard let a, let b else { return false }
    var x = stat()
    var y = stat()
    guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
    return x.st_dev == y.st_dev && x.st_ino == y.st_ino
}
