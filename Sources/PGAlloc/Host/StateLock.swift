#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// A mutex that owns the state it protects: the state is reachable only
/// inside `withLock`, so "protected by mu" is a rule the compiler checks.
///
/// Conditions belong to the lock. Waiting happens *between* accesses to the
/// state, never inside one: `withLock(waitingOn:)` runs its body, and when
/// the body answers `.wait`, sleeps on the condition and runs it again.
package final class StateLock<State: ~Copyable>: @unchecked Sendable {
    /// What a body passed to `withLock(waitingOn:)` decides.
    package enum Step<Result> {
        /// Sleep on the condition, then run the body again.
        case wait
        /// Return this result.
        case done(Result)
    }

    /// A condition variable bound to this lock.
    package struct Condition: @unchecked Sendable {
        fileprivate let cond: UnsafeMutablePointer<pthread_cond_t>
    }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let state: UnsafeMutablePointer<State>
    private var conditions: [UnsafeMutablePointer<pthread_cond_t>] = []

    package init(_ initial: consuming State) {
        mutex = .allocate(capacity: 1)
        // Adaptive: spins briefly before sleeping, which suits critical
        // sections this short.
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
        state = .allocate(capacity: 1)
        state.initialize(to: initial)
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        for cond in conditions {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }
    }

    /// Creates a condition bound to this lock. Call during set-up only,
    /// before the lock is shared between threads.
    package func makeCondition() -> Condition {
        let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
        conditions.append(cond)
        return Condition(cond: cond)
    }

    /// Runs `body` with the lock held and exclusive access to the state.
    @inline(__always)
    package func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        lock()
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }

    /// Takes the mutex, spinning for a few microseconds before blocking:
    /// every critical section of the allocator is shorter than a sleep and
    /// a wake-up on the futex.
    @inline(__always)
    private func lock() {
        if pthread_mutex_trylock(mutex) == 0 {
            return
        }
        for _ in 0..<4096 {
            pg_cpu_relax()
            if pthread_mutex_trylock(mutex) == 0 {
                return
            }
        }
        pthread_mutex_lock(mutex)
    }

    /// Runs `body` with the lock held until it answers `.done`; each time it
    /// answers `.wait`, sleeps on `condition` (releasing the lock) first.
    package func withLock<R>(waitingOn condition: Condition, _ body: (inout State) -> Step<R>) -> R {
        lock()
        defer { pthread_mutex_unlock(mutex) }
        while true {
            switch body(&state.pointee) {
            case .done(let result):
                return result
            case .wait:
                pthread_cond_wait(condition.cond, mutex)
            }
        }
    }

    /// As `withLock(waitingOn:_:)`, but gives up after `timeout`
    /// nanoseconds, returning nil.
    package func withLock<R>(waitingOn condition: Condition, timeoutNanoseconds: UInt64, _ body: (inout State) -> Step<R>) -> R? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = UInt64(deadline.tv_nsec) + timeoutNanoseconds
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        lock()
        defer { pthread_mutex_unlock(mutex) }
        while true {
            switch body(&state.pointee) {
            case .done(let result):
                return result
            case .wait:
                if pthread_cond_timedwait(condition.cond, mutex, &deadline) == ETIMEDOUT {
                    if case .done(let result) = body(&state.pointee) {
                        return result
                    }
                    return nil
                }
            }
        }
    }

    /// Wakes one thread waiting on `condition`. May be called with or
    /// without the lock held.
    package func signal(_ condition: Condition) {
        pthread_cond_signal(condition.cond)
    }

    /// Wakes every thread waiting on `condition`.
    package func broadcast(_ condition: Condition) {
        pthread_cond_broadcast(condition.cond)
    }
}
