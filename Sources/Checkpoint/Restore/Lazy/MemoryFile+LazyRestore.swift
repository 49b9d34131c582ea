#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

extension MemoryFile {
    /// A lazy restore: reads and checks everything but the frames (header,
    /// sections, segment table, index, trailer), creates the file with its
    /// usage set and its accounting (the stored pages accounted in
    /// advance, known committed as they load), and starts the loader and,
    /// where it can, the fault handler. What it reads does not grow with
    /// the data: the frames' headers are read as the frames are needed.
    static func restoreLazily(
        from location: CheckpointLocation, options: RestoreOptions, lazy: LazyRestoreOptions
    ) throws -> (file: MemoryFile, metadata: CheckpointMetadata) {
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
        let source: LazySource
        let file: MemoryFile
        do {
            source = try LazySource.open(location, options: options)
            file = try MemoryFile(options: options.memoryFile)
        } catch {
            if let uffd { close(uffd) }
            throw error
        }
        let metadata = source.metadata
        // The fault handler owns the userfaultfd once the loader starts.
        var uffdGiven = false
        do {
            try file.installRestoredLayout(
                fileSize: metadata.header.fileSize, segments: metadata.segments, accountedInAdvance: source.dataPerKind)
            var hooks = LazyLoader.Hooks()
            hooks.access = { [weak file] in file?.recordAccess($0) }
            hooks.markLoaded = { [weak file] wanted in file?.markPendingLoaded(wanted) ?? wanted() }
            hooks.lost = { [weak file] in file?.releasePendingAccounting($0) }
            hooks.finished = { [weak file] loader, failed in
                guard let file else { return }
                // A checkpoint whose per-kind totals disagreed with its
                // frames leaves accounting in advance: given back.
                _ = file.settlePendingAccounting()
                // Without failures the file forgets the loader; with some,
                // it keeps it, so that access to them keeps failing.
                if failed == 0 {
                    file.detachPendingContents(loader)
                }
            }
            let loader = try source.loader(
                target: MemfdTarget(fd: FileDescriptor(rawValue: file.fileDescriptor)), options: lazy, hooks: hooks)
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
