import Checkpoint
import PGAlloc

/// The JSON pgsnap prints with `--json`, written by hand so that its text
/// is stable whatever the toolchain: keys sorted by their bytes, two-space
/// indentation, `"key": value`, objects and arrays of the top-level object
/// on their own lines, and the elements of an array each on one line.
/// Integers are printed exactly (64-bit values included); the only
/// fractions are ratios, with 4 decimals. docs/CLI.md describes each
/// command's fields.
enum JSON {
    case object([String: JSON])
    case array([JSON])
    case string(String)
    case integer(UInt64)
    /// A number already formatted (a fixed-decimal ratio).
    case number(String)
    case bool(Bool)

    /// A ratio with 4 decimals.
    static func ratio(_ x: Double) -> JSON {
        .number(fixed(x, digits: 4))
    }

    /// Bytes per memory kind, keyed by kind name; every kind is present.
    static func kinds(_ stats: MemoryStats) -> JSON {
        .object(Dictionary(uniqueKeysWithValues: MemoryKind.allCases.map { ($0.description, .integer(stats[$0])) }))
    }

    /// The text, ending with a newline.
    var rendered: String {
        var out = ""
        render(into: &out, indent: "", inline: false)
        out += "\n"
        return out
    }

    private func render(into out: inout String, indent: String, inline: Bool) {
        switch self {
        case .object(let members):
            if members.isEmpty {
                out += "{}"
                return
            }
            let keys = members.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            if inline {
                out += "{"
                for (i, key) in keys.enumerated() {
                    out += i == 0 ? "" : ", "
                    out += JSON.quoted(key) + ": "
                    members[key]!.render(into: &out, indent: indent, inline: true)
                }
                out += "}"
            } else {
                out += "{\n"
                let inner = indent + "  "
                for (i, key) in keys.enumerated() {
                    out += inner + JSON.quoted(key) + ": "
                    members[key]!.render(into: &out, indent: inner, inline: false)
                    out += i == keys.count - 1 ? "\n" : ",\n"
                }
                out += indent + "}"
            }
        case .array(let elements):
            if elements.isEmpty {
                out += "[]"
                return
            }
            if inline {
                out += "["
                for (i, e) in elements.enumerated() {
                    out += i == 0 ? "" : ", "
                    e.render(into: &out, indent: indent, inline: true)
                }
                out += "]"
            } else {
                out += "[\n"
                let inner = indent + "  "
                for (i, e) in elements.enumerated() {
                    out += inner
                    e.render(into: &out, indent: inner, inline: true)
                    out += i == elements.count - 1 ? "\n" : ",\n"
                }
                out += indent + "]"
            }
        case .string(let s):
            out += JSON.quoted(s)
        case .integer(let n):
            out += String(n)
        case .number(let text):
            out += text
        case .bool(let b):
            out += b ? "true" : "false"
        }
    }

    /// `s` as a JSON string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let h = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension JSON {
    /// A `PRNT` record.
    static func parent(_ p: ParentRecord) -> JSON {
        .object(["depth": .integer(UInt64(p.depth)), "identity": .string(p.identity.description), "path": .string(p.path)])
    }

    /// The fields every command's JSON gives about a checkpoint it read.
    static func checkpointSummary(_ m: CheckpointMetadata) -> [String: JSON] {
        [
            "checkpointBytes": .integer(m.checkpointLength),
            "dataSize": .integer(m.header.dataSize),
            "fileSize": .integer(m.header.fileSize),
            "frameCount": .integer(m.totals.frameCount),
            "segmentCount": .integer(m.header.segmentCount),
            "storedBytes": .integer(m.totals.storedBytes),
        ]
    }
}
