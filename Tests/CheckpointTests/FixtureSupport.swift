import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

// What the fixture generator and the fixture tests share: where fixtures/
// is, a SHA-256, a JSON writer whose output is stable (it is compared as
// text with committed golden files), and the renderings of a checkpoint's
// metadata and of a restored file's contents.

/// The repository's fixtures/ directory, found from this source file.
let fixturesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 {
        url.deleteLastPathComponent()
    }
    return url.appendingPathComponent("fixtures").path
}()


/// One directory of fixtures, `fixtures/vN`: the checkpoints of format
/// version N, good and broken, and their golden files.
struct FixtureSet {
    let version: Int
    let good: [GoodFixture]
    let broken: [BrokenFixture]
    /// Whether the generator can still make the good fixtures that come
    /// from the writer: only for the version it writes. Older versions'
    /// files stay as committed; their crafted ones are still made.
    var writerMakesGood: Bool { UInt32(version) == CheckpointFormat.version }

    var directory: String { fixturesDirectory + "/v\(version)" }
    var brokenDirectory: String { directory + "/broken" }

    static var v1: FixtureSet { FixtureSet(version: 1, good: FixtureCatalog.good, broken: FixtureCatalog.broken) }
    static var v2: FixtureSet { FixtureSet(version: 2, good: FixtureCatalogV2.good, broken: FixtureCatalogV2.broken) }
    static var all: [FixtureSet] { [v1, v2] }
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

// MARK: - SHA-256

/// SHA-256 (FIPS 180-4), fed in pieces: the digest of restored contents
/// is compared with the committed one, and anyone can recompute it with
/// `sha256sum` over the stored runs' bytes laid end to end.
struct SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    private var h: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0
    private var w = [UInt32](repeating: 0, count: 64)

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length += UInt64(bytes.count)
        var i = 0
        if !pending.isEmpty {
            let n = min(64 - pending.count, bytes.count)
            pending += bytes[0..<n]
            i = n
            if pending.count == 64 {
                pending.withUnsafeBytes { block($0.baseAddress!) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        while bytes.count - i >= 64 {
            block(bytes.baseAddress! + i)
            i += 64
        }
        pending += bytes[i...]
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    private mutating func block(_ p: UnsafeRawPointer) {
        for t in 0..<16 {
            w[t] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self))
        }
        for t in 16..<64 {
            let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for t in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ SHA256.k[t] &+ w[t]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g
            g = f
            f = e
            e = d &+ t1
            d = c
            c = b
            b = a
            a = t1 &+ t2
        }
        h[0] = h[0] &+ a
        h[1] = h[1] &+ b
        h[2] = h[2] &+ c
        h[3] = h[3] &+ d
        h[4] = h[4] &+ e
        h[5] = h[5] &+ f
        h[6] = h[6] &+ g
        h[7] = h[7] &+ hh
    }

    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// The digest as 64 lowercase hex digits.
    mutating func finish() -> String {
        let bits = length * 8
        var tail: [UInt8] = [0x80]
        while (pending.count + tail.count) % 64 != 56 {
            tail.append(0)
        }
        for i in (0..<8).reversed() {
            tail.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))))
        }
        let savedLength = length
        update(tail)
        length = savedLength
        precondition(pending.isEmpty)
        return h.map { word in
            let s = String(word, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }

    static func hex(_ bytes: [UInt8]) -> String {
        var s = SHA256()
        s.update(bytes)
        return s.finish()
    }
}

// MARK: - Stable JSON

/// A JSON value whose objects keep their keys in the order given, written
/// always the same way: two-space indentation, one key per line, arrays of
/// numbers and small objects on one line.
indirect enum StableJSON {
    case object([(String, StableJSON)])
    case array([StableJSON])
    case number(UInt64)
    case string(String)
    case bool(Bool)
    case null

    func rendered() -> String {
        var out = ""
        write(into: &out, indent: 0)
        out += "\n"
        return out
    }

    /// Whether the value fits on one line: scalars, arrays of scalars, and
    /// objects and arrays of scalars only.
    private var isFlat: Bool {
        switch self {
        case .object(let members): members.allSatisfy { $0.1.isScalar }
        case .array(let items): items.allSatisfy { $0.isScalar || $0.isFlatArray }
        default: true
        }
    }

    private var isScalar: Bool {
        switch self {
        case .object, .array: false
        default: true
        }
    }

    private var isFlatArray: Bool {
        if case .array(let items) = self { return items.allSatisfy(\.isScalar) }
        return false
    }

    private func write(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch self {
        case .number(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .string(let s): out += StableJSON.quoted(s)
        case .array(let items):
            if items.isEmpty {
                out += "[]"
            } else if isFlat {
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += ", " }
                    item.write(into: &out, indent: indent)
                }
                out += "]"
            } else {
                out += "[\n"
                for (i, item) in items.enumerated() {
                    out += pad
                    item.write(into: &out, indent: indent + 1)
                    out += i == items.count - 1 ? "\n" : ",\n"
                }
                out += closePad + "]"
            }
        case .object(let members):
            if members.isEmpty {
                out += "{}"
            } else if isFlat && indent > 0 && members.count <= 8 {
                out += "{"
                for (i, (key, value)) in members.enumerated() {
                    if i > 0 { out += ", " }
                    out += StableJSON.quoted(key) + ": "
                    value.write(into: &out, indent: indent)
                }
                out += "}"
            } else {
                out += "{\n"
                for (i, (key, value)) in members.enumerated() {
                    out += pad + StableJSON.quoted(key) + ": "
                    value.write(into: &out, indent: indent + 1)
                    out += i == members.count - 1 ? "\n" : ",\n"
                }
                out += closePad + "}"
            }
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let h = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

func hexString(_ x: UInt32) -> String {
    let s = String(x, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

// MARK: - Metadata and contents renderings

/// Per-kind byte counts, every kind named, in kind order.
func renderKinds(_ stats: MemoryStats) -> StableJSON {
    .object(MemoryKind.allCases.map { ($0.description, .number(stats[$0])) })
}

func renderRuns(_ runs: [FileRange]) -> StableJSON {
    .array(runs.map { .array([.number($0.start), .number($0.end)]) })
}

/// The expected metadata of a fixture: everything `readMetadata` returns
/// (with the frames), in a form that does not depend on the Swift types.
func renderMetadata(_ m: CheckpointMetadata) -> String {
    let header: StableJSON = .object([
        ("version", .number(UInt64(m.header.version))),
        ("frameLimit", .number(UInt64(m.header.frameLimit))),
        ("fileSize", .number(m.header.fileSize)),
        ("dataSize", .number(m.header.dataSize)),
        ("segmentCount", .number(m.header.segmentCount)),
        ("headerCRC", .string(hexString(m.header.crc))),
    ])
    let segments: StableJSON = .array(m.segments.map { s in
        .object([
            ("start", .number(s.range.start)), ("end", .number(s.range.end)),
            ("kind", .string(s.kind.description)), ("refs", .number(s.refs)),
        ])
    })
    let totals: StableJSON = .object([
        ("frameCount", .number(m.totals.frameCount)),
        ("storedBytes", .number(m.totals.storedBytes)),
        ("storedPerKind", renderKinds(m.totals.storedPerKind)),
        ("accounting", renderKinds(m.totals.accounting)),
    ])
    let frames: StableJSON = .array(m.frames.map { f in
        .object([
            ("sequence", .number(f.sequence)),
            ("uncompressedLength", .number(UInt64(f.uncompressedLength))),
            ("compressedLength", .number(UInt64(f.compressedLength))),
            ("headerCRC", .string(hexString(f.headerCRC))),
            ("payloadCRC", .string(hexString(f.payloadCRC))),
            ("runs", renderRuns(f.runs)),
        ])
    })
    var members: [(String, StableJSON)] = [
        ("header", header),
        ("segments", segments),
        ("totals", totals),
        ("checkpointLength", .number(m.checkpointLength)),
        ("frames", frames),
    ]
    if m.header.version >= 2 {
        members.append(("sections", .array(m.sections.map { e in
            .object([
                ("type", .string(e.type.description)), ("placement", .string(e.placement.rawValue)),
                ("flags", .number(UInt64(e.flags.rawValue))), ("offset", .number(e.offset)),
                ("length", .number(e.length)), ("crc", .string(hexString(e.crc))),
            ])
        })))
        members.append(("annotations", .object(m.annotations.keys.sorted().map { ($0, .string(m.annotations[$0]!)) })))
        members.append(("prefetchOrder", .array(m.prefetchOrder.map { .number($0) })))
    }
    return StableJSON.object(members).rendered()
}

/// What a fixture restores to.
struct RestoredContents: Equatable {
    var fileSize: UInt64
    var dataSize: UInt64
    /// The pages that hold data, joined: every other byte reads zero.
    var storedRuns: [FileRange]
    /// SHA-256 of the stored runs' bytes, in address order, end to end.
    var sha256: String
    /// The restored file's accounting: stored bytes per segment kind.
    var committedPerKind: MemoryStats
    /// The segments of the restored usage set (refs-0 ones reclaimed).
    var usage: [SegmentRecord]
    /// For a raw image: the file under fixtures/ holding the image it
    /// restores to.
    var image: String?

    func rendered() -> String {
        var members: [(String, StableJSON)] = [
            ("fileSize", .number(fileSize)),
            ("dataSize", .number(dataSize)),
            ("storedBytes", .number(storedRuns.reduce(0) { $0 + $1.length })),
            ("storedRuns", renderRuns(storedRuns)),
            ("sha256", .string(sha256)),
            ("committedPerKind", renderKinds(committedPerKind)),
            ("usage", .array(usage.map { s in
                .object([
                    ("start", .number(s.range.start)), ("end", .number(s.range.end)),
                    ("kind", .string(s.kind.description)), ("refs", .number(s.refs)),
                ])
            })),
        ]
        if let image {
            members.append(("image", .string(image)))
        }
        return StableJSON.object(members).rendered()
    }
}

/// Describes a restored MemoryFile: its stored runs (the known-committed
/// ranges), their digest, and its usage once reclaim is done. Checks on
/// the way that no byte outside the stored runs holds data (the memfd has
/// no data extent outside them).
func describeRestored(_ file: MemoryFile, dataSize: UInt64, image: String? = nil) throws -> RestoredContents {
    file.waitForReclaim()
    try file.checkInvariants()
    let usage = file.usageSnapshot
    let runs = knownCommittedRanges(usage)
    let all = FileRange(start: 0, end: file.totalSize)
    for extent in try dataExtents(file.fileDescriptor, in: all) {
        // Holes are zero; data extents may be wider than the pages written
        // (the file system's block size), so check they hold zeros there.
        var at = extent.start
        while at < extent.end {
            let end = min(extent.end, at + (1 << 20))
            let piece = FileRange(start: at, end: end)
            let inside = runs.contains { $0.start <= piece.start && piece.end <= $0.end }
            if !inside {
                let bytes = try readBytes(file.fileDescriptor, piece)
                for (i, page) in stride(from: 0, to: bytes.count, by: 4096).enumerated() {
                    let address = piece.start + UInt64(i) * 4096
                    let stored = runs.contains { $0.start <= address && address < $0.end }
                    if !stored && bytes[page..<min(page + 4096, bytes.count)].contains(where: { $0 != 0 }) {
                        throw FixtureError("restored page \(hex(address)) holds data but is not a stored run")
                    }
                }
            }
            at = end
        }
    }
    var sha = SHA256()
    for run in runs {
        var at = run.start
        while at < run.end {
            let end = min(run.end, at + (4 << 20))
            sha.update(try readBytes(file.fileDescriptor, FileRange(start: at, end: end)))
            at = end
        }
    }
    return RestoredContents(
        fileSize: file.totalSize, dataSize: dataSize, storedRuns: runs, sha256: sha.finish(),
        committedPerKind: file.accounting.snapshot(), usage: savedShape(usage), image: image)
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
