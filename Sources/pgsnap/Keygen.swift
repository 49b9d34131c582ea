#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint
import Crypto

/// `pgsnap keygen NAME`: a new key pair (or symmetric key) in key files.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a new signing key pair, encryption key pair or symmetric key in key files.",
        discussion: """
            Writes the private key to NAME (created with mode 0600; a file that \
            exists is never replaced) and the public key to NAME.pub. By default an \
            Ed25519 signing pair: save --sign NAME signs checkpoints, and \
            restore/verify --trust NAME.pub requires that signature. With \
            --encryption, an X25519 pair: save --encrypt-to NAME.pub encrypts to it, \
            and --identity NAME opens what was encrypted to it. With --symmetric, one \
            256-bit key in NAME (no NAME.pub), for save --encrypt-key NAME and for \
            opening. Prints the key's fingerprint, which checkpoints and inspect show. \
            The file formats are in docs/CLI.md.
            """)

    @Argument(help: ArgumentHelp("The private key's file; the public key goes to NAME.pub.", valueName: "name"))
    var name: String

    @Flag(help: "Make an X25519 key pair for encryption instead of an Ed25519 signing pair.")
    var encryption = false

    @Flag(help: "Make one 256-bit symmetric key instead of a key pair.")
    var symmetric = false

    @OptionGroup
    var outputOptions: OutputOptions

    func validate() throws {
        if encryption && symmetric {
            throw ValidationError("give --encryption or --symmetric, not both")
        }
        if name == "-" {
            throw ValidationError("NAME must be a path: keys are not written to stdout")
        }
    }

    func run() throws {
        let (kind, fingerprint, files) = try perform(Subject("keygen \(name)")) { try write() }
        if outputOptions.json {
            print(JSON.object([
                "fingerprint": .string(fingerprint.description),
                "kind": .string(kind),
                "privateKey": .string(files[0]),
                "publicKey": files.count > 1 ? .string(files[1]) : .number("null"),
            ]).rendered, terminator: "")
        }
        if !outputOptions.quiet {
            printError("wrote \(files.joined(separator: " and ")): \(fingerprint)")
        }
    }

    /// Writes the key files; returns the kind, the fingerprint and the
    /// files written, the private one first.
    private func write() throws -> (String, KeyFingerprint, [String]) {
        let pub = name + ".pub"
        if symmetric {
            let key = SymmetricKey(size: .bits256)
            try KeyFiles.create(name, text: CheckpointKeyFile.encode(.symmetric, key), mode: 0o600)
            return ("symmetric", KeyFingerprint(key), [name])
        }
        // Both names are checked first, so that an existing NAME.pub does
        // not leave a new private key behind.
        var st = stat()
        if lstat(pub, &st) == 0 {
            throw KeyFiles.Problem("\(pub) exists: keygen never replaces a file")
        }
        if encryption {
            let key = Curve25519.KeyAgreement.PrivateKey()
            try KeyFiles.create(name, text: CheckpointKeyFile.encode(.encryptionPrivate, key.rawRepresentation), mode: 0o600)
            try createPublic(pub, CheckpointKeyFile.encode(.encryptionPublic, key.publicKey.rawRepresentation))
            return ("x25519", KeyFingerprint(key.publicKey), [name, pub])
        }
        let key = Curve25519.Signing.PrivateKey()
        try KeyFiles.create(name, text: CheckpointKeyFile.encode(.signingPrivate, key.rawRepresentation), mode: 0o600)
        try createPublic(pub, CheckpointKeyFile.encode(.signingPublic, key.publicKey.rawRepresentation))
        return ("ed25519", KeyFingerprint(key.publicKey), [name, pub])
    }

    private func createPublic(_ path: String, _ text: String) throws {
        do {
            try KeyFiles.create(path, text: text, mode: 0o644)
        } catch {
            unlink(name)
            throw error
        }
    }
}
