import CTestSupport
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The tests' child processes end with the test process, however it ends, and with the test
/// that drops them, grandchildren included; and not before: not when the thread that asked for
/// one ends.
@Suite struct ChildProcessTests {
    /// Whether `pid` has ended (gone, or a zombie nobody reaped yet).
    static func ended(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // The state follows the command's closing parenthesis.
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    @Test func aChildDiesWithTheProcessThatStartedIt() async throws {
        var grandchild: pid_t = 0
        let words: [String] = ["/bin/sleep", "600"]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let environment: [UnsafeMutablePointer<CChar>?] = [nil]
        defer { for argument in arguments { free(argument) } }
        let result = cdns_test_spawn_from_dying_parent(&grandchild, "/bin/sleep", arguments, environment)
        try #require(result == 0, "\(String(cString: strerror(result)))")
        #expect(grandchild > 0)
        #expect(await eventually(within: 30) { Self.ended(grandchild) }, "the child of a process that ended is killed")
        if !Self.ended(grandchild) { kill(grandchild, SIGKILL) }
    }

    @Test func aChildOutlivesTheThreadThatStartedIt() async throws {
        let started = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var child: ChildProcess? = nil
        let thread = Thread {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/bin/sleep")
            process.arguments = ["600"]
            try? process.run()
            child = process
            started.signal()
        }
        thread.start()
        started.wait()
        let process = try #require(child)
        #expect(await eventually(within: 30) { thread.isFinished })
        // Long enough for a death signal tied to that thread to have arrived.
        for _ in 0..<50 {
            #expect(process.isRunning, "the child ended with the thread that started it")
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(4))
        }
        process.signal(SIGKILL)
        process.waitUntilExit()
    }

    @Test func droppingAChildKillsItsWholeProcessGroup() async throws {
        let output = Pipe()
        var grandchild: pid_t = 0
        do {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "sleep 600 & echo $!; wait"]
            process.standardOutput = output
            try process.run()
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            grandchild = try #require(pid_t(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!Self.ended(grandchild))
        }
        #expect(await eventually(within: 30) { Self.ended(grandchild) }, "the shell's own child is killed with it")
        if grandchild > 0, !Self.ended(grandchild) { kill(grandchild, SIGKILL) }
    }
}
