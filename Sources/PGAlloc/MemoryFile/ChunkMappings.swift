#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import Synchronization

/// The file is mapped into the process in 1 GiB chunks, lazily, once per
/// chunk; a chunk stays mapped until the file is destroyed.
let chunkShift: UInt64 = 30
let chunkSize: UInt64 = 1 << chunkShift
let chunkMask: UInt64 = chunkSize - 1

/// Where each chunk of the file is mapped.
///
/// Two levels, so that memory follows the chunks mapped rather than the
/// file's size (a sparse file may claim exabytes): a directory, published
/// through an atomic pointer, of blocks of `blockChunks` addresses, each
/// allocated when one of its chunks is first mapped.
///
/// Reading is lock-free: the directory pointer, its entries and the
/// addresses are read atomically. Growing the directory, adding a block or
/// mapping a chunk takes the mutex (the seed's `mappingsMu`, ordered after
/// the MemoryFile's state lock). Replaced directories are retired, not
/// freed, because a reader may still hold one; everything is freed with the
/// table.
final class ChunkMappings: @unchecked Sendable {
    /// Chunks per block: 16 TiB of file.
    static let blockChunks = 1 << 14

    /// A directory is `[chunk count, block 0, block 1, ...]`; a block is
    /// `blockChunks` addresses, 0 where unmapped.
    private let directory = Atomic<UInt>(0)
    private let lock = StateLock<Owned>(Owned())

    private struct Owned {
        var directories: [UnsafeMutablePointer<UInt>] = []
        var blocks: [UnsafeMutablePointer<UInt>] = []
    }

    init() {
        let d = ChunkMappings.makeDirectory(chunks: 0, from: nil)
        lock.withLock { $0.directories.append(d) }
        directory.store(UInt(bitPattern: d), ordering: .releasing)
    }

    deinit {
        lock.withLock { owned in
            owned.directories.forEach { $0.deallocate() }
            owned.blocks.forEach { $0.deallocate() }
        }
    }

    private static func blockCount(chunks: Int) -> Int {
        (chunks + blockChunks - 1) / blockChunks
    }

    private static func makeDirectory(chunks: Int, from old: UnsafeMutablePointer<UInt>?) -> UnsafeMutablePointer<UInt> {
        let n = blockCount(chunks: chunks)
        let d = UnsafeMutablePointer<UInt>.allocate(capacity: n + 1)
        d.initialize(repeating: 0, count: n + 1)
        d[0] = UInt(chunks)
        if let old {
            let oldBlocks = blockCount(chunks: Int(old[0]))
            for i in 0..<min(oldBlocks, n) {
                d[1 + i] = pg_atomic_load_uintptr(old + 1 + i)
            }
        }
        return d
    }

    @inline(__always)
    private func loadDirectory() -> UnsafeMutablePointer<UInt> {
        UnsafeMutablePointer(bitPattern: directory.load(ordering: .acquiring))!
    }

    /// Makes room for `chunks` chunks, keeping existing mappings.
    func grow(to chunks: Int) {
        lock.withLock { owned in
            let old = loadDirectory()
            guard chunks > Int(old[0]) else { return }
            let new = ChunkMappings.makeDirectory(chunks: chunks, from: old)
            owned.directories.append(new)
            directory.store(UInt(bitPattern: new), ordering: .releasing)
        }
    }

    /// The address of chunk `chunk`, mapping it from `fd` first if needed.
    ///
    /// - Precondition: `chunk` is below the number of chunks the table
    ///   covers (see `grow(to:)`).
    @inline(__always)
    func address(ofChunk chunk: Int, fd: Int32) throws(HostError) -> UnsafeMutableRawPointer {
        let d = loadDirectory()
        precondition(chunk >= 0 && chunk < Int(d[0]), "MemoryFile: chunk \(chunk) is beyond the file (\(d[0]) chunks)")
        let block = pg_atomic_load_uintptr(d + 1 + chunk / ChunkMappings.blockChunks)
        if block != 0 {
            let m = pg_atomic_load_uintptr(UnsafeMutablePointer<UInt>(bitPattern: block)! + chunk % ChunkMappings.blockChunks)
            if m != 0 {
                return UnsafeMutableRawPointer(bitPattern: m)!
            }
        }
        return try mapChunk(chunk, fd: fd)
    }

    private func mapChunk(_ chunk: Int, fd: Int32) throws(HostError) -> UnsafeMutableRawPointer {
        try lock.withLock { (owned: inout Owned) throws(HostError) -> UnsafeMutableRawPointer in
            // The directory may have been replaced, or the chunk mapped,
            // since the lock-free read.
            let d = loadDirectory()
            let slot = d + 1 + chunk / ChunkMappings.blockChunks
            var block = pg_atomic_load_uintptr(slot)
            if block == 0 {
                let b = UnsafeMutablePointer<UInt>.allocate(capacity: ChunkMappings.blockChunks)
                b.initialize(repeating: 0, count: ChunkMappings.blockChunks)
                owned.blocks.append(b)
                block = UInt(bitPattern: b)
                pg_atomic_store_uintptr(slot, block)
            }
            let entry = UnsafeMutablePointer<UInt>(bitPattern: block)! + chunk % ChunkMappings.blockChunks
            let m = pg_atomic_load_uintptr(entry)
            if m != 0 {
                return UnsafeMutableRawPointer(bitPattern: m)!
            }
            let p = try HostMapping.mapShared(
                fd: fd, offset: UInt64(chunk) << chunkShift, length: Int(chunkSize),
                protection: PROT_READ | PROT_WRITE)
            pg_atomic_store_uintptr(entry, UInt(bitPattern: p))
            return p
        }
    }

    /// Unmaps every chunk and empties the table; returns the failures.
    func unmapAll() -> [HostError] {
        var failures: [HostError] = []
        lock.withLock { owned in
            let d = loadDirectory()
            for b in 0..<ChunkMappings.blockCount(chunks: Int(d[0])) {
                guard let block = UnsafeMutablePointer<UInt>(bitPattern: pg_atomic_load_uintptr(d + 1 + b)) else { continue }
                for i in 0..<ChunkMappings.blockChunks {
                    let m = pg_atomic_load_uintptr(block + i)
                    guard m != 0 else { continue }
                    do throws(HostError) {
                        try HostMapping.unmap(UnsafeMutableRawPointer(bitPattern: m)!, length: Int(chunkSize))
                    } catch {
                        failures.append(error)
                    }
                    pg_atomic_store_uintptr(block + i, 0)
                }
            }
            let empty = ChunkMappings.makeDirectory(chunks: 0, from: nil)
            owned.directories.append(empty)
            directory.store(UInt(bitPattern: empty), ordering: .releasing)
        }
        return failures
    }
}
