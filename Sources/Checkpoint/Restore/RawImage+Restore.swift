extension RawImage {
    /// Restores a checkpoint to a sparse image at `image`, atomically: the
    /// image holds exactly the stored pages, with holes elsewhere, and is
    /// `dataSize` bytes long.
    public static func restore(
        from location: CheckpointLocation, toImage image: String, options: RestoreOptions = RestoreOptions()
    ) throws -> CheckpointMetadata {
        let sink = ImageSink(path: image)
        let scanner = try CheckpointScanner.opening(location, options: options)
        do {
            let metadata = try scanner.restore(into: sink, location: location, options: options)
            try sink.finish()
            return metadata
        } catch {
            sink.abandon()
            throw error
        }
    }
}
