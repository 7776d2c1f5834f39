import CShims
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Exec probes, run as commands on this node (there is no container to run them in): exit
/// status 0 is success, anything else a failure with the start of what the command wrote; at
/// the probe's timeout the command's whole process group is killed. Off unless the operator
/// turns it on (`serve --probes-exec`): whoever may write a pod could otherwise run commands as
/// the daemon.
public struct CommandProbeRunner: ProbeRunner {
    /// What the kubelet keeps of a probe's output for its message.
    public static let outputLimit = 10 * 1024
    static let queue = DispatchQueue(label: "clusterdns.exec-probes", attributes: .concurrent)

    public init() {}

    public func run(_ target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        guard case .exec(let command) = target else { return .failure("not an exec probe: \(target)") }
        guard let program = command.first, !program.isEmpty else { return .failure("exec probe without a command") }
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        // The wait blocks a thread of its own, not one of Swift's cooperative threads.
        return await withCheckedContinuation { continuation in
            Self.queue.async { continuation.resume(returning: Self.execute(command, program: program, timeout: milliseconds)) }
        }
    }

    static func execute(_ command: [String], program: String, timeout: Int32) -> ProbeResult {
        var output = [CChar](repeating: 0, count: outputLimit)
        var length = 0
        var status: Int32 = 0
        let result = withCStrings(command) { argv in
            // The daemon's own environment.
            output.withUnsafeMutableBufferPointer { buffer in
                cdns_run_command(argv, environ, timeout, buffer.baseAddress, buffer.count, &length, &status)
            }
        }
        var text = Substring(String(decoding: output[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        let said = text.isEmpty ? "" : ": \(text.prefix(200))"
        switch result {
        case 0:
            let signal = status & 0x7f
            if signal != 0 { return .failure("command \(program) was killed by signal \(signal)\(said)") }
            let code = (status >> 8) & 0xff
            return code == 0 ? .success : .failure("command \(program) exited with status \(code)\(said)")
        case 1:
            return .failure("command \(program) timed out after \(Double(timeout) / 1000) s")
        default:
            return .failure("command \(program) cannot be run: \(String(cString: strerror(-result)))")
        }
    }
}

/// `strings` as a NULL-terminated array of C strings for the duration of `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
