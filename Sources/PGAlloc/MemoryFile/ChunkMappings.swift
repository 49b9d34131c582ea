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
/// Reading is lock-free: the table of addresses is published with an
/// atomic pointer, and each entry is read and written atomically. Growing
/// the table or filling an entry takes the mutex (the seed's `mappingsMu`,
/// ordered after the MemoryFile's state lock). Old tables are retired, not
/// freed, because a reader may still hold one; they are freed with the
/// mappings.
final class ChunkMappings: @unchecked Sendable {
    /// A table is `[count, address of chunk 0, address of chunk 1, ...]`.
    private let current = Atomic<UInt>(0)
    private let lock = StateLock<[UnsafeMutablePointer<UInt>]>([])

    init() {
        let table = ChunkMappings.makeTable(chunks: 0)
        lock.withLock { $0.append(table) }
        current.store(UInt(bitPattern: table), ordering: .releasing)
    }

    deinit {
        lock.withLock { tables in
            for t in tables {
                t.deallocate()
            }
        }
    }

    private static func makeTable(chunks: Int) -> UnsafeMutablePointer<UInt> {
        let t = UnsafeMutablePointer<UInt>.allocate(capacity: chunks + 1)
        t.initialize(repeating: 0, count: chunks + 1)
        t[0] = UInt(chunks)
        return t
    }

    @inline(__always)
    private func loadTable() -> UnsafeMutablePointer<UInt> {
        UnsafeMutablePointer(bitPattern: current.load(ordering: .acquiring))!
    }

    /// The number of chunks the table covers.
    var chunkCount: Int {
        Int(loadTable()[0])
    }

    /// Makes room for `chunks` chunks, keeping existing mappings.
    func grow(to chunks: Int) {
        lock.withLock { tables in
            let old = loadTable()
            let oldCount = Int(old[0])
            guard chunks > oldCount else { return }
            let new = ChunkMappings.makeTable(chunks: chunks)
            var i = 1
            while i <= oldCount {
                new[i] = pg_atomic_load_uintptr(old + i)
                i += 1
            }
            tables.append(new)
            current.store(UInt(bitPattern: new), ordering: .releasing)
        }
    }

    /// The address of chunk `chunk`, mapping it from `fd` first if needed.
    ///
    /// - Precondition: `chunk` is below `chunkCount`.
    @inline(__always)
    func address(ofChunk chunk: Int, fd: Int32) throws(HostError) -> UnsafeMutableRawPointer {
        let table = loadTable()
        precondition(chunk < Int(table[0]), "MemoryFile: chunk \(chunk) is beyond the file (\(table[0]) chunks)")
        let m = pg_atomic_load_uintptr(table + 1 + chunk)
        if m != 0 {
            return UnsafeMutableRawPointer(bitPattern: m)!
        }
        return try mapChunk(chunk, fd: fd)
    }

    private func mapChunk(_ chunk: Int, fd: Int32) throws(HostError) -> UnsafeMutableRawPointer {
        try lock.withLock { (_) throws(HostError) -> UnsafeMutableRawPointer in
            // The table may have been replaced, or the chunk mapped, since
            // the lock-free read.
            let table = loadTable()
            let m = pg_atomic_load_uintptr(table + 1 + chunk)
            if m != 0 {
                return UnsafeMutableRawPointer(bitPattern: m)!
            }
            let p = try HostMapping.mapShared(
                fd: fd, offset: UInt64(chunk) << chunkShift, length: Int(chunkSize),
                protection: PROT_READ | PROT_WRITE)
            pg_atomic_store_uintptr(table + 1 + chunk, UInt(bitPattern: p))
            return p
        }
    }

    /// Whether chunk `chunk` is mapped (without mapping it).
    func isMapped(chunk: Int) -> Bool {
        let table = loadTable()
        return chunk < Int(table[0]) && pg_atomic_load_uintptr(table + 1 + chunk) != 0
    }

    /// Unmaps every chunk and empties the table; returns the failures.
    func unmapAll() -> [HostError] {
        var failures: [HostError] = []
        lock.withLock { tables in
            let table = loadTable()
            for i in 0..<Int(table[0]) {
                let m = pg_atomic_load_uintptr(table + 1 + i)
                if m != 0 {
                    do throws(HostError) {
                        try HostMapping.unmap(UnsafeMutableRawPointer(bitPattern: m)!, length: Int(chunkSize))
                    } catch {
                        failures.append(error)
                    }
                }
            }
            let empty = ChunkMappings.makeTable(chunks: 0)
            tables.append(empty)
            current.store(UInt(bitPattern: empty), ordering: .releasing)
        }
        return failures
    }
}
