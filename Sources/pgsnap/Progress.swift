#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import Synchronization

/// A one-line progress display on stderr for a long save, restore or
/// verify: bytes done and total, a bar, the rate and the time left.
///
/// Shown only when stderr is a terminal and the user did not ask for
/// quiet; redrawn at most 10 times a second, in place (carriage return and
/// erase-line); `finish()` ends it with a newline. Nothing at all is
/// written otherwise, so scripts and logs never see it.
final class ProgressDisplay: Sendable {
    private struct State {
        var lastDraw: ContinuousClock.Instant?
        var latest: CheckpointProgress?
        var drawn = false
        var finished = false
    }

    private let label: String
    private let start = ContinuousClock.now
    private let state = Mutex(State())
    private static let interval = Duration.milliseconds(100)

    private init(label: String) {
        self.label = label
    }

    /// A display for `label` ("saving", "restoring", ...), or nil when
    /// progress must not be shown.
    static func make(_ label: String, quiet: Bool) -> ProgressDisplay? {
        guard !quiet, isatty(2) == 1 else { return nil }
        return ProgressDisplay(label: label)
    }

    /// The callback to give the libraries.
    var callback: @Sendable (CheckpointProgress) -> Void {
        { [self] progress in update(progress) }
    }

    /// Records progress; redraws if the last drawing is old enough.
    func update(_ progress: CheckpointProgress) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { s in
            guard !s.finished else { return nil }
            s.latest = progress
            if let last = s.lastDraw, last.duration(to: now) < ProgressDisplay.interval {
                return nil
            }
            s.lastDraw = now
            s.drawn = true
            return render(progress, at: now, final: false)
        }
        if let line {
            writeStandardError("\r\u{1B}[K" + line)
        }
    }

    /// Draws the final state, if anything was drawn, and ends the line.
    /// Safe to call more than once.
    func finish() {
        let now = ContinuousClock.now
        let line: String? = state.withLock { s in
            guard !s.finished else { return nil }
            s.finished = true
            guard s.drawn, let latest = s.latest else { return nil }
            return render(latest, at: now, final: true)
        }
        if let line {
            writeStandardError("\r\u{1B}[K" + line + "\n")
        }
    }

    private func render(_ p: CheckpointProgress, at now: ContinuousClock.Instant, final: Bool) -> String {
        let elapsed = seconds(start.duration(to: now))
        var line = "\(label) \(humanBytes(p.bytesDone))"
        if p.bytesTotal > 0 {
            let total = max(p.bytesTotal, p.bytesDone)
            let fraction = Double(p.bytesDone) / Double(total)
            let filled = Int((fraction * 20).rounded(.down))
            line += " / \(humanBytes(total)) [" + String(repeating: "#", count: filled)
                + String(repeating: ".", count: 20 - filled) + "] \(Int((fraction * 100).rounded(.down)))%"
            if final {
                line += "  \(humanRate(p.bytesDone, seconds: elapsed))  in \(clockTime(elapsed))"
            } else if elapsed > 0, p.bytesDone > 0 {
                let rate = Double(p.bytesDone) / elapsed
                line += "  \(humanRate(p.bytesDone, seconds: elapsed))  \(clockTime(Double(total - p.bytesDone) / rate)) left"
            }
        } else if elapsed > 0 {
            line += "  \(humanRate(p.bytesDone, seconds: elapsed))"
            if final {
                line += "  in \(clockTime(elapsed))"
            }
        }
        return line
    }
}
