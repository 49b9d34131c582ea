#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import FoundationEssentials
import PGAlloc

/// Serves a VMM's guest memory from a checkpoint, through Firecracker's
/// userfaultfd handler protocol: the VMM maps its guest memory (private
/// anonymous regions), registers it on a userfaultfd in missing mode,
/// connects to a Unix socket this server listens on, and sends, in one
/// message, the JSON list of its regions and the userfaultfd. From then on
/// every fault on the guest memory is served from the compressed
/// checkpoint: the frame holding the page is loaded first (decompressed and
/// copied in with UFFDIO_COPY, the whole frame at once); pages never stored
/// get a zero page; every other frame is loaded in the background, in the
/// checkpoint's prefetch order when it has one. A range the VMM removes
/// (`madvise(MADV_DONTNEED)`, a balloon inflating) reads as zero afterwards
/// and is not loaded again.
///
/// The checkpoint holds the VMM's memory file (the regions laid end to end:
/// a region's `offset` is its place in the file), saved with `pgsnap save`
/// or `RawImage.save`.
public final class UffdServer {
    /// A region of guest memory, as the VMM describes it.
    public struct Region: Hashable, Sendable, Decodable {
        /// Where the region is mapped in the VMM.
        public var base: UInt64
        public var size: UInt64
        /// Its place in the memory file (the checkpoint's addresses).
        public var offset: UInt64
        /// Bytes per page: 4096 (huge pages are not served).
        public var pageSize: UInt64

        public init(base: UInt64, size: UInt64, offset: UInt64, pageSize: UInt64) {
            self.base = base
            self.size = size
            self.offset = offset
            self.pageSize = pageSize
        }

        enum CodingKeys: String, CodingKey {
            case base = "base_host_virt_addr"
            case size, offset
            case pageSize = "page_size"
            case pageSizeKib = "page_size_kib"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            base = try c.decode(UInt64.self, forKey: .base)
            size = try c.decode(UInt64.self, forKey: .size)
            offset = try c.decode(UInt64.self, forKey: .offset)
            // `page_size` since Firecracker 1.11; before, `page_size_kib`,
            // which despite its name is in bytes too; before 1.7, neither.
            pageSize = try c.decodeIfPresent(UInt64.self, forKey: .pageSize)
                ?? c.decodeIfPresent(UInt64.self, forKey: .pageSizeKib) ?? 4096
        }
    }

    /// What a served session did.
    public struct Statistics: Sendable, Hashable {
        public var regions: Int
        public var framesLoaded: Int
        public var bytesLoaded: UInt64
        public var framesFailed: Int
        /// Seconds from the handshake to the first frame written.
        public var firstFrameSeconds: Double?
    }

    /// A protocol or setup failure, in one line.
    public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    private let location: CheckpointLocation
    private let options: RestoreOptions
    private let lazy: LazyRestoreOptions

    /// A server of the checkpoint at `location` (a file: frames are read
    /// out of order). `lazy` sets the loader threads and the failure
    /// callback.
    public init(checkpoint location: CheckpointLocation, options: RestoreOptions = RestoreOptions(), lazy: LazyRestoreOptions = LazyRestoreOptions()) {
        self.location = location
        self.options = options
        self.lazy = lazy
    }

    /// Listens on `socketPath` (a Unix stream socket, created; an existing
    /// socket there is replaced), accepts one VMM, serves its memory until
    /// it exits, and returns what was done. `ready` is called once the
    /// socket listens.
    public func serve(socketPath: String, ready: () -> Void = {}) throws -> Statistics {
        // Check the checkpoint before the VMM comes: a bad one fails now.
        let source = try LazySource.open(location, options: options)
        let listener = try listen(at: socketPath)
        defer {
            close(listener)
            unlink(socketPath)
        }
        ready()
        let connection = try retryingInterrupts("accept \(socketPath)") { accept(listener, nil, nil) }
        defer { close(connection) }
        let (regions, uffd) = try receiveHandshake(connection)
        return try serve(source, regions: regions, uffd: uffd, connection: connection)
    }

    private func listen(at path: String) throws -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw CheckpointUsageError("\(path) exists and is not a socket: give --socket a new path")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            throw HostError.last("socket")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw CheckpointUsageError("socket path \(path) is longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if bound != 0 || Glibc.listen(fd, 1) != 0 {
            let e = HostError.last(bound != 0 ? "bind \(path)" : "listen \(path)")
            close(fd)
            throw e
        }
        return fd
    }

    /// Reads the VMM's one message: the JSON of its regions, and the
    /// userfaultfd (SCM_RIGHTS). The JSON may come in pieces; it ends when
    /// it parses.
    private func receiveHandshake(_ connection: Int32) throws -> ([Region], Int32) {
        var json: [UInt8] = []
        var uffd: Int32 = -1
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var received: Int32 = -1
            let n = buffer.withUnsafeMutableBytes { pg_recv_with_fd(connection, $0.baseAddress, $0.count, &received) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HostError.last("recvmsg")
            }
            if received >= 0 {
                if uffd >= 0 { close(received) } else { uffd = received }
            }
            json += buffer[0..<n]
            if json.count > 1 << 20 {
                if uffd >= 0 { close(uffd) }
                throw ProtocolError("the VMM's regions take more than 1 MiB of JSON")
            }
            if let regions = try? JSONDecoder().decode([Region].self, from: Data(json)) {
                guard uffd >= 0 else {
                    throw ProtocolError("the VMM sent its regions without a userfaultfd (SCM_RIGHTS)")
                }
                return (regions, uffd)
            }
            if n == 0 {
                if uffd >= 0 { close(uffd) }
                throw ProtocolError(json.isEmpty ? "the VMM closed the socket without a message"
                    : "the VMM's message is not a JSON list of regions: \(String(decoding: json.prefix(200), as: UTF8.self))")
            }
        }
    }

    /// Checks the regions against the checkpoint: 4 KiB pages, disjoint,
    /// inside the memory file, and holding every stored page.
    static func check(_ regions: [Region], metadata: CheckpointMetadata) throws {
        guard !regions.isEmpty else {
            throw ProtocolError("the VMM sent no memory region")
        }
        for r in regions {
            guard r.pageSize == 4096 else {
                throw ProtocolError("region at \(hex(r.base)): page size \(r.pageSize); only 4 KiB pages are served (not huge pages)")
            }
            guard r.size > 0, r.size % 4096 == 0, r.offset % 4096 == 0, r.base % 4096 == 0,
                r.offset <= metadata.header.dataEnd, r.size <= metadata.header.dataEnd - r.offset
            else {
                throw ProtocolError(
                    "region at \(hex(r.base)) (offset \(r.offset), \(r.size) bytes) does not fit the checkpoint's \(metadata.header.dataSize)-byte memory")
            }
        }
        let sorted = regions.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.size > b.offset {
            throw ProtocolError("regions at offsets \(a.offset) and \(b.offset) overlap in the memory file")
        }
        // Every frame lies inside the regions (its span, from the index: its
        // runs are read only when it loads), and every referenced page.
        let spans = metadata.index.map { (FileRange(start: $0.firstAddress, end: $0.endAddress), "frame at \(hex($0.offset))") }
            + metadata.references.map { ($0.destination, "referenced") }
        for (span, what) in spans {
            var at = span.start
            while at < span.end {
                guard let r = sorted.first(where: { at >= $0.offset && at < $0.offset + $0.size }) else {
                    throw ProtocolError(
                        "stored pages at \(hex(at)) (\(what)) lie outside every region: the checkpoint is not this VMM's memory")
                }
                at = r.offset + r.size
            }
        }
    }

    private func serve(_ source: LazySource, regions: [Region], uffd: Int32, connection: Int32) throws -> Statistics {
        let metadata = source.metadata
        do {
            try Self.check(regions, metadata: metadata)
        } catch {
            close(uffd)
            throw error
        }
        let ended = Ended()
        var loaderReference: LazyLoader?
        let started = ContinuousClock.now
        let firstFrame = StateLock<Double?>(nil)
        var hooks = LazyLoader.Hooks()
        hooks.faultsEndWithLoading = false
        let loader: LazyLoader
        do {
            loader = try source.loader(target: Unplugged(), options: lazy, hooks: hooks)
        } catch {
            close(uffd)
            throw error
        }
        loaderReference = loader
        let faults = try FaultHandler(
            uffd: uffd, mappings: regions.map { (base: $0.base, offset: $0.offset, length: $0.size) }, ownsRegistration: false,
            classify: loader.faultClassifier,
            removed: { [weak loader] range in _ = loader?.drop(range) },
            ended: { ended.signal() })
        loader.retarget(CountingTarget(faults) {
            let elapsed = started.duration(to: .now).components
            firstFrame.withLock { t in
                if t == nil { t = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18 }
            }
        })
        try loader.start(faults: faults)
        // Until the VMM is gone: its userfaultfd's memory released, or the
        // socket closed with the process gone (Firecracker before 1.11
        // closes the socket at once; later ones keep it open until they
        // exit).
        let peer = peerProcess(connection)
        var socketOpen = true
        while !ended.wait(milliseconds: 200) {
            if socketOpen {
                var byte: UInt8 = 0
                let n = recv(connection, &byte, 1, Int32(MSG_DONTWAIT))
                if n == 0 {
                    socketOpen = false
                }
            }
            if !socketOpen, let peer, kill(peer, 0) != 0, errno == ESRCH {
                break
            }
        }
        loader.cancel()
        let progress = loader.progress
        _ = loaderReference
        return Statistics(
            regions: regions.count, framesLoaded: progress.framesDone, bytesLoaded: progress.bytesLoaded,
            framesFailed: progress.framesFailed, firstFrameSeconds: firstFrame.withLock { $0 })
    }

    /// The process on the other end of a Unix socket (SO_PEERCRED).
    private func peerProcess(_ connection: Int32) -> pid_t? {
        let pid = pg_peer_pid(connection)
        return pid > 0 ? pid : nil
    }
}

/// Set once, waited for with a timeout.
private final class Ended: @unchecked Sendable {
    private let lock = StateLock<Bool>(false)
    private let condition: StateLock<Bool>.Condition

    init() {
        condition = lock.makeCondition()
    }

    func signal() {
        lock.withLock { $0 = true }
        lock.broadcast(condition)
    }

    /// Whether it was set, waiting at most `milliseconds`.
    func wait(milliseconds: UInt64) -> Bool {
        lock.withLock(waitingOn: condition, timeoutNanoseconds: milliseconds * 1_000_000) { ended in
            ended ? .done(true) : .wait
        } ?? false
    }
}

/// A target for the moment between creating a loader and its fault handler.
private final class Unplugged: LoadTarget, @unchecked Sendable {
    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        preconditionFailure("UffdServer: a frame written before the fault handler was set")
    }
}

/// Passes writes to another target, noting the first.
private final class CountingTarget: LoadTarget, @unchecked Sendable {
    let target: LoadTarget
    let first: @Sendable () -> Void

    init(_ target: LoadTarget, first: @escaping @Sendable () -> Void) {
        self.target = target
        self.first = first
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        try target.write(bytes, at: address)
        first()
    }
}
