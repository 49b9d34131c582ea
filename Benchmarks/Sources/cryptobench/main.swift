// cryptobench: one thread's throughput of what a signed and encrypted
// checkpoint adds per byte of compressed frame (issue 13, BENCHMARKS.md):
// AES-256-GCM sealing and opening in 64 KiB chunks as the format seals
// them (each through swift-crypto's `AES.GCM.seal`/`open`, whose result is
// copied into place), and SHA-256 of a whole 8 MiB payload.
//
//   cryptobench [MiB [chunk KiB]]        (default 256 MiB, 64 KiB chunks)

#if canImport(Glibc)
import Glibc
#endif
import Crypto

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let mib = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 256 : 256
let total = mib << 20
let chunk = (CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 64 : 64) << 10
let payload = 8 << 20
var bytes = [UInt8](repeating: 0, count: total)
var state: UInt64 = 0x9E37_79B9_7F4A_7C15
for i in 0..<total / 8 {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    withUnsafeBytes(of: state) { b in
        for k in 0..<8 { bytes[i * 8 + k] = b[k] }
    }
}
let key = SymmetricKey(size: .bits256)
let ad = [UInt8](repeating: 7, count: 96)
// Written once before the timing, so that no page fault is timed.
var sealed = [UInt8](repeating: 1, count: total + total / chunk * 16)

var t = now()
try bytes.withUnsafeBytes { plain in
    try sealed.withUnsafeMutableBytes { out in
        for c in 0..<total / chunk {
            var nonce = [UInt8](repeating: 0, count: 12)
            nonce[11] = UInt8(truncatingIfNeeded: c)
            nonce[10] = UInt8(truncatingIfNeeded: c >> 8)
            nonce[9] = UInt8(truncatingIfNeeded: c >> 16)
            let box = try AES.GCM.seal(
                UnsafeRawBufferPointer(rebasing: plain[c * chunk..<(c + 1) * chunk]), using: key, nonce: try AES.GCM.Nonce(data: nonce),
                authenticating: ad)
            let at = c * (chunk + 16)
            box.ciphertext.withUnsafeBytes { (out.baseAddress! + at).copyMemory(from: $0.baseAddress!, byteCount: chunk) }
            box.tag.withUnsafeBytes { (out.baseAddress! + at + chunk).copyMemory(from: $0.baseAddress!, byteCount: 16) }
        }
    }
}
let sealSeconds = now() - t

t = now()
var opened = 0
try sealed.withUnsafeBytes { stored in
    for c in 0..<total / chunk {
        var nonce = [UInt8](repeating: 0, count: 12)
        nonce[11] = UInt8(truncatingIfNeeded: c)
        nonce[10] = UInt8(truncatingIfNeeded: c >> 8)
        nonce[9] = UInt8(truncatingIfNeeded: c >> 16)
        let at = c * (chunk + 16)
        let box = try AES.GCM.SealedBox(
            nonce: try AES.GCM.Nonce(data: nonce), ciphertext: UnsafeRawBufferPointer(rebasing: stored[at..<at + chunk]),
            tag: UnsafeRawBufferPointer(rebasing: stored[at + chunk..<at + chunk + 16]))
        opened += try AES.GCM.open(box, using: key, authenticating: ad).count
    }
}
let openSeconds = now() - t

t = now()
var digestByte: UInt8 = 0
bytes.withUnsafeBytes { all in
    for p in 0..<total / payload {
        digestByte ^= Array(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: all[p * payload..<(p + 1) * payload])))[0]
    }
}
let hashSeconds = now() - t

func rate(_ s: Double) -> String { String(Int((Double(total) / s / 1e6).rounded())) }
print("bytes=\(total)\tchunk=\(chunk)\taes_gcm_seal_MBps=\(rate(sealSeconds))\taes_gcm_open_MBps=\(rate(openSeconds))\tsha256_MBps=\(rate(hashSeconds))\topened=\(opened == total)\tx=\(digestByte & 1)")
