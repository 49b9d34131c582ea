#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import XCTest

/// pgsnap with `s3://BUCKET/KEY` checkpoints, against the test server
/// (moto with signature checking): the same results and JSON as with a
/// file, and the documented exit statuses and one-line errors.
final class ObjectStoreCLITests: XCTestCase {
    private var dir: Scratch!
    private var server: S3TestServer!
    private var bucket = ""

    override func setUpWithError() throws {
        server = try S3TestServer.require()
        dir = try Scratch(name)
        bucket = try server.makeBucket(name)
        try SparseImage.reference().write(to: dir.path("src.img"))
    }

    override func tearDown() {
        dir = nil
    }

    private func run(_ arguments: [String], environment: [String: String]? = nil) throws -> PGSnap.Result {
        var env = environment ?? server.awsEnvironment()
        env["SOURCE_DATE_EPOCH"] = "1764514800"
        env["AWS_MAX_ATTEMPTS"] = env["AWS_MAX_ATTEMPTS"] ?? "3"
        return try PGSnap.run(arguments, in: dir.url, environment: env)
    }

    /// save, inspect, verify and restore through the store give what they
    /// give through a file, JSON included; the object is the file.
    func testRoundTripAndJSONMatchALocalFile() throws {
        let object = "s3://\(bucket)/dir/ck.pgsnap"
        for (name, checkpoint) in [("local", "ck.pgsnap"), ("s3", object)] {
            let save = try run(["save", "src.img", checkpoint, "--frame-size", "64KiB", "--json"])
            XCTAssertEqual(save.status, 0, save.stderr)
            try save.stdout.write(to: dir.url.appendingPathComponent("save-\(name).json"))
            XCTAssertTrue(save.stderr.hasPrefix("saved src.img to \(checkpoint): "), save.stderr)
            for command in ["inspect", "verify"] {
                let r = try run([command, checkpoint, "--json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                try r.stdout.write(to: dir.url.appendingPathComponent("\(command)-\(name).json"))
            }
            let restore = try run(["restore", checkpoint, "out-\(name).img", "--json"])
            XCTAssertEqual(restore.status, 0, restore.stderr)
            try restore.stdout.write(to: dir.url.appendingPathComponent("restore-\(name).json"))
        }
        for command in ["save", "inspect", "verify", "restore"] {
            let local = try Data(contentsOf: dir.url.appendingPathComponent("\(command)-local.json"))
            let remote = try Data(contentsOf: dir.url.appendingPathComponent("\(command)-s3.json"))
            XCTAssertEqual(String(decoding: remote, as: UTF8.self), String(decoding: local, as: UTF8.self), "\(command) --json")
        }
        XCTAssertEqual(try Data(contentsOf: dir.url.appendingPathComponent("out-s3.img")), try Data(contentsOf: dir.url.appendingPathComponent("src.img")))
        try server.get(bucket, "dir/ck.pgsnap", file: dir.path("downloaded"))
        XCTAssertEqual(try Data(contentsOf: dir.url.appendingPathComponent("downloaded")), try Data(contentsOf: dir.url.appendingPathComponent("ck.pgsnap")))
        let text = try run(["inspect", object])
        XCTAssertTrue(text.stdoutText.hasPrefix("checkpoint        \(object)\n"), text.stdoutText)
    }

    /// One line on stderr, nothing on stdout, and the status.
    private func assertFailure(
        _ arguments: [String], environment: [String: String]? = nil, status: Int32, contains: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let r = try run(arguments, environment: environment)
        XCTAssertEqual(r.status, status, "\(arguments): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "\(arguments): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stdout.count, 0, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(contains), "\(arguments): \(r.stderr) should contain \(contains)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains(server.secretAccessKey), "a secret in a message", file: file, line: line)
    }

    func testExitStatuses() throws {
        let object = "s3://\(bucket)/ck.pgsnap"
        XCTAssertEqual(try run(["save", "src.img", object]).status, 0)
        // 74: no such key, no such bucket.
        try assertFailure(
            ["restore", "s3://\(bucket)/missing", "out.img"], status: 74,
            contains: "pgsnap: restore s3://\(bucket)/missing to out.img: s3://\(bucket)/missing: GetObject: HTTP 404 NoSuchKey: ")
        try assertFailure(["inspect", "s3://\(bucket)-none/ck"], status: 74, contains: "HTTP 404 NoSuchBucket")
        try assertFailure(["save", "src.img", "s3://\(bucket)-none/ck"], status: 74, contains: "HTTP 404 NoSuchBucket")
        // 77: wrong secret, unknown key, no credentials.
        var wrong = server.awsEnvironment()
        wrong["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        try assertFailure(["verify", object], environment: wrong, status: 77, contains: "HTTP 403 SignatureDoesNotMatch")
        try assertFailure(["save", "src.img", "s3://\(bucket)/other"], environment: wrong, status: 77, contains: "HTTP 403")
        XCTAssertFalse(try server.exists(bucket, "other"))
        var unknown = server.awsEnvironment()
        unknown["AWS_ACCESS_KEY_ID"] = "AKIAUNKNOWNKEY000000"
        try assertFailure(["inspect", object], environment: unknown, status: 77, contains: "InvalidAccessKeyId")
        var none = server.awsEnvironment()
        none["AWS_ACCESS_KEY_ID"] = ""
        none["AWS_SECRET_ACCESS_KEY"] = ""
        try assertFailure(["inspect", object], environment: none, status: 77, contains: "no credentials were given")
        // The session token of temporary credentials, and a wrong one.
        if let session = server.session {
            var temporary = server.awsEnvironment()
            temporary["AWS_ACCESS_KEY_ID"] = session.accessKeyID
            temporary["AWS_SECRET_ACCESS_KEY"] = session.secretAccessKey
            temporary["AWS_SESSION_TOKEN"] = session.token
            let r = try run(["inspect", object, "--json"], environment: temporary)
            XCTAssertEqual(r.status, 0, r.stderr)
            temporary["AWS_SESSION_TOKEN"] = "x" + session.token.dropFirst()
            try assertFailure(["inspect", object], environment: temporary, status: 77, contains: "InvalidToken")
        }
        // 75: nobody listens.
        var closed = server.awsEnvironment()
        closed["AWS_ENDPOINT_URL"] = "http://127.0.0.1:\(try server.freePort())"
        closed["AWS_MAX_ATTEMPTS"] = "2"
        try assertFailure(["restore", object, "out.img"], environment: closed, status: 75, contains: "GetObject: no answer")
        // 78: an endpoint that is no URL.
        var malformed = server.awsEnvironment()
        malformed["AWS_ENDPOINT_URL"] = "ftp://127.0.0.1"
        try assertFailure(["inspect", object], environment: malformed, status: 78, contains: "endpoint")
        // 64: an s3:// location without a key.
        try assertFailure(["inspect", "s3://\(bucket)"], status: 64, contains: "s3://BUCKET/KEY")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out.img")))
    }
}
