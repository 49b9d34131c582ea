import ArgumentParser

/// A size given on the command line: a number of bytes with an optional
/// binary unit. "4096", "64KiB", "64MiB", "1GiB", "4k", "1M", "2G", "1T";
/// units are powers of 1024 and case-insensitive (K, Ki, KiB, ...); a bare
/// "B" is allowed. "MB", "GB" and the like are refused rather than guessed
/// (are they powers of 1000 or of 1024?).
struct ByteSize: Hashable, Sendable, ExpressibleByArgument, CustomStringConvertible {
    var bytes: UInt64

    init(_ bytes: UInt64) {
        self.bytes = bytes
    }

    init?(argument: String) {
        guard let size = try? ByteSize.parse(argument) else { return nil }
        self = size
    }

    /// Parses `text`, with a message saying what is wrong if it is not a
    /// size (ArgumentParser shows it after "The value ... is invalid").
    static func parse(_ text: String) throws -> ByteSize {
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = text[digits.endIndex...]
        guard !digits.isEmpty else {
            throw ValidationError("'\(text)' is not a size: expected a number of bytes, optionally followed by K, M, G or T (KiB, MiB, GiB, TiB)")
        }
        guard let number = UInt64(digits) else {
            throw ValidationError("'\(text)' is too large: at most \(UInt64.max) bytes")
        }
        let shift: UInt64
        switch unit.lowercased() {
        case "", "b": shift = 0
        case "k", "ki", "kib": shift = 10
        case "m", "mi", "mib": shift = 20
        case "g", "gi", "gib": shift = 30
        case "t", "ti", "tib": shift = 40
        case "kb", "mb", "gb", "tb":
            throw ValidationError("'\(text)': write \(digits)\(unit.prefix(1).uppercased())iB; sizes are in powers of 1024")
        default:
            throw ValidationError("'\(text)' has an unknown unit '\(unit)': use K, M, G or T (KiB, MiB, GiB, TiB), powers of 1024")
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else {
            throw ValidationError("'\(text)' is too large: at most \(UInt64.max) bytes (16 EiB - 1)")
        }
        return ByteSize(bytes)
    }

    /// The shortest exact spelling: "64MiB", "4096".
    var description: String {
        for (name, shift) in [("TiB", UInt64(40)), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
        where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(name)"
        }
        return "\(bytes)"
    }

    var defaultValueDescription: String { description }
}
