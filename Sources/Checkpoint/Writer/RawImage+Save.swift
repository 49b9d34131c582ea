#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

extension RawImage {
    /// Saves the image at `source` (a raw image file, or a memfd of another
    /// process through `/proc/PID/fd/N`) to a checkpoint at `location`: a
    /// path atomically, a descriptor in order.
    ///
    /// - Throws: `CheckpointUsageError` if `source` is not a regular file
    ///   or memfd (a FIFO is refused without waiting for a writer);
    ///   `HostError`; `ZstdError`.
    public static func save(
        source: String, kind: MemoryKind = .anonymous, to location: CheckpointLocation, options: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        // O_NONBLOCK: opening a FIFO must not wait for a writer before its
        // type is known; reads of a regular file ignore it.
        let input = try OwnedFileDescriptor.open(source, flags: O_RDONLY | O_NONBLOCK)
        return try CheckpointWriter.save(
            RawMemorySource(descriptor: input.descriptor, name: source, kind: kind), to: location, options: options)
    }
}
