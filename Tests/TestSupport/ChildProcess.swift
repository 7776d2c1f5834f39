import CTestSupport
public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process the tests start (`dig`, `curl`, `kubectl`, etcd, the daemon), with the part of
/// Foundation's `Process` interface they use. It exists because corelibs Foundation's
/// `Process.run()` lists /proc/self/fd into a buffer sized by an earlier count and crashes
/// when another test's thread opens descriptors in between; and because a child it starts
/// inherits every descriptor not marked close-on-exec, so one test's child could hold another
/// test's pipe open. Here the child has every descriptor above 2 closed, a process group of
/// its own (killed whole when the test drops it), and dies with the test process: children are
/// started by one thread that lives as long as the process (`Spawner`), and each asks the kernel
/// for SIGKILL when that thread ends, so a test process that crashes or is killed leaves none.
public final class ChildProcess: @unchecked Sendable {
    public var executableURL: URL?
    public var arguments: [String]?
    /// nil: the tests' own environment.
    public var environment: [String: String]?
    public var currentDirectoryURL: URL?
    /// Each a `FileHandle` or a `Pipe` (the child gets the pipe's writing end for output, its
    /// reading end for input); nil keeps the tests' own.
    public var standardInput: Any?
    public var standardOutput: Any?
    public var standardError: Any?

    private let lock = NSLock()
    private var pid: pid_t = 0
    /// The wait status once the child has been reaped.
    private var waitStatus: Int32?

    public init() {}

    public var processIdentifier: Int32 { lock.withLock { pid } }

    public func run() throws {
        guard let executable = executableURL?.path else { throw ChildProcessError("no executable") }
        let argv = [executable] + (arguments ?? [])
        let environment = self.environment ?? ProcessInfo.processInfo.environment
        let envp = environment.map { "\($0.key)=\($0.value)" }
        let input = Self.descriptor(standardInput, reading: true)
        let output = Self.descriptor(standardOutput, reading: false)
        let errors = Self.descriptor(standardError, reading: false)
        let directory = currentDirectoryURL?.path
        let (result, child) = Spawner.shared.run {
            var child: pid_t = 0
            let result = withCStrings(argv) { argv in
                withCStrings(envp) { envp in
                    cdns_test_spawn(&child, executable, argv, envp, input, output, errors, directory)
                }
            }
            return (result, child)
        }
        guard result == 0 else {
            throw ChildProcessError("\(executable): \(String(cString: strerror(result)))")
        }
        lock.withLock { pid = child }
        // The child has its own copies; the parent's ends of its pipes would keep a reader from
        // seeing the end of the output.
        var closed = Set<ObjectIdentifier>()
        for (stream, reading) in [(standardInput, true), (standardOutput, false), (standardError, false)] {
            guard let pipe = stream as? Pipe, closed.insert(ObjectIdentifier(pipe)).inserted else { continue }
            try? (reading ? pipe.fileHandleForReading : pipe.fileHandleForWriting).close()
        }
    }

    /// Whether the child has not exited yet (it is reaped here when it has).
    public var isRunning: Bool {
        lock.withLock {
            guard pid > 0, waitStatus == nil else { return false }
            return !reapLocked()
        }
    }

    /// Waits for the child to exit, polling so that `isRunning` and this can be called from
    /// different threads without either losing the status to the other.
    public func waitUntilExit() {
        while isRunning { usleep(2_000) }
    }

    /// The exit code, or the signal's number when a signal ended the child (as `Process` has it).
    public var terminationStatus: Int32 {
        lock.withLock {
            guard let status = waitStatus else { return 0 }
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : signal
        }
    }

    /// Whether a signal ended the child.
    public var terminatedBySignal: Bool {
        lock.withLock { waitStatus.map { $0 & 0x7f != 0 } ?? false }
    }

    public func terminate() { signal(SIGTERM) }
    public func interrupt() { signal(SIGINT) }

    /// Sends `number` while the child has not been reaped, so the process ID is still its own.
    public func signal(_ number: Int32) {
        lock.withLock {
            guard pid > 0, waitStatus == nil else { return }
            kill(pid, number)
        }
    }

    private func reapLocked() -> Bool {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                waitStatus = status
                return true
            }
            if result == -1 && errno == EINTR { continue }
            if result == -1 {
                // Nobody else waits for our children; treat a lost child as gone.
                waitStatus = 0
                return true
            }
            return false
        }
    }

    private static func descriptor(_ stream: Any?, reading: Bool) -> Int32 {
        switch stream {
        case let handle as FileHandle: handle.fileDescriptor
        case let pipe as Pipe: (reading ? pipe.fileHandleForReading : pipe.fileHandleForWriting).fileDescriptor
        default: -1
        }
    }

    deinit {
        // A child nobody waited for is killed with its process group and reaped when it is
        // dropped, not left running or a zombie.
        if pid > 0, waitStatus == nil {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == 0 {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
            }
        }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `strings` as a NULL-terminated array of C strings for the duration of `body`.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// The thread that starts every child: it never ends, so the children's death signal (which
/// the kernel sends when the thread that started them ends) comes only with the process's end.
final class Spawner: @unchecked Sendable {
    static let shared = Spawner()

    private let condition = NSCondition()
    private var work: [() -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in
            while true {
                condition.lock()
                while work.isEmpty { condition.wait() }
                let next = work.removeFirst()
                condition.unlock()
                next()
            }
        }
        thread.name = "test-spawner"
        thread.start()
    }

    /// Runs `body` on the spawning thread and returns its result.
    func run<T>(_ body: @escaping () -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T? = nil
        condition.lock()
        work.append {
            result = body()
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return result!
    }
}
