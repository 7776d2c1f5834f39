import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import WorkloadProbes

/// Exec probes as commands on this node: the exit status decides, the start of the output is
/// the reason, a command that outlives its timeout is killed with everything it started, and
/// they are off unless turned on.
struct CommandProbeRunnerTests {
    struct Case: Sendable, CustomStringConvertible {
        var command: [String]
        var expected: ProbeResult
        var description: String { command.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(command: ["true"], expected: .success),
        Case(command: ["sh", "-c", "echo fine; exit 0"], expected: .success),
        Case(command: ["false"], expected: .failure("command false exited with status 1")),
        Case(command: ["sh", "-c", "echo 'not ready: db down' >&2; exit 3"],
             expected: .failure("command sh exited with status 3: not ready: db down")),
        Case(command: ["sh", "-c", "kill -TERM $$"], expected: .failure("command sh was killed by signal 15")),
        Case(command: ["/nonexistent/probe"], expected: .failure("command /nonexistent/probe cannot be run: No such file or directory")),
        Case(command: ["no-such-command-anywhere"], expected: .failure("command no-such-command-anywhere cannot be run: No such file or directory")),
        Case(command: [""], expected: .failure("exec probe without a command")),
        Case(command: [], expected: .failure("exec probe without a command")),
        // Output beyond what is kept is read and dropped: the command is not blocked on a full pipe.
        Case(command: ["sh", "-c", "head -c 1000000 /dev/zero; exit 0"], expected: .success),
    ]

    @Test(arguments: cases) func theExitStatusDecides(_ c: Case) async {
        #expect(await CommandProbeRunner().run(.exec(command: c.command), timeout: .seconds(10)) == c.expected)
    }

    /// A command that hangs fails at its timeout, and what it started dies with it.
    @Test func aHungCommandIsKilledWithItsChildrenAtTheTimeout() async throws {
        let pidFile = Scratch.url("exec-probe").path
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        // A child in the background, its process ID written down, and the command hangs.
        let command = ["sh", "-c", "sleep 60 & echo $! > \(pidFile); sleep 30"]
        let result = await CommandProbeRunner().run(.exec(command: command), timeout: .seconds(1))
        #expect(result == .failure("command sh timed out after 1.0 s"))
        let text = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let child = try #require(Int32(text), "the command wrote no process ID: \(text)")
        // Gone, or a zombie waiting to be reaped: either way it runs no more.
        func ended() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            return stat[stat.index(close, offsetBy: 2)] == "Z"
        }
        #expect(await eventually(within: 30) { ended() }, "the child outlived the probe")
        if !ended() { kill(child, SIGKILL) }
    }

    /// Without `--probes-exec` the network runner refuses exec probes, saying how to allow them.
    @Test func execProbesAreOffUnlessTurnedOn() async {
        let off = await NetworkProbeRunner().run(.exec(command: ["true"]), timeout: .seconds(1))
        #expect(off == .failure("exec probes are off (serve --probes-exec turns them on)"))
        let on = await NetworkProbeRunner(exec: CommandProbeRunner()).run(.exec(command: ["true"]), timeout: .seconds(1))
        #expect(on == .success)
    }
}
