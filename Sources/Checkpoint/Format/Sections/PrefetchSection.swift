/// `PREF` (tail, ancillary): the order in which frames were first needed
/// after a lazy restore of the checkpoint this one was saved from, so that
/// a lazy restore of this one loads the working set first.
///
/// Payload: count u32 (at most the frame count), then `count` frame
/// sequence numbers as unsigned LEB128, each below the frame count, each
/// once; the numbers fill the payload exactly.
enum PrefetchSection {
    static func encode(_ frames: [UInt64]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + 3 * frames.count)
        w.u32(UInt32(frames.count))
        for f in frames {
            w.leb128(f)
        }
        return w.bytes
    }

    /// Decodes the payload found at `offset` of a checkpoint of
    /// `frameCount` frames.
    static func decode(_ bytes: [UInt8], offset: UInt64, frameCount: UInt64) throws(CheckpointError) -> [UInt64] {
        let section = CheckpointSection.section(.prefetch)
        var r = ByteReader(bytes, base: offset, section: section)
        let count = try r.u32()
        if UInt64(count) > frameCount {
            throw .field(section, offset, "count", expected: "at most the frame count \(frameCount)", found: count)
        }
        var seen = Set<UInt64>()
        var out: [UInt64] = []
        out.reserveCapacity(Int(count))
        for i in 0..<count {
            let at = r.offset
            let f = try r.leb128(field: "frame \(i)", limit: bytes.count)
            if f >= frameCount || !seen.insert(f).inserted {
                throw .field(section, at, "frame \(i)", expected: "a frame below \(frameCount), named once", found: f)
            }
            out.append(f)
        }
        if r.position != bytes.count {
            throw .field(section, r.offset, "length", expected: "\(r.position) bytes for \(count) frames", found: bytes.count)
        }
        return out
    }
}
