#if canImport(Glibc)
import Glibc
#endif

// Numbers for people: byte counts, rates, durations, fixed decimals.

/// Binary units, from the largest.
private let binaryUnits: [(name: String, shift: UInt64)] = [
    ("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10),
]

/// `bytes` in the largest binary unit it reaches: "64 MiB" when exact,
/// "12.3 MiB" otherwise, "512 B" below a KiB.
func humanBytes(_ bytes: UInt64) -> String {
    for (name, shift) in binaryUnits where bytes >= 1 << shift {
        let unit: UInt64 = 1 << shift
        if bytes % unit == 0 {
            return "\(bytes / unit) \(name)"
        }
        return "\(fixed(Double(bytes) / Double(unit), digits: 1)) \(name)"
    }
    return "\(bytes) B"
}

/// `bytes` per `seconds` in decimal units (MB/s, GB/s), as a person
/// expects throughput.
func humanRate(_ bytes: UInt64, seconds: Double) -> String {
    guard seconds > 0 else { return "-" }
    let perSecond = Double(bytes) / seconds
    if perSecond >= 1e9 {
        return "\(fixed(perSecond / 1e9, digits: 2)) GB/s"
    }
    if perSecond >= 1e6 {
        return "\(fixed(perSecond / 1e6, digits: 1)) MB/s"
    }
    return "\(fixed(perSecond / 1e3, digits: 1)) kB/s"
}

/// A duration as `m:ss` (or `h:mm:ss`).
func clockTime(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "-:--" }
    let s = Int(seconds.rounded())
    let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
    if s >= 3600 {
        return "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))"
    }
    return "\(s / 60):\(two(s % 60))"
}

/// `x` with exactly `digits` decimals, rounded half away from zero; "0"
/// style output for values that are not finite.
func fixed(_ x: Double, digits: Int) -> String {
    guard x.isFinite else { return digits > 0 ? "0." + String(repeating: "0", count: digits) : "0" }
    var scale = 1.0
    for _ in 0..<digits {
        scale *= 10
    }
    let scaled = (abs(x) * scale).rounded()
    guard scaled < 9e18 else { return String(x) }
    let n = UInt64(scaled)
    let p = UInt64(scale)
    let sign = x < 0 && n != 0 ? "-" : ""
    guard digits > 0 else { return "\(sign)\(n)" }
    let fraction = String(n % p)
    return "\(sign)\(n / p)." + String(repeating: "0", count: digits - fraction.count) + fraction
}

/// Seconds in a `Duration`.
func seconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}

/// `numerator / denominator`, 0 when the denominator is.
func ratio(_ numerator: UInt64, _ denominator: UInt64) -> Double {
    denominator == 0 ? 0 : Double(numerator) / Double(denominator)
}

/// `text` padded with spaces on the left to `width`.
func leftPad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

/// `text` padded with spaces on the right to `width`.
func rightPad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// `x` in hexadecimal with a `0x` prefix, at least `width` digits.
func hex(_ x: UInt64, width: Int = 1) -> String {
    let digits = String(x, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The time a checkpoint is created, in UTC (`2026-11-30T15:04:05Z`):
/// now, or `SOURCE_DATE_EPOCH` (seconds since 1970) when it is set, so that
/// a save can be made reproducible.
func creationTime() -> String {
    var seconds = time_t(time(nil))
    if let text = getenv("SOURCE_DATE_EPOCH").map({ String(cString: $0) }), let fixed = Int(text) {
        seconds = time_t(fixed)
    }
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
}
