import PGAlloc

/// Runs jobs on a fixed set of worker threads, each with a context of its
/// own (a zstd context, scratch buffers), and hands back their results in
/// the order the jobs were submitted.
///
/// The submitter keeps at most `maxInFlight` jobs submitted and not yet
/// collected (it checks `isFull`), which bounds the memory the jobs hold.
/// A job that throws makes `nextResult()` throw that error when its turn
/// comes, so errors surface in submission order.
final class WorkQueue<Context: AnyObject, Output>: @unchecked Sendable {
    typealias Job = (Context) throws -> Output

    private struct State {
        /// Jobs waiting for a worker, oldest first from `jobsHead`. A taken
        /// job's slot is emptied at once: its closure may hold a large
        /// buffer (a restore's compressed frame).
        var jobs: [(Int, Job)?] = []
        var jobsHead = 0
        var results: [Int: Result<Output, any Error>] = [:]
        var stopping = false
        /// Set when a job fails: later jobs are skipped.
        var failed = false
    }

    let maxInFlight: Int
    private let lock = StateLock(State())
    private let jobAvailable: StateLock<State>.Condition
    private let resultAvailable: StateLock<State>.Condition
    private var threads: [HostThread] = []
    private var nextSubmit = 0
    private var nextCollect = 0

    /// A skipped job's result, after an earlier job failed.
    struct Skipped: Error {}

    /// Starts `threads` workers; each calls `makeContext` once, on its own
    /// thread.
    init(threads count: Int, maxInFlight: Int, name: String, makeContext: @escaping @Sendable () throws -> Context) throws {
        precondition(count >= 1 && maxInFlight >= 1)
        self.maxInFlight = maxInFlight
        jobAvailable = lock.makeCondition()
        resultAvailable = lock.makeCondition()
        for _ in 0..<count {
            let thread = try HostThread(name: name) { [self] in
                self.runWorker(makeContext)
            }
            threads.append(thread)
        }
    }

    deinit {
        shutDown()
    }

    /// Jobs submitted and not yet collected.
    var inFlight: Int { nextSubmit - nextCollect }

    var isFull: Bool { inFlight >= maxInFlight }

    /// Queues a job.
    ///
    /// - Precondition: `!isFull`.
    func submit(_ job: @escaping Job) {
        precondition(!isFull, "WorkQueue.submit: \(maxInFlight) jobs already in flight")
        let n = nextSubmit
        nextSubmit += 1
        lock.withLock { $0.jobs.append((n, job)) }
        lock.signal(jobAvailable)
    }

    /// Waits for the oldest job not yet collected and returns its result
    /// (or throws its error); nil if no job is in flight.
    func nextResult() throws -> Output? {
        guard nextCollect < nextSubmit else { return nil }
        let n = nextCollect
        let result = lock.withLock(waitingOn: resultAvailable) { s -> StateLock<State>.Step<Result<Output, any Error>> in
            if let r = s.results.removeValue(forKey: n) {
                return .done(r)
            }
            return .wait
        }
        nextCollect += 1
        return try result.get()
    }

    /// Collects every job in flight, ignoring their results; returns the
    /// first error among them, in submission order.
    func drain() -> (any Error)? {
        var first: (any Error)?
        while nextCollect < nextSubmit {
            do {
                _ = try nextResult()
            } catch is Skipped {
            } catch {
                if first == nil {
                    first = error
                }
            }
        }
        return first
    }

    /// Stops the workers once the queued jobs are done, and waits for them.
    func shutDown() {
        lock.withLock { $0.stopping = true }
        lock.broadcast(jobAvailable)
        for t in threads {
            t.join()
        }
        threads.removeAll()
    }

    private func runWorker(_ makeContext: () throws -> Context) {
        var context: Context?
        var contextError: (any Error)?
        do {
            context = try makeContext()
        } catch {
            contextError = error
        }
        while true {
            let next = lock.withLock(waitingOn: jobAvailable) { s -> StateLock<State>.Step<(Int, Job, Bool)?> in
                if s.jobsHead < s.jobs.count {
                    let job = s.jobs[s.jobsHead]!
                    s.jobs[s.jobsHead] = nil
                    s.jobsHead += 1
                    if s.jobsHead == s.jobs.count {
                        s.jobs.removeAll(keepingCapacity: true)
                        s.jobsHead = 0
                    }
                    return .done((job.0, job.1, s.failed))
                }
                return s.stopping ? .done(nil) : .wait
            }
            guard let (n, job, skip) = next else { return }
            let result: Result<Output, any Error>
            if skip {
                result = .failure(Skipped())
            } else if let contextError {
                result = .failure(contextError)
            } else {
                do {
                    result = .success(try job(context!))
                } catch {
                    result = .failure(error)
                }
            }
            lock.withLock { s in
                if case .failure = result {
                    s.failed = true
                }
                s.results[n] = result
            }
            lock.broadcast(resultAvailable)
        }
    }
}
