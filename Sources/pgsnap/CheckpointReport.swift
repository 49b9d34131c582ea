import Checkpoint
import PGAlloc

/// What `pgsnap inspect` says about a checkpoint, as text for people and
/// as JSON for scripts.
struct CheckpointReport {
    let metadata: CheckpointMetadata
    /// Checkpoint offset of each frame record.
    let frameOffsets: [UInt64]
    /// The keys `--trust` gave, if any: the report says whether they trust
    /// the signature.
    let trust: CheckpointKeys?
    /// The checkpoint (link 0, with its identity) and its parents, when
    /// read from a file.
    var chain: [ChainLinkDescription]?

    init(_ metadata: CheckpointMetadata, trust: CheckpointKeys? = nil) {
        self.metadata = metadata
        frameOffsets = metadata.index.map(\.offset)
        self.trust = trust
    }

    var security: CheckpointSecurity { metadata.security }

    /// The identity: as the scan computed it, or as the chain's reader
    /// did (a scan that read the page hashes in part computes none).
    var identity: CheckpointIdentity? { security.identity ?? chain?.first?.identity }

    /// Version 2: the identity, signature and encryption rows of the text.
    var securityRows: [(String, String)] {
        guard header.version >= 2 else { return [] }
        let encryption: String
        if security.isEncrypted {
            encryption = "AES-256-GCM, to " + security.recipients.map(\.description).joined(separator: ", ")
        } else {
            encryption = "none"
        }
        return [("identity", identity?.description ?? "-"), ("signature", signatureText), ("encryption", encryption)]
    }

    /// The signature, for people: its signer, whether it is valid and (with
    /// `--trust`) trusted.
    var signatureText: String {
        guard let signature = security.signature else { return "none" }
        var text = "by \(signature.fingerprint), \(signature.isValid ? "valid" : "INVALID: the checkpoint does not match it")"
        if let trust {
            text += signature.isTrusted(by: trust) ? ", trusted" : ", NOT trusted"
        }
        return text
    }

    var header: CheckpointHeader { metadata.header }
    var totals: IndexTotals { metadata.totals }

    /// Bytes of segments with references (freed pages awaiting reclaim,
    /// which have none, are not allocated).
    var allocatedBytes: UInt64 {
        metadata.segments.reduce(0) { $0 + ($1.refs > 0 ? $1.range.length : 0) }
    }

    /// Stored bytes per checkpoint byte.
    var compressionRatio: Double {
        ratio(totals.storedBytes, metadata.checkpointLength)
    }

    // MARK: JSON

    func json(includeSegments: Bool) -> String {
        var members: [String: JSON] = [
            "accounting": .kinds(totals.accounting),
            "allocatedBytes": .integer(allocatedBytes),
            "checkpointBytes": .integer(metadata.checkpointLength),
            "compressionRatio": .ratio(compressionRatio),
            "dataSize": .integer(header.dataSize),
            "fileSize": .integer(header.fileSize),
            "formatVersion": .integer(UInt64(header.version)),
            "frameCount": .integer(totals.frameCount),
            "frameLimit": .integer(UInt64(header.frameLimit)),
            "frames": .array(
                zip(metadata.frames, frameOffsets).map { frame, offset in
                    .object([
                        "compressedLength": .integer(UInt64(frame.compressedLength)),
                        "endAddress": .integer(frame.runs.last?.end ?? 0),
                        "firstAddress": .integer(frame.runs.first?.start ?? 0),
                        "headerLength": .integer(UInt64(frame.headerLength)),
                        "offset": .integer(offset),
                        "runCount": .integer(UInt64(frame.runs.count)),
                        "uncompressedLength": .integer(UInt64(frame.uncompressedLength)),
                    ])
                }),
            "segmentCount": .integer(header.segmentCount),
            "storedBytes": .integer(totals.storedBytes),
            "storedPerKind": .kinds(totals.storedPerKind),
        ]
        if includeSegments {
            members["segments"] = .array(
                metadata.segments.map { s in
                    .object([
                        "end": .integer(s.range.end),
                        "kind": .string(s.kind.description),
                        "length": .integer(s.range.length),
                        "refs": .integer(s.refs),
                        "start": .integer(s.range.start),
                    ])
                })
        }
        if header.version >= 2 {
            members["sections"] = .array(
                metadata.sections.map { e in
                    .object([
                        "critical": .bool(e.isCritical),
                        "length": .integer(e.length),
                        "offset": .integer(e.offset),
                        "placement": .string(e.placement.rawValue),
                        "sealed": .bool(e.isSealed),
                        "type": .string(e.type.description),
                    ])
                })
            members["annotations"] = .object(metadata.annotations.mapValues { .string($0) })
            if !metadata.prefetchOrder.isEmpty {
                members["prefetchOrder"] = .array(metadata.prefetchOrder.map { .integer($0) })
            }
            members["referencedBytes"] = .integer(metadata.referencedBytes)
            if let parent = metadata.parent {
                members["parent"] = .parent(parent)
            }
            if let identity {
                members["identity"] = .string(identity.description)
            }
            if let signature = security.signature {
                var fields: [String: JSON] = ["signer": .string(signature.fingerprint.description), "valid": .bool(signature.isValid)]
                if let trust {
                    fields["trusted"] = .bool(signature.isTrusted(by: trust))
                }
                members["signature"] = .object(fields)
            }
            if security.isEncrypted {
                members["encryption"] = .object([
                    "cipher": .string("AES-256-GCM"),
                    "recipients": .array(security.recipients.map { .string($0.description) }),
                ])
            }
            if let chain, chain.count > 1 {
                members["chain"] = .array(
                    chain.map { link in
                        .object([
                            "checkpoint": .string(link.path),
                            "identity": link.identity.map { .string($0.description) } ?? .string(""),
                            "link": .integer(UInt64(link.link)),
                            "referencedBytes": .object(
                                Dictionary(uniqueKeysWithValues: link.referencedBytesByLink.map { (String($0.key), JSON.integer($0.value)) })),
                            "storedBytes": .integer(link.metadata.totals.storedBytes),
                        ])
                    })
            }
        }
        return JSON.object(members).rendered
    }

    // MARK: Text

    func text(name: String, includeSegments: Bool) -> String {
        func sized(_ n: UInt64) -> String {
            n < 1024 ? "\(n) bytes" : "\(humanBytes(n)) (\(n) bytes)"
        }
        var lines: [String] = []
        let rows: [(String, String)] = [
            ("checkpoint", name),
            ("format", "version \(header.version), frame limit \(humanBytes(UInt64(header.frameLimit)))"),
            ("file size", sized(header.fileSize)),
            ("data size", sized(header.dataSize)),
            ("checkpoint bytes", sized(metadata.checkpointLength)),
            ("stored bytes", sized(totals.storedBytes)),
            ("compression", "\(fixed(compressionRatio, digits: 2)) (stored bytes / checkpoint bytes)"),
            ("segments", "\(header.segmentCount), allocated \(sized(allocatedBytes))"),
            ("frames", "\(totals.frameCount)"),
        ] + securityRows
        for (label, value) in rows {
            lines.append(rightPad(label, 18) + value)
        }

        lines.append("")
        lines.append(rightPad("kind", 12) + leftPad("accounted", 14) + leftPad("stored", 14))
        for kind in MemoryKind.allCases {
            lines.append(
                rightPad(kind.description, 12) + leftPad(humanBytes(totals.accounting[kind]), 14)
                    + leftPad(humanBytes(totals.storedPerKind[kind]), 14))
        }
        lines.append(
            rightPad("total", 12) + leftPad(humanBytes(totals.accounting.total), 14)
                + leftPad(humanBytes(totals.storedPerKind.total), 14))

        if header.version >= 2 {
            lines.append("")
            lines.append(rightPad("section", 10) + rightPad("where", 7) + rightPad("kind", 11) + leftPad("offset", 12) + leftPad("bytes", 12))
            for e in metadata.sections {
                lines.append(
                    rightPad(e.type.description, 10) + rightPad(e.placement.rawValue, 7)
                        + rightPad(e.isCritical ? "critical" : "ancillary", 11) + leftPad(String(e.offset), 12)
                        + leftPad(String(e.length), 12) + (e.isSealed ? "  sealed" : ""))
            }
            for key in metadata.annotations.keys.sorted() {
                lines.append(rightPad("  \(key)", 18) + metadata.annotations[key]!)
            }
            if !metadata.prefetchOrder.isEmpty {
                let shown = metadata.prefetchOrder.prefix(16).map(String.init).joined(separator: " ")
                lines.append(
                    rightPad("prefetch order", 18) + "\(metadata.prefetchOrder.count) frames: " + shown
                        + (metadata.prefetchOrder.count > 16 ? " ..." : ""))
            }
            if let chain, chain.count > 1 {
                lines.append("")
                lines.append(rightPad("chain", 18) + "\(chain.count) links, this checkpoint first")
                lines.append(
                    "  " + rightPad("link", 6) + rightPad("identity", 18) + leftPad("stored", 12) + "  references (by link, counted from each)")
                for link in chain {
                    let refs = link.referencedBytesByLink.keys.sorted().map { "\($0): \(humanBytes(link.referencedBytesByLink[$0]!))" }
                    lines.append(
                        "  " + rightPad(String(link.link), 6) + rightPad(String(link.identity?.description.prefix(16) ?? "-"), 18)
                            + leftPad(humanBytes(link.metadata.totals.storedBytes), 12) + "  " + (refs.isEmpty ? "none" : refs.joined(separator: ", "))
                            + "  " + link.path)
                }
            }
        }

        lines.append("")
        lines += MemoryMap(metadata).lines()

        if includeSegments {
            lines.append("")
            let width = max(8, String(header.fileSize, radix: 16).count)
            lines.append(
                "segments\n" + rightPad("  start", width + 4) + rightPad("  end", width + 4) + leftPad("length", 16)
                    + "  " + rightPad("kind", 12) + "refs")
            for s in metadata.segments {
                lines.append(
                    "  " + hex(s.range.start, width: width) + "  " + hex(s.range.end, width: width)
                        + leftPad(String(s.range.length), 16) + "  " + rightPad(s.kind.description, 12) + String(s.refs))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
