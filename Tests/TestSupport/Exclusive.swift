/// Keeps tests of different suites (and test targets: they share one process) from running at
/// the same time, where together they would exceed what the process has: the tests that each
/// hold thousands of descriptors, for example, would each find the limit reached by the other.
public actor Exclusive {
    /// For tests that hold thousands of sockets. Their suites share the process's descriptor
    /// table with every other test running beside them; one at a time, and with the limit
    /// raised to 100,000 where that is allowed, each leaves room for the rest.
    public static let descriptors: Exclusive = {
        raiseDescriptorLimit(to: 100_000)
        return Exclusive()
    }()

    var held = false
    var waiting: [CheckedContinuation<Void, Never>] = []

    public init() {}

    /// Runs `body` when no other holder of this exclusion runs.
    public nonisolated func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        do {
            let result = try await body()
            await release()
            return result
        } catch {
            await release()
            throw error
        }
    }

    func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { held = false } else { waiting.removeFirst().resume() }
    }
}
