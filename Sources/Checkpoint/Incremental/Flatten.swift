import PGAlloc

extension MemoryFile {
    /// Writes the memory of the chain ending at `location` as one
    /// self-contained checkpoint at `output`: the chain is restored (into a
    /// MemoryFile of its own, destroyed afterwards, so the whole memory is
    /// held once while this runs) and saved without a parent. The
    /// annotations are the child's unless `saveOptions` gives some. Every
    /// link is read with `restoreOptions.keys`; the output is signed and
    /// encrypted as `saveOptions` says.
    ///
    /// - Throws: as `restore(from:options:)` and `save(to:options:)`;
    ///   `CheckpointUsageError` if the checkpoint is encrypted and
    ///   `saveOptions` has no recipients (an encrypted chain is never
    ///   written in clear).
    public static func flatten(
        _ location: CheckpointLocation, to output: CheckpointLocation, restoreOptions: RestoreOptions = RestoreOptions(),
        saveOptions: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        var restore = restoreOptions
        restore.mode = .eager
        let (file, metadata) = try restoreWithMetadata(from: location, options: restore)
        defer { file.destroy() }
        if metadata.security.isEncrypted && saveOptions.recipients.isEmpty {
            throw CheckpointUsageError("\(location) is encrypted: give the flattened checkpoint recipients, it is not written in clear")
        }
        var save = saveOptions
        if save.annotations.isEmpty {
            save.annotations = metadata.annotations
        }
        // The chain's own data size: a raw image's exact length survives.
        return try CheckpointWriter.save(MemoryFileSource(file, dataSize: metadata.header.dataSize), to: output, options: save)
    }
}
