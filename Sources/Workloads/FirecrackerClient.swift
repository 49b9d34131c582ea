#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// A VMM's side of Firecracker's userfaultfd handler protocol, done as
/// Firecracker does it when it loads a snapshot with a Uffd memory backend
/// (`src/vmm/src/persist.rs`): guest memory as private anonymous regions, a
/// userfaultfd asking for removal events, every region registered in
/// missing mode, then one connection to the handler's socket and one
/// message carrying the JSON list of regions and the userfaultfd. Tests and
/// benchmarks use it to play the VMM against `pgsnap serve-uffd`.
public final class FirecrackerClient: @unchecked Sendable {
    /// A guest memory region: where it is mapped, its size, its place in
    /// the memory file.
    public struct Region: @unchecked Sendable {
        public let base: UnsafeMutableRawPointer
        public let size: Int
        public let offset: UInt64
    }

    public let regions: [Region]
    private let uffd: Int32
    private var socket: Int32 = -1

    /// Maps regions of `sizes` bytes (laid end to end in the memory file)
    /// and registers them on a new userfaultfd.
    public init(regionSizes sizes: [Int]) throws {
        var regions: [Region] = []
        var offset: UInt64 = 0
        for size in sizes {
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let p, p != MAP_FAILED else {
                throw HostError.last("mmap \(size) bytes")
            }
            regions.append(Region(base: p, size: size, offset: offset))
            offset += UInt64(size)
        }
        self.regions = regions
        uffd = pg_uffd_open(O_CLOEXEC | O_NONBLOCK)
        guard uffd >= 0 else {
            throw HostError.last("userfaultfd")
        }
        guard pg_uffd_api(uffd, pg_UFFD_FEATURE_EVENT_REMOVE, nil, nil) == 0 else {
            throw HostError.last("ioctl(UFFDIO_API)")
        }
        for r in regions {
            guard pg_uffd_register(uffd, UInt64(UInt(bitPattern: r.base)), UInt64(r.size), pg_UFFDIO_REGISTER_MODE_MISSING, nil) == 0 else {
                throw HostError.last("ioctl(UFFDIO_REGISTER)")
            }
        }
    }

    deinit {
        if socket >= 0 {
            close(socket)
        }
        close(uffd)
        for r in regions {
            munmap(r.base, r.size)
        }
    }

    /// The JSON Firecracker sends: its fields, in its order, on one line.
    public var handshake: String {
        "[" + regions.map { r in
            "{\"base_host_virt_addr\":\(UInt(bitPattern: r.base)),\"size\":\(r.size),\"offset\":\(r.offset),\"page_size\":4096,\"page_size_kib\":4096}"
        }.joined(separator: ",") + "]"
    }

    /// Connects to the handler listening on `path` and sends the regions
    /// and the userfaultfd in one message. The socket stays open, as
    /// Firecracker (1.11 and later) keeps it.
    public func connect(to path: String) throws {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HostError.last("socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let e = HostError.last("connect \(path)")
            close(fd)
            throw e
        }
        socket = fd
        let message = Array(handshake.utf8)
        guard message.withUnsafeBytes({ pg_send_with_fd(fd, $0.baseAddress, $0.count, uffd) }) == message.count else {
            throw HostError.last("sendmsg")
        }
    }

    /// The address of byte `offset` of the memory file.
    public func pointer(ofOffset offset: UInt64) -> UnsafeMutableRawPointer? {
        for r in regions where offset >= r.offset && offset < r.offset + UInt64(r.size) {
            return r.base + Int(offset - r.offset)
        }
        return nil
    }
}
