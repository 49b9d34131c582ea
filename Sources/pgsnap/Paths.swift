#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint

/// A checkpoint named on the command line: a path, or `-` for the standard
/// stream (stdin when read, stdout when written). The one place where `-`
/// is understood.
struct CheckpointArgument: ExpressibleByArgument, CustomStringConvertible {
    /// The argument as given.
    let argument: String

    init?(argument: String) {
        guard !argument.isEmpty else { return nil }
        self.argument = argument
    }

    /// Whether it is `-`.
    var isStandardStream: Bool { argument == "-" }

    /// The path, unless it is `-`.
    var path: String? { isStandardStream ? nil : argument }

    /// Where to read the checkpoint from.
    var source: CheckpointLocation { isStandardStream ? .standardInput : .path(argument) }

    /// Where to write the checkpoint to.
    var destination: CheckpointLocation { isStandardStream ? .standardOutput : .path(argument) }

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
