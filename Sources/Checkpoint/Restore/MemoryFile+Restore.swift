import PGAlloc

extension MemoryFile {
    /// Restores a checkpoint into a new MemoryFile with a memfd of its own.
    /// Only the stored pages are written, so the new file commits exactly
    /// the pages that held data when saved; they are known committed and
    /// accounted to their segments' kinds. Segments without references go
    /// to the reclaimer.
    ///
    /// The checkpoint is checked before memory is created: header, sections
    /// and segment table and, from a file, trailer and index; each frame is
    /// checked before its pages are written; from a stream, the end of the
    /// input last. On any error the new MemoryFile is destroyed: nothing
    /// half-restored is returned.
    ///
    /// - Throws: `CheckpointError` for a bad checkpoint (naming the
    ///   section, the offset, what was expected and found); `HostError`
    ///   for failed reads or memory; `CheckpointUsageError`.
    public static func restore(from location: CheckpointLocation, options: RestoreOptions = RestoreOptions()) throws -> MemoryFile {
        try restoreWithMetadata(from: location, options: options).file
    }

    /// As `restore(from:options:)`, also returning what the checkpoint says
    /// about itself (its header, segments, totals).
    public static func restoreWithMetadata(
        from location: CheckpointLocation, options: RestoreOptions = RestoreOptions()
    ) throws -> (file: MemoryFile, metadata: CheckpointMetadata) {
        if case .lazy(let lazy) = options.mode {
            return try restoreLazily(from: location, options: options, lazy: lazy)
        }
        let sink = MemoryFileSink(options: options.memoryFile, userfaultfd: options.writeWithUserfaultfd)
        let scanner = try CheckpointScanner.opening(location, options: options)
        let metadata: CheckpointMetadata
        do {
            metadata = try scanner.restore(into: sink, location: location, options: options)
        } catch {
            sink.abandon()
            throw error
        }
        sink.finish()
        return (sink.file!, metadata)
    }
}
