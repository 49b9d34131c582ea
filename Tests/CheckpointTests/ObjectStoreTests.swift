import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads
import CLinuxShim

/// Checkpoints in an S3-compatible store: moto with signature checking,
/// started by scripts/test.sh, and a fault proxy in front of it. What is on
/// the server is checked with boto3 (`S3TestServer`), not with pgsnap's
/// own client.
final class ObjectStoreTests: XCTestCase {
    /// The server's configuration, with quick retries and the smallest
    /// parts S3 allows (so that a few MiB make several parts).
    func configuration(
        _ server: S3TestServer, endpoint: String? = nil, viaProxy: Bool = false, attempts: Int = 5, secret: String? = nil
    ) -> S3Configuration {
        var c = S3Configuration(
            credentials: S3Credentials(accessKeyID: server.accessKeyID, secretAccessKey: secret ?? server.secretAccessKey),
            region: "us-east-1", endpoint: endpoint ?? (viaProxy ? server.proxy : server.endpoint))
        c.retry = S3RetryPolicy(maxAttempts: attempts, baseDelay: 0.02, maxDelay: 0.2)
        c.partSize = S3Configuration.minimumPartSize
        c.readBlockSize = 2 << 20
        c.suffixLength = 256 << 10
        return c
    }

    func object(_ bucket: String, _ key: String, _ configuration: S3Configuration) throws -> CheckpointLocation {
        .object(try ObjectLocation(bucket: bucket, key: key, configuration: configuration))
    }

    /// A W-save raw image (64 MiB, 16 MiB written: a quarter of the pages
    /// incompressible), whose checkpoint is about 10 MiB: two parts.
    func makeImage(
        _ dir: ScratchDirectory, allocated: UInt64 = 64 << 20, touched: UInt64 = 16 << 20, name: String = "image"
    ) throws -> String {
        let path = dir.path(name)
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        try WSave.writeImage(fd: fd, WSave.Layout(allocated: allocated, touched: touched))
        return path
    }

    func contents(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// `body` must throw an `ObjectStoreError` of `kind`; returns it.
    @discardableResult
    func assertStoreError(
        _ kind: ObjectStoreError.Kind, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
    ) -> ObjectStoreError? {
        do {
            try body()
            XCTFail("no error; expected \(kind)", file: file, line: line)
        } catch let error as ObjectStoreError {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            return error
        } catch {
            XCTFail("expected ObjectStoreError.\(kind), got \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: Round trips

    /// A raw image saved to the store is byte for byte the checkpoint saved
    /// to a file; it restores, verifies and inspects as the file does.
    func testRawImageRoundTripMatchesLocalFile() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, touched: 32 << 20)
        let bucket = try server.makeBucket()
        let config = configuration(server)
        let local = try RawImage.save(source: image, to: .path(dir.path("local.pgsnap")))
        let remote = try RawImage.save(source: image, to: try object(bucket, "images/one.pgsnap", config))
        XCTAssertEqual(remote, local)
        XCTAssertGreaterThan(remote.checkpointBytes, UInt64(S3Configuration.minimumPartSize), "a multipart upload")
        try server.get(bucket, "images/one.pgsnap", file: dir.path("downloaded"))
        XCTAssertEqual(try contents(dir.path("downloaded")), try contents(dir.path("local.pgsnap")), "the object is the checkpoint")
        XCTAssertEqual(try server.incompleteUploads(bucket), [])

        let restored = try RawImage.restore(from: try object(bucket, "images/one.pgsnap", config), toImage: dir.path("restored"))
        XCTAssertEqual(try contents(dir.path("restored")), try contents(image))
        XCTAssertEqual(restored.totals.storedBytes, local.storedBytes)
        let verified = try CheckpointReader.verify(try object(bucket, "images/one.pgsnap", config))
        XCTAssertEqual(verified.totals.frameCount, local.frames)
        let inspected = try CheckpointReader.readMetadata(from: try object(bucket, "images/one.pgsnap", config), includeFrames: true)
        let inspectedLocal = try CheckpointReader.readMetadata(from: .path(dir.path("local.pgsnap")), includeFrames: true)
        XCTAssertEqual(inspected.frames, inspectedLocal.frames)
        XCTAssertEqual(inspected.checkpointLength, inspectedLocal.checkpointLength)
    }

    /// A checkpoint smaller than one part goes up in one PutObject.
    func testSmallCheckpointIsOnePut() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, allocated: 64 << 20, touched: 1 << 20)
        let bucket = try server.makeBucket()
        try server.clearFaults()
        let report = try RawImage.save(source: image, to: try object(bucket, "small", configuration(server, viaProxy: true)))
        XCTAssertLessThan(report.checkpointBytes, UInt64(S3Configuration.minimumPartSize))
        XCTAssertEqual(try server.faultLog().map(\.request), ["PUT /\(bucket)/small"])
        _ = try RawImage.restore(from: try object(bucket, "small", configuration(server)), toImage: dir.path("restored"))
        XCTAssertEqual(try contents(dir.path("restored")), try contents(image))
    }

    /// A MemoryFile saved to the store and restored from it, eagerly and
    /// lazily, is the file saved: pages, segments, accounting.
    func testMemoryFileRoundTripEagerAndLazy() throws {
        let server = try S3TestServer.require()
        let bucket = try server.makeBucket()
        let config = configuration(server)
        let layout = WSave.Layout(allocated: 128 << 20, touched: 32 << 20)
        let file = try MemoryFile()
        defer { file.destroy() }
        let ranges = try WSave.populate(file, layout)
        try file.updateUsage()
        var options = SaveOptions()
        options.frameSize = 1 << 20
        let report = try file.save(to: try object(bucket, "memory", config), options: options)
        XCTAssertGreaterThan(report.frames, 8)

        let eager = try MemoryFile.restore(from: try object(bucket, "memory", config))
        defer { eager.destroy() }
        XCTAssertEqual(try WSave.verify(fd: eager.fileDescriptor, ranges: ranges, layout), 0)
        XCTAssertEqual(eager.description, file.description)
        XCTAssertEqual(eager.accounting.snapshot(), file.accounting.snapshot())

        var lazy = LazyRestoreOptions()
        lazy.withoutUserfaultfd = .apiOnly
        var restoreOptions = RestoreOptions()
        restoreOptions.mode = .lazy(lazy)
        let lazyFile = try MemoryFile.restore(from: try object(bucket, "memory", config), options: restoreOptions)
        defer { lazyFile.destroy() }
        try lazyFile.waitUntilLoaded()
        XCTAssertEqual(try WSave.verify(fd: lazyFile.fileDescriptor, ranges: ranges, layout), 0)
        XCTAssertEqual(lazyFile.description, file.description)
    }

    /// An incremental chain in the store: the child records its parent's
    /// key relative to its own and finds it there, eagerly and lazily.
    func testIncrementalChainInTheStore() throws {
        let server = try S3TestServer.require()
        let bucket = try server.makeBucket()
        let config = configuration(server)
        let layout = WSave.Layout(allocated: 64 << 20, touched: 16 << 20)
        let file = try MemoryFile()
        defer { file.destroy() }
        let ranges = try WSave.populate(file, layout)
        try file.updateUsage()
        var options = SaveOptions()
        options.frameSize = 1 << 20
        _ = try file.save(to: try object(bucket, "vm/base", config), options: options)
        let rewritten = try WSave.rewrite(file, ranges: ranges, layout, share: 0.01, seed: 9)
        let child = try file.save(to: try object(bucket, "vm/child", config), parent: try object(bucket, "vm/base", config), options: options)
        XCTAssertEqual(child.parent?.path, "base")
        XCTAssertEqual(child.storedBytes, UInt64(rewritten.count) * 4096)

        let eager = try MemoryFile.restore(from: try object(bucket, "vm/child", config))
        defer { eager.destroy() }
        XCTAssertEqual(try WSave.verify(fd: eager.fileDescriptor, ranges: ranges, layout, rewritten: (Set(rewritten), 9)), 0)
        var lazy = LazyRestoreOptions()
        lazy.withoutUserfaultfd = .apiOnly
        var restoreOptions = RestoreOptions()
        restoreOptions.mode = .lazy(lazy)
        let lazyFile = try MemoryFile.restore(from: try object(bucket, "vm/child", config), options: restoreOptions)
        defer { lazyFile.destroy() }
        try lazyFile.waitUntilLoaded()
        XCTAssertEqual(try WSave.verify(fd: lazyFile.fileDescriptor, ranges: ranges, layout, rewritten: (Set(rewritten), 9)), 0)
        let chain = try CheckpointReader.chain(of: try object(bucket, "vm/child", config))
        XCTAssertEqual(chain.map(\.path), ["s3://\(bucket)/vm/child", "s3://\(bucket)/vm/base"])
    }

    /// A signed and encrypted chain in the store: every frame fetched by
    /// ranged reads (a parent's too, for its referenced pages) is checked
    /// against its signed digest and opened, eagerly and lazily; without
    /// the keys, or trusting another signer, it is refused.
    func testSignedEncryptedChainInTheStore() throws {
        let server = try S3TestServer.require()
        let bucket = try server.makeBucket()
        let config = configuration(server)
        let layout = WSave.Layout(allocated: 64 << 20, touched: 16 << 20)
        let file = try MemoryFile()
        defer { file.destroy() }
        let ranges = try WSave.populate(file, layout)
        try file.updateUsage()
        let options = securedOptions(recipients: [.publicKey(TestKeys.recipient.publicKey)], frameSize: 1 << 20)
        _ = try file.save(to: try object(bucket, "secure/base", config), options: options)
        let rewritten = try WSave.rewrite(file, ranges: ranges, layout, share: 0.01, seed: 11)
        assertThrows(CheckpointEncryptionError.self, "a save against the encrypted parent without its key") {
            try file.save(to: try object(bucket, "secure/child", config), parent: try object(bucket, "secure/base", config), options: options)
        }
        let child = try file.save(
            to: try object(bucket, "secure/child", config), parent: try object(bucket, "secure/base", config), parentKeys: TestKeys.all,
            options: options)
        XCTAssertGreaterThan(child.referencedBytes, 0)

        let leaf = try object(bucket, "secure/child", config)
        let eager = try MemoryFile.restore(from: leaf, options: restoreOptions(TestKeys.all))
        defer { eager.destroy() }
        XCTAssertEqual(try WSave.verify(fd: eager.fileDescriptor, ranges: ranges, layout, rewritten: (Set(rewritten), 11)), 0)
        var lazy = LazyRestoreOptions()
        lazy.withoutUserfaultfd = .apiOnly
        var lazyOptions = restoreOptions(TestKeys.all)
        lazyOptions.mode = .lazy(lazy)
        let lazyFile = try MemoryFile.restore(from: leaf, options: lazyOptions)
        defer { lazyFile.destroy() }
        try lazyFile.waitUntilLoaded()
        XCTAssertEqual(try WSave.verify(fd: lazyFile.fileDescriptor, ranges: ranges, layout, rewritten: (Set(rewritten), 11)), 0)
        _ = try CheckpointReader.verify(leaf, options: restoreOptions(TestKeys.all))

        assertThrows(CheckpointEncryptionError.self, "no key") { try MemoryFile.restore(from: leaf) }
        var otherSigner = TestKeys.all
        otherSigner.trustedSigners = [TestKeys.otherSigner.publicKey]
        assertThrows(CheckpointSignatureError.self, "another signer trusted") {
            try MemoryFile.restore(from: leaf, options: restoreOptions(otherSigner))
        }
    }

    /// A lazy restore from the store loads only the frame a page needs when
    /// nothing else is loading: that frame is fetched at once, before any
    /// other.
    func testLazyRestoreFetchesTheNeededFrameFirst() throws {
        let server = try S3TestServer.require()
        let bucket = try server.makeBucket()
        let layout = WSave.Layout(allocated: 128 << 20, touched: 32 << 20)
        let file = try MemoryFile()
        defer { file.destroy() }
        let ranges = try WSave.populate(file, layout)
        try file.updateUsage()
        var options = SaveOptions()
        options.frameSize = 1 << 20
        _ = try file.save(to: try object(bucket, "lazy", configuration(server)), options: options)

        var lazy = LazyRestoreOptions()
        lazy.backgroundLoading = false
        lazy.withoutUserfaultfd = .apiOnly
        var restoreOptions = RestoreOptions()
        restoreOptions.mode = .lazy(lazy)
        try server.clearFaults()
        let restored = try MemoryFile.restore(from: try object(bucket, "lazy", configuration(server, viaProxy: true)), options: restoreOptions)
        defer { restored.destroy() }
        let before = try server.faultLog().count
        XCTAssertEqual(try XCTUnwrap(restored.loadProgress).framesDone, 0)
        // A written page of the last range.
        let page = ranges[1].start + 40 * layout.stride * 4096
        let expected = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { expected.deallocate() }
        WSave.fillPage(expected, WSave.pagesPerRange + 40 * layout.stride)
        try restored.forEachMappedSlice(FileRange(start: page, end: page + 4096)) { slice in
            XCTAssertEqual(memcmp(slice.baseAddress!, expected, 4096), 0)
        }
        XCTAssertEqual(try XCTUnwrap(restored.loadProgress).framesDone, 1)
        let fetched = try server.faultLog().dropFirst(before)
        XCTAssertEqual(fetched.count, 1, "one ranged GET for one page's frame: \(Array(fetched))")
        try restored.waitUntilLoaded()
        XCTAssertEqual(try WSave.verify(fd: restored.fileDescriptor, ranges: ranges, layout), 0)
    }

    // MARK: Faults

    /// 500s, 503s and broken connections on parts and reads are retried:
    /// the object is the checkpoint, the restore correct.
    func testInjectedFailuresAreRetried() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, allocated: 192 << 20, touched: 96 << 20)
        let bucket = try server.makeBucket()
        let config = configuration(server, viaProxy: true)
        let local = try RawImage.save(source: image, to: .path(dir.path("local.pgsnap")))
        XCTAssertGreaterThan(local.checkpointBytes, 4 * UInt64(S3Configuration.minimumPartSize), "at least 5 parts")
        try server.clearFaults()
        try server.addFault(match: "^PUT .*partNumber=2&", action: "500", count: 2)
        try server.addFault(match: "^PUT .*partNumber=3&", action: "503")
        try server.addFault(match: "^PUT .*partNumber=4&", action: "reset")
        try server.addFault(match: "^POST .*uploadId=", action: "500")
        _ = try RawImage.save(source: image, to: try object(bucket, "retried", config))
        let actions = try server.faultLog().map(\.action).filter { !$0.isEmpty }
        XCTAssertEqual(actions.sorted(), ["500", "500", "500", "503", "reset"])
        try server.get(bucket, "retried", file: dir.path("downloaded"))
        XCTAssertEqual(try contents(dir.path("downloaded")), try contents(dir.path("local.pgsnap")))

        try server.clearFaults()
        try server.addFault(match: "^GET ", action: "500")
        try server.addFault(match: "^GET ", action: "reset")
        try server.addFault(match: "^GET ", action: "503")
        _ = try RawImage.restore(from: try object(bucket, "retried", config), toImage: dir.path("restored"))
        XCTAssertEqual(try contents(dir.path("restored")), try contents(image))
        XCTAssertEqual(try server.faultLog().map(\.action).filter { !$0.isEmpty }.count, 3)
        _ = local
    }

    /// A part that keeps failing fails the save after the last attempt; the
    /// upload is aborted: no object, no incomplete upload.
    func testFailedSaveLeavesNothing() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, allocated: 128 << 20, touched: 64 << 20)
        let small = try makeImage(dir, allocated: 64 << 20, touched: 1 << 20, name: "small")
        let bucket = try server.makeBucket()
        try server.clearFaults()
        try server.addFault(match: "^PUT .*partNumber=2&", action: "500", count: 1000)
        let error = assertStoreError(.unavailable) {
            _ = try RawImage.save(source: image, to: try object(bucket, "failed", configuration(server, viaProxy: true, attempts: 3)))
        }
        try server.clearFaults()
        XCTAssertEqual(error?.status, 500)
        XCTAssertEqual(error?.attempts, 3)
        XCTAssertEqual(error?.operation, "UploadPart")
        XCTAssertFalse(try server.exists(bucket, "failed"), "an object appeared after a failed save")
        XCTAssertEqual(try server.incompleteUploads(bucket), [], "the upload was not aborted")

        // One PutObject that keeps failing.
        try server.addFault(match: "^PUT /[^?]*$", action: "503", count: 1000)
        let put = assertStoreError(.unavailable) {
            _ = try RawImage.save(source: small, to: try object(bucket, "small", configuration(server, viaProxy: true, attempts: 2)))
        }
        try server.clearFaults()
        XCTAssertEqual(put?.code, "SlowDown")
        XCTAssertFalse(try server.exists(bucket, "small"))
    }

    /// The server dies in the middle of an upload: the save fails after its
    /// retries, and nothing appears at the key. (The incomplete upload
    /// stays: the store cannot be told to abort it; a bucket lifecycle rule
    /// cleans such uploads up.)
    func testServerKilledDuringUpload() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, allocated: 128 << 20, touched: 64 << 20)
        let bucket = try server.makeBucket()
        let (proxy, process) = try server.startProxy()
        defer { process.terminate() }
        try server.addFault(match: "^PUT .*partNumber=2&", action: "die", at: proxy)
        let started = ContinuousClock.now
        let error = assertStoreError(.unavailable) {
            _ = try RawImage.save(source: image, to: try object(bucket, "killed", configuration(server, endpoint: proxy, attempts: 3)))
        }
        XCTAssertLessThan(started.duration(to: .now), .seconds(30))
        XCTAssertNil(error?.status, "no HTTP answer: \(String(describing: error))")
        XCTAssertFalse(process.isRunning, "the proxy did not die")
        XCTAssertFalse(try server.exists(bucket, "killed"), "an object appeared after the server died")
        XCTAssertEqual(try server.incompleteUploads(bucket), ["killed"])
        try server.abortUploads(bucket)
    }

    /// Every request of a store that refuses connections fails after the
    /// retries, with the transport error named.
    func testUnreachableStore() throws {
        let server = try S3TestServer.require()
        let port = try server.freePort()
        let error = assertStoreError(.unavailable) {
            _ = try CheckpointReader.readMetadata(
                from: try object("bucket", "key", configuration(server, endpoint: "http://127.0.0.1:\(port)", attempts: 2)))
        }
        XCTAssertEqual(error?.attempts, 2)
        XCTAssertTrue(error?.description.contains("s3://bucket/key: GetObject: no answer") == true, "\(String(describing: error))")
    }

    // MARK: Refusals

    func testWrongCredentials() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, touched: 1 << 20)
        let bucket = try server.makeBucket()
        let good = configuration(server)
        _ = try RawImage.save(source: image, to: try object(bucket, "c", good))
        let wrong = configuration(server, secret: "wrong" + server.secretAccessKey.dropFirst(5))
        let read = assertStoreError(.accessDenied) {
            _ = try CheckpointReader.readMetadata(from: try object(bucket, "c", wrong))
        }
        XCTAssertEqual(read?.status, 403)
        XCTAssertEqual(read?.code, "SignatureDoesNotMatch")
        XCTAssertFalse(read?.description.contains(server.secretAccessKey) ?? true)
        let write = assertStoreError(.accessDenied) {
            _ = try RawImage.save(source: image, to: try object(bucket, "d", wrong))
        }
        XCTAssertEqual(write?.status, 403)
        XCTAssertFalse(try server.exists(bucket, "d"))
        var unknown = good
        unknown.credentials?.accessKeyID = "AKIAUNKNOWNKEY000000"
        let key = assertStoreError(.accessDenied) {
            _ = try CheckpointReader.readMetadata(from: try object(bucket, "c", unknown))
        }
        XCTAssertEqual(key?.code, "InvalidAccessKeyId")
    }

    /// Temporary credentials (an assumed role): the session token is sent
    /// and signed; a wrong one is refused.
    func testSessionToken() throws {
        let server = try S3TestServer.require()
        let session = try XCTUnwrap(server.session, "server.py gives an assumed role's credentials")
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, touched: 1 << 20)
        let bucket = try server.makeBucket()
        var config = configuration(server)
        config.credentials = S3Credentials(accessKeyID: session.accessKeyID, secretAccessKey: session.secretAccessKey, sessionToken: session.token)
        _ = try RawImage.save(source: image, to: try object(bucket, "c", config))
        _ = try RawImage.restore(from: try object(bucket, "c", config), toImage: dir.path("restored"))
        XCTAssertEqual(try contents(dir.path("restored")), try contents(image))
        config.credentials?.sessionToken = "x" + session.token.dropFirst()
        let refused = assertStoreError(.accessDenied) {
            _ = try CheckpointReader.readMetadata(from: try object(bucket, "c", config))
        }
        XCTAssertEqual(refused?.code, "InvalidToken")
        XCTAssertFalse(refused?.description.contains(session.token.dropFirst()) ?? true)
        config.credentials?.sessionToken = nil
        assertStoreError(.accessDenied) {
            _ = try CheckpointReader.readMetadata(from: try object(bucket, "c", config))
        }
    }

    func testMissingBucketAndKey() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, touched: 1 << 20)
        let bucket = try server.makeBucket()
        let config = configuration(server)
        let key = assertStoreError(.notFound) {
            _ = try MemoryFile.restore(from: try object(bucket, "missing/key", config))
        }
        XCTAssertEqual(key?.status, 404)
        XCTAssertEqual(key?.code, "NoSuchKey")
        XCTAssertEqual(key?.description.hasPrefix("s3://\(bucket)/missing/key: GetObject: HTTP 404 NoSuchKey"), true)
        let missingBucket = bucket + "-missing"
        let read = assertStoreError(.notFound) {
            _ = try CheckpointReader.verify(try object(missingBucket, "k", config))
        }
        XCTAssertEqual(read?.code, "NoSuchBucket")
        let write = assertStoreError(.notFound) {
            _ = try RawImage.save(source: image, to: try object(missingBucket, "k", config))
        }
        XCTAssertEqual(write?.code, "NoSuchBucket")
    }

    // MARK: A replaced object

    /// Reads carry the ETag of the first one: an object replaced after the
    /// restore started fails it (412), in every reader.
    func testObjectReplacedDuringRestore() throws {
        let server = try S3TestServer.require()
        let dir = try ScratchDirectory(for: self)
        let image = try makeImage(dir, touched: 32 << 20)
        let other = dir.path("other")
        let bucket = try server.makeBucket()
        let config = configuration(server)
        _ = try RawImage.save(source: image, to: try object(bucket, "c", config))
        _ = try RawImage.save(source: image, to: .path(other), options: { var o = SaveOptions(); o.level = 3; return o }())

        // A random-access read after the replacement.
        let input = try ObjectInput(ObjectLocation(bucket: bucket, key: "c", configuration: config))
        try server.put(bucket, "c", file: other)
        let direct = assertStoreError(.changed) {
            _ = try input.read(at: 0, count: 4096, section: .header)
        }
        XCTAssertEqual(direct?.status, 412)

        // An eager restore whose third read is held back while the object
        // is replaced.
        _ = try RawImage.save(source: image, to: try object(bucket, "c", config))
        try server.clearFaults()
        try server.addFault(match: "^GET ", action: "pass", count: 2)
        try server.addFault(match: "^GET ", action: "delay:3")
        let replacer = Thread {
            usleep(300_000)
            try? server.put(bucket, "c", file: other)
        }
        replacer.start()
        let eager = assertStoreError(.changed) {
            _ = try RawImage.restore(from: try object(bucket, "c", configuration(server, viaProxy: true)), toImage: dir.path("restored"))
        }
        XCTAssertEqual(eager?.status, 412)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("restored")), "a half-restored image was left")
        try server.clearFaults()

        // A lazy restore whose frames are fetched after the replacement:
        // the frames fail, and so does waiting for them.
        _ = try RawImage.save(source: image, to: try object(bucket, "c", config))
        var lazy = LazyRestoreOptions()
        lazy.backgroundLoading = false
        lazy.withoutUserfaultfd = .apiOnly
        var options = RestoreOptions()
        options.mode = .lazy(lazy)
        let restored = try MemoryFile.restore(from: try object(bucket, "c", config), options: options)
        defer { restored.destroy() }
        try server.put(bucket, "c", file: other)
        assertStoreError(.changed) {
            try restored.waitUntilLoaded()
        }
    }

    // MARK: Configuration

    func testLocationParsing() throws {
        let location = try XCTUnwrap(try ObjectLocation.parse("s3://my-bucket/dir/sub/key.pgsnap"))
        XCTAssertEqual(location.bucket, "my-bucket")
        XCTAssertEqual(location.key, "dir/sub/key.pgsnap")
        XCTAssertEqual(location.description, "s3://my-bucket/dir/sub/key.pgsnap")
        XCTAssertNil(try ObjectLocation.parse("/tmp/x"))
        XCTAssertEqual(try CheckpointLocation.parse("s3://b-1/k"), .object(try ObjectLocation(bucket: "b-1", key: "k")))
        XCTAssertEqual(try CheckpointLocation.parse("s3.pgsnap"), .path("s3.pgsnap"))
        for bad in ["s3://bucket", "s3://bucket/", "s3://b/key", "s3:///key", "s3://bad bucket/k", "s3://bucket/a/../b", "s3://bucket/./b"] {
            XCTAssertThrowsError(try ObjectLocation.parse(bad), bad) { error in
                XCTAssertTrue(error is CheckpointUsageError, "\(bad): \(error)")
            }
        }
    }

    func testConfigurationFromEnvironment() throws {
        let c = try S3Configuration.fromEnvironment([
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET/+x", "AWS_SESSION_TOKEN": "TOKEN",
            "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_ENDPOINT_URL_S3": "http://localhost:9001",
            "AWS_MAX_ATTEMPTS": "7",
        ])
        XCTAssertEqual(c.credentials, S3Credentials(accessKeyID: "AKID", secretAccessKey: "SECRET/+x", sessionToken: "TOKEN"))
        XCTAssertEqual(c.region, "eu-west-1")
        XCTAssertEqual(c.endpoint, "http://localhost:9001", "AWS_ENDPOINT_URL_S3 wins")
        XCTAssertEqual(c.retry.maxAttempts, 7)
        XCTAssertEqual(try S3Configuration.fromEnvironment(["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"]).region, "us-west-2")
        XCTAssertNil(try S3Configuration.fromEnvironment([:]).credentials)
        for description in [c.description, "\(c.credentials!)", String(reflecting: c.credentials!)] {
            XCTAssertFalse(description.contains("SECRET") || description.contains("TOKEN") || description.contains("AKID"), description)
        }
        let bad: [[String: String]] = [
            ["AWS_ACCESS_KEY_ID": "AKID"], ["AWS_SECRET_ACCESS_KEY": "S"], ["AWS_ENDPOINT_URL": "ftp://host"],
            ["AWS_ENDPOINT_URL": "http://user:password@host"], ["AWS_MAX_ATTEMPTS": "0"],
        ]
        for env in bad {
            XCTAssertThrowsError(try S3Configuration.fromEnvironment(env), "\(env)") { error in
                XCTAssertEqual((error as? ObjectStoreError)?.kind, .configuration)
                XCTAssertFalse("\(error)".contains("password"), "\(error)")
            }
        }
    }

    func testAddressing() throws {
        let custom = try S3Client(configuration: S3Configuration(endpoint: "http://127.0.0.1:9000/base/"))
        XCTAssertEqual(custom.url(bucket: "b", key: "dir/a b+c", query: ""), "http://127.0.0.1:9000/base/b/dir/a%20b%2Bc")
        XCTAssertEqual(custom.url(bucket: "b", key: "k", query: "uploads="), "http://127.0.0.1:9000/base/b/k?uploads=")
        XCTAssertEqual(custom.url(bucket: "b", key: nil, query: ""), "http://127.0.0.1:9000/base/b")
        let aws = try S3Client(configuration: S3Configuration(region: "eu-central-1"))
        XCTAssertEqual(aws.url(bucket: "bucket", key: "k~x", query: ""), "https://bucket.s3.eu-central-1.amazonaws.com/k~x")
        XCTAssertEqual(aws.url(bucket: "dotted.bucket", key: "k", query: ""), "https://s3.eu-central-1.amazonaws.com/dotted.bucket/k")
        XCTAssertEqual(S3Client.percentEncode("a/b=c&d", keepSlash: false), "a%2Fb%3Dc%26d")
    }

    func testXMLValues() {
        let xml = S3XML(Array("<Error><Code>NoSuchKey</Code><Message>a &amp; b &lt;c&gt; &#65;&#x42;</Message></Error>".utf8))
        XCTAssertEqual(xml.value(of: "Code"), "NoSuchKey")
        XCTAssertEqual(xml.value(of: "Message"), "a & b <c> AB")
        XCTAssertTrue(xml.isError)
        XCTAssertNil(xml.value(of: "UploadId"))
        XCTAssertNil(S3XML(Array("<Code>unterminated".utf8)).value(of: "Code"))
        XCTAssertEqual(S3XML.escape("\"etag\"&"), "&quot;etag&quot;&amp;")
    }
}
