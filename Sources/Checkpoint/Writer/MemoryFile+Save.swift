import PGAlloc

extension MemoryFile {
    /// Saves the file to a checkpoint at `location`: a path is written
    /// atomically (it holds either its old contents or the whole new
    /// checkpoint, never a part); a descriptor (a pipe, stdout, an open
    /// file), which stays the caller's, is written in order, never seeking.
    ///
    /// The caller must keep other threads from changing the file while it
    /// is saved (as gVisor pauses the sandbox): save waits until reclaim is
    /// idle, refuses pending evictions, and learns which pages are committed
    /// (as `updateUsage` does). It commits nothing, and gives the committed
    /// pages it finds all zero back to the host unless
    /// `SaveOptions.decommitZeroPages` is off.
    ///
    /// - Throws: `MemoryFileError.evictionsPending` (call
    ///   `startEvictions()` and `waitForEvictions()` first);
    ///   `CheckpointUsageError` for bad options; `HostError` for failed
    ///   reads, writes or syscalls (`ENOSPC` included); `ZstdError`.
    public func save(to location: CheckpointLocation, options: SaveOptions = SaveOptions()) throws -> SaveReport {
        try CheckpointWriter.save(MemoryFileSource(self), to: location, options: options)
    }
}

extension CheckpointWriter {
    /// Writes a checkpoint of `source` to `location`, referencing `parent`'s
    /// pages if given; on failure, a path keeps what it had.
    static func save(
        _ source: SaveSource, to location: CheckpointLocation, parent: ParentPages? = nil, options: SaveOptions
    ) throws -> SaveReport {
        let options = try options.validated()
        let output = try CheckpointOutput.open(location)
        do {
            let writer = try CheckpointWriter(source: source, options: options, parent: parent)
            let report = try writer.write(to: output)
            try output.finish()
            return report
        } catch {
            output.abandon()
            throw error
        }
    }
}
