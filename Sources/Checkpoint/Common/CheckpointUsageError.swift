/// A save or restore asked for something impossible: bad options, a source
/// that cannot be saved, a destination that cannot take a checkpoint.
public struct CheckpointUsageError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
