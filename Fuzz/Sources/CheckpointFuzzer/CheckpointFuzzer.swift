// libFuzzer entry point over the checkpoint reader (docs/FORMAT.md).
//
// Every input is a candidate checkpoint. It is written to a memfd, which
// the reader sees as a seekable file (trailer and index first), and read
// with `CheckpointReader.readMetadata`, `CheckpointReader.verify` and
// `MemoryFile.restore`; inputs up to the pipe's capacity are also restored
// from a pipe, which the reader sees as a stream (frames, then index and
// trailer, then the end of input).
//
// A reader that traps, leaks, reads out of bounds or hangs is a bug; a
// `CheckpointError` (or any other thrown error) is the expected outcome of
// a bad input. Invariants are checked beyond "no crash": the readers agree
// (verify succeeds exactly when restore does, from a file and from a pipe;
// readMetadata succeeds whenever they do, since it checks a subset), and a
// successful restore has the size the header gives.
//
// Inputs whose index claims more than `restoreLimit` stored bytes are only
// verified (which decompresses every frame), not restored: a few hundred
// bytes of one-byte-RLE frames restore to hundreds of MiB of memfd pages,
// which would spend the fuzzing time on page faults.
//
// Every reader holds the test keys of fixtures/keys that open encrypted
// checkpoints (so that the encrypted seeds reach their sealed sections and
// frames); one more verification also requires the test signer's
// signature, and must fail whenever the one without it does.

#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import PGAlloc

/// The memfd the inputs are written to, created once.
nonisolated(unsafe) private var memfd: Int32 = -1

/// Capacity asked for the pipe; inputs larger than what it got skip the
/// stream path (writing more would block, as nothing reads concurrently).
private let pipeCapacity: Int32 = 1 << 20

/// Inputs claiming more stored bytes than this are not restored.
private let restoreLimit: UInt64 = 16 << 20

/// F_SETPIPE_SZ, which Glibc's module leaves out (it needs _GNU_SOURCE).
private let setPipeSize: Int32 = 1031

/// The test keys of fixtures/keys (test-only) that open encrypted seeds.
private let keys = CheckpointKeys(
    identities: [try! CheckpointKeyFile.encryptionKey("pgsnap-x25519-private-v1\nKr+VcIe0VkpmKbiP9pc6LuxFYfAdMvaNxr5r1c5rhSA=\n", name: "recipient")],
    symmetricKeys: [try! CheckpointKeyFile.symmetricKey("pgsnap-symmetric-key-v1\nzjI/pqQTXlAqTSXu8N+65yb2Zr+1Goe/y9ygpme+sBA=\n", name: "symmetric")])

/// The same, with the test signer required.
private let trustingKeys = CheckpointKeys(
    trustedSigners: [try! CheckpointKeyFile.signingPublicKey("pgsnap-ed25519-public-v1\n4ItHEQ4GFxlAe3WI/VDoPt6agIyn+zj/4PWx7x7SoOw=\n", name: "signer.pub")],
    identities: keys.identities, symmetricKeys: keys.symmetricKeys)

@_cdecl("LLVMFuzzerTestOneInput")
public func checkpointFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    if memfd < 0 {
        do {
            memfd = try OwnedFileDescriptor.memfd(name: "checkpoint-fuzz").release()
        } catch {
            preconditionFailure("\(error)")
        }
    }
    let fd = memfd
    precondition(ftruncate(fd, 0) == 0, "ftruncate failed: errno \(errno)")
    writeAll(fd, input)

    lseek(fd, 0, SEEK_SET)
    let metadata = try? CheckpointReader.readMetadata(from: .descriptor(fd), includeFrames: true, keys: keys)

    lseek(fd, 0, SEEK_SET)
    var verifyOptions = RestoreOptions(threads: 1)
    verifyOptions.keys = keys
    let verified = try? CheckpointReader.verify(.descriptor(fd), options: verifyOptions)

    lseek(fd, 0, SEEK_SET)
    verifyOptions.keys = trustingKeys
    if (try? CheckpointReader.verify(.descriptor(fd), options: verifyOptions)) != nil && verified == nil {
        preconditionFailure("verify with a signature required succeeded but without failed")
    }

    let restoring = (metadata?.totals.storedBytes ?? 0) <= restoreLimit
    guard restoring else {
        if verified != nil && metadata == nil {
            preconditionFailure("verify succeeded but readMetadata failed")
        }
        return 0
    }

    lseek(fd, 0, SEEK_SET)
    var options = RestoreOptions()
    options.threads = 2
    options.keys = keys
    let restored = try? MemoryFile.restore(from: .descriptor(fd), options: options)

    if (verified != nil) != (restored != nil) {
        preconditionFailure("verify \(verified == nil ? "failed" : "succeeded") but restore \(restored == nil ? "failed" : "succeeded")")
    }
    if verified != nil {
        guard let metadata else {
            preconditionFailure("verify succeeded but readMetadata failed")
        }
        precondition(metadata.header == verified!.header, "readMetadata and verify disagree on the header")
        precondition(restored!.totalSize == metadata.header.fileSize, "restored size \(restored!.totalSize) != fileSize \(metadata.header.fileSize)")
    }
    restored?.destroy()

    // The same bytes as a stream.
    if size <= Int(pipeCapacity) {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            defer { close(fds[0]) }
            let got = fcntl(fds[1], setPipeSize, pipeCapacity)
            if got >= Int32(size) {
                writeAll(fds[1], input)
                close(fds[1])
                let streamed = try? MemoryFile.restore(from: .descriptor(fds[0]), options: options)
                if (streamed != nil) != (verified != nil) {
                    preconditionFailure("restore from a file \(verified == nil ? "failed" : "succeeded") but from a pipe \(streamed == nil ? "failed" : "succeeded")")
                }
                streamed?.destroy()
            } else {
                close(fds[1])
            }
        }
    }
    return 0
}

private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 && errno == EINTR {
            continue
        }
        precondition(n > 0, "write failed: errno \(errno)")
        done += n
    }
}
