#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

extension MemoryFile {
    /// A lazy restore: reads and checks everything but the frames' payloads
    /// (header, sections, segment table, every frame header, index,
    /// trailer), creates the file with its usage set and accounting as a
    /// full restore leaves them, and starts the loader and, where it can,
    /// the fault handler.
    static func restoreLazily(
        from location: CheckpointLocation, options: RestoreOptions, lazy: LazyRestoreOptions
    ) throws -> (file: MemoryFile, metadata: CheckpointMetadata) {
        let opened = try OpenedInput.open(location)
        guard case .random(let input) = opened else {
            throw LazyRestoreError.needsRandomAccess(opened.name)
        }
        let uffd: Int32?
        switch lazy.simulateNoUserfaultfd ? .failure(.userfaultfdUnavailable("simulated by a test")) : FaultHandler.openUserfaultfd() {
        case .success(let fd):
            uffd = fd
        case .failure(let error):
            switch lazy.withoutUserfaultfd {
            case .fail:
                throw error
            case .loadEagerly:
                var eager = options
                eager.mode = .eager
                return try restoreWithMetadata(from: location, options: eager)
            case .apiOnly:
                uffd = nil
            }
        }
        var scanner = CheckpointScanner(input: SequentialReader(opened, bufferSize: 16 << 10))
        scanner.memoryLimit = options.memoryLimit
        scanner.collectFrames = true
        let metadata: CheckpointMetadata
        let file: MemoryFile
        do {
            metadata = try scanner.scan(.skip)
            file = try MemoryFile(options: options.memoryFile)
        } catch {
            if let uffd { close(uffd) }
            throw error
        }
        // The fault handler owns the userfaultfd once the loader starts.
        var uffdGiven = false
        do {
            var stored: [FileRange] = []
            for frame in metadata.frames {
                for run in frame.runs {
                    append(run, to: &stored)
                }
            }
            try file.installRestoredLayout(fileSize: metadata.header.fileSize, segments: metadata.segments, committed: stored)
            let loader = try LazyLoader(
                input: input, metadata: metadata, target: MemfdTarget(fd: FileDescriptor(rawValue: file.fileDescriptor)),
                options: lazy,
                onAccess: { [weak file] in file?.recordAccess($0) },
                onFinish: { [weak file] loader, failed in
                    // Without failures the file forgets the loader; with
                    // some, it keeps it, so that access to them keeps
                    // failing.
                    if failed == 0 {
                        file?.detachPendingContents(loader)
                    }
                })
            file.attachPendingContents(loader)
            uffdGiven = true
            try loader.start(faults: uffd.map { try FaultHandler(file: file, uffd: $0, classify: loader.faultClassifier) })
        } catch {
            if let uffd, !uffdGiven { close(uffd) }
            file.destroy()
            throw error
        }
        return (file, metadata)
    }
}
