// Helpers of pgallocbench: result lines, clocks, /proc/self/status, sizes.

#if canImport(Glibc)
import Glibc
#endif

/// One result line: tab-separated key=value pairs, keys in the order first
/// set, the fixed columns first (as gVisor's gvbench prints them).
struct ResultLine {
    private(set) var keys: [String] = []
    private var values: [String: String] = [:]

    /// The columns every line has, NA where they do not apply.
    static let fixedKeys = [
        "workload", "variant", "ns_per_op", "file_size", "save_s", "restore_s",
        "ckpt_bytes", "restored_committed_bytes", "peak_rss_kib", "verified",
    ]

    init() {
        for k in Self.fixedKeys {
            set(k, "NA")
        }
    }

    mutating func set(_ key: String, _ value: String) {
        if values[key] == nil {
            keys.append(key)
        }
        values[key] = value
    }

    mutating func set(_ key: String, _ value: some BinaryInteger) { set(key, String(value)) }
    mutating func set(_ key: String, _ value: Bool) { set(key, value ? "true" : "false") }
    /// Six decimals, as gvbench's strconv.FormatFloat(v, 'f', 6, 64).
    mutating func set(_ key: String, seconds value: Double) { set(key, formatFixed6(value)) }
    /// Elapsed nanoseconds, printed as seconds.
    mutating func set(_ key: String, nanoseconds value: UInt64) { set(key, formatFixed6(Double(value) / 1e9)) }

    var text: String {
        keys.map { "\($0)=\(values[$0]!)" }.joined(separator: "\t")
    }
}

/// `value` with exactly six decimals.
func formatFixed6(_ value: Double) -> String {
    let n = Int64((value * 1e6).rounded())
    let a = n.magnitude
    var frac = String(a % 1_000_000)
    frac = String(repeating: "0", count: 6 - frac.count) + frac
    return (n < 0 ? "-" : "") + "\(a / 1_000_000).\(frac)"
}

func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: 16 - s.count) + s
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func die(_ message: String) -> Never {
    var line = "pgallocbench: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// st_blocks * 512 of a file.
func committedBytes(fd: Int32) -> UInt64 {
    var st = stat()
    if fstat(fd, &st) != 0 {
        die("fstat: errno \(errno)")
    }
    return UInt64(st.st_blocks) * 512
}

/// Plain integers or K/M/G/T with optional "iB"/"B" (powers of two):
/// "1GiB", "8G", "64MiB", "4194304".
func parseBytes(_ text: String) -> UInt64? {
    var t = text.uppercased()
    if t.hasSuffix("IB") {
        t.removeLast(2)
    } else if t.hasSuffix("B") {
        t.removeLast()
    }
    var shift: UInt64 = 0
    switch t.last {
    case "K": shift = 10
    case "M": shift = 20
    case "G": shift = 30
    case "T": shift = 40
    default: break
    }
    if shift != 0 {
        t.removeLast()
    }
    guard let n = UInt64(t), n <= (UInt64.max >> shift) else {
        return nil
    }
    return n << shift
}
