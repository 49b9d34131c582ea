#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// Checkpoints of memory this process did not allocate: a raw memory image
/// (a sparse regular file) or another process's memfd (`/proc/PID/fd/N`).
///
/// Saving makes the source's data extents, rounded out to whole pages,
/// allocated segments of one kind with one reference; its holes stay holes;
/// pages found all zero are not stored. The source is read with `pread`
/// and never changed. Restoring writes a sparse image of the source's exact
/// length, with holes wherever nothing was stored.
public enum RawImage {
    /// Saves the image at `source` to a checkpoint at `path`, atomically.
    public static func save(
        source: String, kind: MemoryKind = .anonymous, to path: String, options: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        let options = try options.validated()
        let input = try OwnedFileDescriptor.open(source, flags: O_RDONLY)
        let output = try CheckpointOutput(atomicPath: path)
        do {
            let report = try CheckpointWriter(
                source: RawMemorySource(descriptor: input.rawValue, name: source, kind: kind), options: options
            ).write(to: output)
            try output.finish()
            return report
        } catch {
            output.abandon()
            throw error
        }
    }

    /// Saves the image at `source` to a checkpoint written in order to
    /// `descriptor` (a pipe, stdout), which stays the caller's.
    public static func save(
        source: String, kind: MemoryKind = .anonymous, toDescriptor descriptor: Int32, options: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        let options = try options.validated()
        let input = try OwnedFileDescriptor.open(source, flags: O_RDONLY)
        let output = CheckpointOutput(descriptor: descriptor, name: "descriptor \(descriptor)")
        let report = try CheckpointWriter(
            source: RawMemorySource(descriptor: input.rawValue, name: source, kind: kind), options: options
        ).write(to: output)
        try output.finish()
        return report
    }

    /// Restores the checkpoint at `checkpoint` to a sparse image at `image`,
    /// atomically: the image holds exactly the stored pages, with holes
    /// elsewhere, and is `dataSize` bytes long.
    public static func restore(
        from checkpoint: String, toImage image: String, threads: Int = defaultThreadCount(),
        progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    ) throws -> CheckpointMetadata {
        try restore(CheckpointInput(path: checkpoint), toImage: image, threads: threads, progress: progress)
    }

    /// As `restore(from:toImage:...)`, reading the checkpoint from
    /// `descriptor` (a pipe, stdin), which stays the caller's.
    public static func restore(
        fromDescriptor descriptor: Int32, toImage image: String, threads: Int = defaultThreadCount(),
        progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    ) throws -> CheckpointMetadata {
        try restore(
            CheckpointInput(descriptor: descriptor, name: "descriptor \(descriptor)"), toImage: image, threads: threads,
            progress: progress)
    }

    private static func restore(
        _ input: CheckpointInput, toImage image: String, threads: Int, progress: (@Sendable (CheckpointProgress) -> Void)?
    ) throws -> CheckpointMetadata {
        try checkThreadCount(threads)
        let sink = ImageSink(path: image)
        var scanner = CheckpointScanner(input: input)
        scanner.threads = threads
        scanner.progress = progress
        do {
            let metadata = try scanner.scan(.decompress(sink))
            try sink.finish()
            return metadata
        } catch {
            sink.abandon()
            throw error
        }
    }

    /// Writes restored frames into a new image file, placed at its path
    /// atomically once complete.
    final class ImageSink: FrameSink, @unchecked Sendable {
        private let path: String
        private var file: AtomicFile?
        private var dataSize: UInt64 = 0

        init(path: String) {
            self.path = path
        }

        func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
            let p = path
            let f = try AtomicFile(path: p, mode: 0o600)
            file = f
            dataSize = header.dataSize
            _ = try retryingInterrupts("ftruncate \(p)") { ftruncate(f.fd, off_t(Int64(bitPattern: header.dataSize))) }
        }

        func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
            let fd = file!.fd
            var off = 0
            for run in frame.runs {
                // The last page of an image may reach past its end.
                let end = min(run.end, dataSize)
                let length = end > run.start ? Int(end - run.start) : 0
                var done = 0
                while done < length {
                    let n = try retryingInterrupts("pwrite \(file!.path)") {
                        pwrite(fd, data.baseAddress! + off + done, length - done, off_t(Int64(bitPattern: run.start) + Int64(done)))
                    }
                    done += n
                }
                off += Int(run.length)
            }
        }

        func finish() throws {
            try file?.commit()
        }

        func abandon() {
            file?.abandon()
        }
    }
}
