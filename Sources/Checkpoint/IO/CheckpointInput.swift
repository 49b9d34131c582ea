#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// Where a checkpoint is read from: a file (seekable: its size is known,
/// and the trailer and index can be read first) or a stream such as a pipe
/// (read once, in order).
///
/// Every read asks for an exact number of bytes and names the section it
/// is reading: running out of input is a `.truncated` checkpoint error for
/// that section. No read is larger than the format's limits allow.
final class CheckpointInput {
    private var owned: OwnedFileDescriptor?
    let fd: Int32
    /// The name used in messages.
    let name: String
    /// For a regular file: its length from where the checkpoint starts.
    let seekableLength: UInt64?
    /// Offset in the descriptor where the checkpoint starts.
    private let base: UInt64
    /// Checkpoint offset of the next sequential read.
    private(set) var offset: UInt64 = 0

    /// Read-ahead: bytes `[bufferStart, bufferEnd)` of `buffer` are the
    /// next bytes of the input.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    private var bufferStart = 0
    private var bufferEnd = 0

    /// Opens `path` for reading.
    convenience init(path: String) throws {
        let fd = try OwnedFileDescriptor.open(path, flags: O_RDONLY)
        try self.init(owning: fd, name: path)
    }

    /// Reads from `fd`, which stays the caller's, from its current offset.
    convenience init(descriptor fd: Int32, name: String) throws {
        try self.init(fd: fd, owned: nil, name: name)
    }

    private convenience init(owning fd: consuming OwnedFileDescriptor, name: String) throws {
        let raw = fd.rawValue
        try self.init(fd: raw, owned: fd, name: name)
    }

    private init(fd: Int32, owned: consuming OwnedFileDescriptor?, name: String) throws {
        self.fd = fd
        self.owned = owned
        self.name = name
        var st = stat()
        _ = try retryingInterrupts("fstat \(name)") { fstat(fd, &st) }
        if st.st_mode & S_IFMT == S_IFREG {
            let here = lseek(fd, 0, SEEK_CUR)
            base = here < 0 ? 0 : UInt64(here)
            seekableLength = UInt64(st.st_size) > base ? UInt64(st.st_size) - base : 0
        } else {
            base = 0
            seekableLength = nil
        }
    }

    deinit {
        buffer.deallocate()
    }

    var isSeekable: Bool { seekableLength != nil }

    private var buffered: Int { bufferEnd - bufferStart }

    /// Refills the empty buffer; returns false at end of input.
    private func fill() throws -> Bool {
        precondition(buffered == 0)
        bufferStart = 0
        bufferEnd = try rawRead(into: buffer, at: offset)
        return bufferEnd > 0
    }

    /// One read(2) or pread(2) into `into`; returns the bytes read (0 at
    /// end of input).
    private func rawRead(into p: UnsafeMutableRawBufferPointer, at position: UInt64) throws -> Int {
        if isSeekable {
            return try retryingInterrupts("pread \(name)") {
                pread(fd, p.baseAddress, p.count, off_t(Int64(bitPattern: base + position)))
            }
        }
        return try retryingInterrupts("read \(name)") { Glibc.read(fd, p.baseAddress, p.count) }
    }

    /// Reads exactly `count` bytes at the current offset.
    func read(_ count: Int, section: CheckpointSection) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(into: $0, section: section) }
        return out
    }

    /// Reads exactly `into.count` bytes at the current offset into `into`.
    func read(into p: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
        var done = 0
        while done < p.count {
            let remaining = p.count - done
            if buffered > 0 {
                let n = min(buffered, remaining)
                (p.baseAddress! + done).copyMemory(from: buffer.baseAddress! + bufferStart, byteCount: n)
                bufferStart += n
                done += n
                offset += UInt64(n)
                continue
            }
            if remaining >= 1 << 20 {
                // Large reads go straight to the destination.
                let n = try rawRead(into: UnsafeMutableRawBufferPointer(rebasing: p[done...]), at: offset)
                if n == 0 {
                    throw CheckpointError(.truncated, section, offset: offset, "the input ends \(remaining) bytes short")
                }
                done += n
                offset += UInt64(n)
                continue
            }
            if !(try fill()) {
                throw CheckpointError(.truncated, section, offset: offset, "the input ends \(remaining) bytes short")
            }
        }
    }

    /// Reads up to `count` bytes at the current offset: fewer only where the
    /// input ends.
    func read(upTo count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            if buffered == 0 {
                if !(try fill()) {
                    break
                }
            }
            let n = min(buffered, count - out.count)
            out += UnsafeRawBufferPointer(rebasing: buffer[bufferStart..<bufferStart + n])
            bufferStart += n
            offset += UInt64(n)
        }
        return out
    }

    /// Skips `count` bytes: a seek for a file, reading and dropping them for
    /// a stream.
    func skip(_ count: UInt64, section: CheckpointSection) throws {
        if let length = seekableLength {
            if count > length - min(offset, length) {
                throw CheckpointError(.truncated, section, offset: length, "the input ends \(offset + count - length) bytes short")
            }
            if count <= UInt64(buffered) {
                bufferStart += Int(count)
            } else {
                bufferStart = 0
                bufferEnd = 0
            }
            offset += count
            return
        }
        var left = count
        var scratch = [UInt8](repeating: 0, count: Int(min(count, 1 << 20)))
        while left > 0 {
            let n = Int(min(left, UInt64(scratch.count)))
            try scratch.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<n]), section: section) }
            left -= UInt64(n)
        }
    }

    /// Reads `count` bytes at checkpoint offset `at`, without moving the
    /// sequential offset.
    ///
    /// - Precondition: the input is seekable.
    func read(at position: UInt64, count: Int, section: CheckpointSection) throws -> [UInt8] {
        guard let length = seekableLength else {
            preconditionFailure("CheckpointInput.read(at:): \(name) is not seekable")
        }
        let (end, overflow) = position.addingReportingOverflow(UInt64(count))
        if overflow || end > length {
            throw CheckpointError(.truncated, section, offset: min(position, length), "the file ends before \(count) bytes at \(position)")
        }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        try out.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) throws in
            while done < count {
                let n = try rawRead(into: UnsafeMutableRawBufferPointer(rebasing: p[done...]), at: position + UInt64(done))
                if n == 0 {
                    throw CheckpointError(.truncated, section, offset: position + UInt64(done), "the file shrank while being read")
                }
                done += n
            }
        }
        return out
    }

    /// Whether the input has nothing after the current offset.
    func isAtEnd() throws -> Bool {
        if let length = seekableLength {
            return offset >= length
        }
        if buffered > 0 {
            return false
        }
        return !(try fill())
    }
}
