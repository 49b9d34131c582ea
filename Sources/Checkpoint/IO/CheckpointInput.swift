#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// A checkpoint that can be read at any offset: a file, or an object in a
/// store. Reads may come from several threads at once.
protocol RandomAccessInput: AnyObject, Sendable {
    /// How messages name it.
    var name: String { get }
    /// Bytes of the checkpoint.
    var length: UInt64 { get }
    /// Reads exactly `into.count` bytes at checkpoint offset `offset`;
    /// bytes beyond `length` are a `.truncated` error of `section`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws
    /// How to read it ahead when it is read in order, if that pays (each
    /// read costs a round trip); nil: read it as asked.
    var readAheadPlan: ReadAheadPlan? { get }
}

extension RandomAccessInput {
    var readAheadPlan: ReadAheadPlan? { nil }
}

extension RandomAccessInput {
    /// Reads `count` bytes at checkpoint offset `offset`.
    func read(at offset: UInt64, count: Int, section: CheckpointSection) throws -> [UInt8] {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        if overflow || end > length {
            throw CheckpointError(.truncated, section, offset: min(offset, length), "the file ends before \(count) bytes at \(offset)")
        }
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(at: offset, into: $0, section: section) }
        return out
    }
}

/// A regular file, read with `pread` from where the checkpoint starts in
/// it.
final class FileInput: RandomAccessInput, @unchecked Sendable {
    let name: String
    let length: UInt64
    private let fd: FileDescriptor
    /// Owned when opened from a path.
    private let owned: OwnedFileDescriptor?
    /// Offset in the file where the checkpoint starts.
    private let base: UInt64

    /// Reads `fd` (which must stay open while this is used) from `base`.
    init(descriptor fd: FileDescriptor, owned: consuming OwnedFileDescriptor?, name: String, base: UInt64, fileLength: UInt64) {
        self.fd = fd
        self.owned = owned
        self.name = name
        self.base = base
        length = fileLength > base ? fileLength - base : 0
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(buffer.count))
        if overflow || end > length {
            throw CheckpointError(.truncated, section, offset: min(offset, length), "the file ends before \(buffer.count) bytes at \(offset)")
        }
        let n = try fd.readAll(into: buffer, atAbsoluteOffset: base + offset, call: "pread \(name)")
        if n < buffer.count {
            throw CheckpointError(.truncated, section, offset: offset + UInt64(n), "the file shrank while being read")
        }
    }
}

/// A stream (a pipe, a socket, a terminal): read once, in order.
final class StreamInput {
    let fd: FileDescriptor
    let name: String
    /// Owned when opened from a path.
    private let owned: OwnedFileDescriptor?

    init(descriptor fd: FileDescriptor, owned: consuming OwnedFileDescriptor?, name: String) {
        self.fd = fd
        self.owned = owned
        self.name = name
    }
}

/// A checkpoint opened for reading: a file, which can be read anywhere, or
/// a stream, which is read once in order.
enum OpenedInput {
    case random(RandomAccessInput)
    case stream(StreamInput)

    /// Opens `location`: a regular file (from a descriptor's current
    /// offset) or an object is read anywhere, anything else as a stream.
    static func open(_ location: CheckpointLocation) throws -> OpenedInput {
        switch location {
        case .object(let object):
            return .random(try ObjectInput(object))
        case .path(let path):
            let owned = try OwnedFileDescriptor.open(path, flags: O_RDONLY)
            let st = try owned.status()
            let fd = owned.descriptor
            if st.st_mode & S_IFMT == S_IFREG {
                return .random(FileInput(descriptor: fd, owned: owned, name: path, base: 0, fileLength: UInt64(st.st_size)))
            }
            return .stream(StreamInput(descriptor: fd, owned: owned, name: path))
        case .descriptor(let raw, let name):
            let fd = FileDescriptor(rawValue: raw)
            let st = try fd.status(call: "fstat \(name)")
            if st.st_mode & S_IFMT == S_IFREG {
                let here = lseek(raw, 0, SEEK_CUR)
                return .random(
                    FileInput(descriptor: fd, owned: nil, name: name, base: here < 0 ? 0 : UInt64(here), fileLength: UInt64(st.st_size)))
            }
            return .stream(StreamInput(descriptor: fd, owned: nil, name: name))
        }
    }

    var name: String {
        switch self {
        case .random(let input): input.name
        case .stream(let input): input.name
        }
    }
}

/// Reads a checkpoint in order, from a stream or from a file, through a
/// read-ahead buffer.
///
/// Every read asks for an exact number of bytes and names the section it
/// is reading: running out of input is a `.truncated` checkpoint error for
/// that section. No read is larger than the format's limits allow.
///
/// A reader that will read (nearly) everything asks for `readAhead`: an
/// input that offers a plan (an object in a store) is then fetched in
/// blocks, several at once, ahead of the reader (`ReadAhead`).
final class SequentialReader {
    private let source: OpenedInput
    /// Checkpoint offset of the next byte.
    private(set) var offset: UInt64 = 0
    /// Whether to read the input ahead, as its plan says.
    private let wantsReadAhead: Bool
    /// Made at the first read, when wanted and offered.
    private var readAhead: ReadAhead?
    /// Offsets the caller will read at, skipping what lies between, if
    /// it said so (`willRead(at:)`).
    private var announcedOffsets: [UInt64]?
    /// Made at the first read after `willRead(at:)`, when the input
    /// offers a plan.
    private var prefetch: RangePrefetch?

    /// Bytes `[bufferStart, bufferEnd)` of `buffer` are the next bytes of
    /// the input.
    private let buffer: UnsafeMutableRawBufferPointer
    private var bufferStart = 0
    private var bufferEnd = 0
    /// Reused by `skip` on a stream.
    private var scratch: [UInt8] = []

    /// Reads `source` through a read-ahead buffer of `bufferSize` bytes: the
    /// default suits reading everything; a scan that skips the payloads of a
    /// file reads less with a small one.
    ///
    /// `readAhead`: the caller reads (nearly) everything, in order.
    init(_ source: OpenedInput, bufferSize: Int = 1 << 20, readAhead: Bool = false) {
        self.source = source
        wantsReadAhead = readAhead
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 64)
    }

    deinit {
        buffer.deallocate()
    }

    var name: String { source.name }

    /// The input that can be read anywhere, if it is a file.
    var randomAccess: RandomAccessInput? {
        if case .random(let input) = source { input } else { nil }
    }

    /// The checkpoint's length, if it is a file.
    var length: UInt64? { randomAccess?.length }

    private var buffered: Int { bufferEnd - bufferStart }

    /// Reads what comes next into `p` (fewer bytes than asked only at the
    /// end of the input); returns the bytes read.
    private func rawRead(into p: UnsafeMutableRawBufferPointer) throws -> Int {
        switch source {
        case .random(let input):
            let n = Int(min(UInt64(p.count), input.length - min(offset, input.length)))
            let destination = UnsafeMutableRawBufferPointer(rebasing: p[..<n])
            if readAhead == nil && wantsReadAhead, let plan = input.readAheadPlan {
                readAhead = try ReadAhead(input, plan: plan, from: offset)
            }
            if let offsets = announcedOffsets, let plan = input.readAheadPlan {
                announcedOffsets = nil
                prefetch = try RangePrefetch(input, offsets: offsets, length: buffer.count, inFlight: 2 * plan.blocksInFlight)
            }
            if let readAhead {
                try readAhead.read(at: offset, into: destination, section: .file)
            } else if let prefetch {
                try prefetch.read(at: offset, into: destination, section: .file)
            } else {
                try input.read(at: offset, into: destination, section: .file)
            }
            return n
        case .stream(let input):
            return try input.fd.readSome(into: p, call: "read \(input.name)")
        }
    }

    /// Refills the empty buffer; returns false at end of input.
    private func fill() throws -> Bool {
        precondition(buffered == 0)
        bufferStart = 0
        bufferEnd = try rawRead(into: buffer)
        return bufferEnd > 0
    }

    /// Announces that the reader will read at `offsets` (increasing), a
    /// buffer's worth at each, and skip what lies between: an input that
    /// offers a read-ahead plan (an object) then fetches those places in
    /// parallel ahead of the reader. Nothing changes for other inputs.
    func willRead(at offsets: [UInt64]) {
        if randomAccess?.readAheadPlan != nil && readAhead == nil {
            announcedOffsets = offsets
        }
    }

    /// Reads exactly `count` bytes.
    func read(_ count: Int, section: CheckpointSection) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(into: $0, section: section) }
        return out
    }

    /// Reads exactly `into.count` bytes into `into`.
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
            if remaining >= buffer.count {
                // Large reads go straight to the destination.
                let n = try rawRead(into: UnsafeMutableRawBufferPointer(rebasing: p[done...]))
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

    /// Reads up to `count` bytes: fewer only where the input ends.
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

    /// The next 4 bytes, without consuming them; nil if fewer remain.
    func peek4() throws -> [UInt8]? {
        if buffered < 4 {
            // Move what is left to the front and top the buffer up.
            let left = buffered
            if left > 0 {
                (buffer.baseAddress!).copyMemory(from: buffer.baseAddress! + bufferStart, byteCount: left)
            }
            bufferStart = 0
            bufferEnd = left
            while bufferEnd < 4 {
                let saved = offset
                offset += UInt64(bufferEnd)
                let n = try rawRead(into: UnsafeMutableRawBufferPointer(rebasing: buffer[bufferEnd...]))
                offset = saved
                if n == 0 {
                    return nil
                }
                bufferEnd += n
            }
        }
        return Array(UnsafeRawBufferPointer(rebasing: buffer[bufferStart..<bufferStart + 4]))
    }

    /// Skips `count` bytes: a seek for a file, reading and dropping them for
    /// a stream.
    func skip(_ count: UInt64, section: CheckpointSection) throws {
        if let length {
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
        if scratch.isEmpty {
            scratch = [UInt8](repeating: 0, count: 1 << 16)
        }
        while left > 0 {
            let n = Int(min(left, UInt64(scratch.count)))
            try scratch.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<n]), section: section) }
            left -= UInt64(n)
        }
    }

    /// Whether the input has nothing after the current offset.
    func isAtEnd() throws -> Bool {
        if let length {
            return offset >= length
        }
        if buffered > 0 {
            return false
        }
        return !(try fill())
    }
}
