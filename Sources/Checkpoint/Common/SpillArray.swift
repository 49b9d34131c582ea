#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// A growable array of plain values for the lists that grow with a
/// checkpoint's size (its references, the runs of its stored pages, their
/// order, their encodings while a save writes them): up to 1 MiB
/// (`spillHeapLimit`) it lives in the heap; past that, in a shared mapping
/// of an unnamed file of the temporary directory (`TMPDIR`, else `/tmp`).
/// Those pages are the page cache's, which the kernel writes back and
/// drops under memory pressure, rather than the process's anonymous
/// memory, which it cannot drop without swap: what a save or a restore
/// adds to the process's anonymous memory then no longer grows with the
/// checkpoint.
///
/// The file's space is allocated (`fallocate`) before the mapping grows
/// into it, so a full disk shows as a failed `fallocate`, never as a
/// SIGBUS on a write to the mapping; the array then goes on in the heap,
/// as it does when no temporary file can be created at all.
///
/// A value type, copied on write; read concurrently as an `Array` is.
public struct SpillArray<Element: BitwiseCopyable>: RandomAccessCollection, MutableCollection, @unchecked Sendable {
    private var storage: SpillStorage<Element>

    public init() {
        storage = SpillStorage()
    }

    public init(repeating element: Element, count: Int) {
        self.init()
        storage.reserve(count)
        storage.pointer.initialize(repeating: element, count: count)
        storage.count = count
    }

    public init(_ elements: some Sequence<Element>) {
        self.init()
        append(contentsOf: elements)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count }
    public var count: Int { storage.count }

    public subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < storage.count, "SpillArray: index \(position) out of 0..<\(storage.count)")
            return storage.pointer[position]
        }
        set {
            precondition(position >= 0 && position < storage.count, "SpillArray: index \(position) out of 0..<\(storage.count)")
            makeUnique()
            storage.pointer[position] = newValue
        }
    }

    /// Whether the elements are in the temporary file.
    var isSpilled: Bool { storage.file >= 0 }

    public mutating func reserveCapacity(_ n: Int) {
        makeUnique()
        storage.reserve(n)
    }

    public mutating func append(_ element: Element) {
        makeUnique()
        storage.reserve(storage.count + 1)
        storage.pointer[storage.count] = element
        storage.count += 1
    }

    public mutating func append(contentsOf elements: some Sequence<Element>) {
        makeUnique()
        let done: Void? = elements.withContiguousStorageIfAvailable { buffer in
            storage.reserve(storage.count + buffer.count)
            if let b = buffer.baseAddress {
                (storage.pointer + storage.count).update(from: b, count: buffer.count)
            }
            storage.count += buffer.count
        }
        if done == nil {
            storage.reserve(storage.count + elements.underestimatedCount)
            for e in elements {
                append(e)
            }
        }
    }

    public mutating func removeAll() {
        makeUnique()
        storage.count = 0
    }

    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R? {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    public mutating func withContiguousMutableStorageIfAvailable<R>(
        _ body: (inout UnsafeMutableBufferPointer<Element>) throws -> R
    ) rethrows -> R? {
        makeUnique()
        var buffer = UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count)
        return try body(&buffer)
    }

    /// Calls `body` with the elements' bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: storage.count * MemoryLayout<Element>.stride))
    }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = storage.copy()
        }
    }
}

extension SpillArray {
    /// Calls `body` with the elements' bytes in pieces of at most
    /// `pieceLength`, in order (none when the array is empty).
    func forEachPiece(pieceLength: Int = 1 << 20, _ body: ([UInt8]) throws -> Void) rethrows {
        try withUnsafeBytes { bytes in
            var at = 0
            while at < bytes.count {
                let n = Swift.min(pieceLength, bytes.count - at)
                try body(Array(bytes[at..<at + n]))
                at += n
            }
        }
    }
}

/// The elements of a `SpillArray` and where they live.
final class SpillStorage<Element: BitwiseCopyable> {
    /// Room for `capacity` elements: malloc'd, or the mapping of `file`.
    private(set) var pointer: UnsafeMutablePointer<Element>
    private(set) var capacity: Int
    var count = 0
    /// The temporary file, or -1 while the elements are in the heap.
    private(set) var file: Int32 = -1
    /// Bytes of the file and of its mapping.
    private var mappedBytes = 0
    /// Set when the temporary file could not be made or grown: the array
    /// stays in the heap from then on.
    private var spillFailed = false

    init(capacity: Int = 0) {
        self.capacity = capacity
        pointer = Self.allocate(capacity)
    }

    deinit {
        if file >= 0 {
            munmap(pointer, mappedBytes)
            close(file)
        } else {
            free(pointer)
        }
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Element> {
        let bytes = max(1, capacity * MemoryLayout<Element>.stride)
        guard let p = malloc(bytes) else {
            fatalError("SpillArray: out of memory for \(capacity) elements")
        }
        return p.bindMemory(to: Element.self, capacity: capacity)
    }

    func copy() -> SpillStorage {
        let other = SpillStorage(capacity: 0)
        other.reserve(count)
        other.pointer.update(from: pointer, count: count)
        other.count = count
        return other
    }

    /// Makes room for `n` elements, doubling.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        let stride = MemoryLayout<Element>.stride
        let wanted = max(n, 2 * capacity, 16)
        let (wantedBytes, overflow) = wanted.multipliedReportingOverflow(by: stride)
        precondition(!overflow, "SpillArray: \(wanted) elements of \(stride) bytes overflow")
        if file >= 0 || (!spillFailed && wantedBytes > spillHeapLimit) {
            // Whole pages, so that the mapping's end is the file's.
            let bytes = (wantedBytes + 4095) & ~4095
            if file >= 0 ? growFile(to: bytes) : moveToFile(bytes) {
                capacity = bytes / stride
                return
            }
        }
        guard let p = realloc(pointer, max(1, wantedBytes)) else {
            fatalError("SpillArray: out of memory for \(wanted) elements")
        }
        pointer = p.bindMemory(to: Element.self, capacity: wanted)
        capacity = wanted
    }

    /// Moves the elements into a new temporary file of `bytes`.
    private func moveToFile(_ bytes: Int) -> Bool {
        let fd = openSpillFile()
        guard fd >= 0 else {
            spillFailed = true
            return false
        }
        guard pg_fallocate(fd, 0, 0, Int64(bytes)) == 0,
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED
        else {
            close(fd)
            spillFailed = true
            return false
        }
        let mapped = p.bindMemory(to: Element.self, capacity: bytes / MemoryLayout<Element>.stride)
        mapped.update(from: pointer, count: count)
        free(pointer)
        pointer = mapped
        file = fd
        mappedBytes = bytes
        return true
    }

    /// Grows the file and its mapping to `bytes`; when that fails, moves
    /// the elements back to the heap (and returns false, for the heap to
    /// grow).
    private func growFile(to bytes: Int) -> Bool {
        if pg_fallocate(file, 0, Int64(mappedBytes), Int64(bytes - mappedBytes)) == 0,
            let p = pg_mremap_maymove(pointer, mappedBytes, bytes), p != MAP_FAILED
        {
            pointer = p.bindMemory(to: Element.self, capacity: bytes / MemoryLayout<Element>.stride)
            mappedBytes = bytes
            return true
        }
        let heap = Self.allocate(count)
        heap.update(from: pointer, count: count)
        munmap(pointer, mappedBytes)
        close(file)
        file = -1
        mappedBytes = 0
        pointer = heap
        capacity = count
        spillFailed = true
        return false
    }
}

/// Bytes a `SpillArray` keeps in the heap before it moves to a file. Tests
/// lower it, before the arrays they look at are made.
nonisolated(unsafe) var spillHeapLimit = 1 << 20

/// An unnamed file (`O_TMPFILE`) in `TMPDIR`, else `/tmp`, or -1 (the
/// caller keeps its data elsewhere).
func openSpillFile() -> Int32 {
    let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    while true {
        let fd = open(directory, pg_O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600)
        if fd >= 0 || errno != EINTR {
            return fd
        }
    }
}

extension SpillArray: Equatable where Element: Equatable {
    public static func == (a: SpillArray, b: SpillArray) -> Bool {
        a.elementsEqual(b)
    }
}

extension SpillArray: CustomStringConvertible {
    public var description: String { Array(self).description }
}
