import Dispatch
import FoundationEssentials

/// `items` cut into a couple of chunks per core (of `minimum` items at least), each chunk given
/// to `body` on a core of its own; the chunks' outputs in the items' order. What a restart or a
/// first list spends its time on (decoding stored JSON) is independent per item.
public func inChunksOnEveryCore<Item: Sendable, Output>(_ items: [Item], atLeast minimum: Int,
                                                        _ body: @escaping @Sendable (ArraySlice<Item>) -> [Output]) -> [Output] {
    let chunks = max(1, min(ProcessInfo.processInfo.activeProcessorCount * 2, items.count / max(1, minimum)))
    var outputs = [[Output]](repeating: [], count: chunks)
    outputs.withUnsafeMutableBufferPointer { buffer in
        // Each iteration writes its own element only.
        nonisolated(unsafe) let buffer = buffer
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            buffer[chunk] = body(items[(items.count * chunk / chunks)..<(items.count * (chunk + 1) / chunks)])
        }
    }
    return outputs.flatMap { $0 }
}
