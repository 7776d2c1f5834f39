import GRPCCore
import FoundationEssentials
import SwiftProtobuf

/// One change of a watched key.
public struct EtcdEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case put, delete }

    public var kind: Kind
    /// After a put, the key's new value; after a delete, the key with the deletion's revision.
    public var keyValue: EtcdKeyValue
    /// The value before the change, when the watch asked for it.
    public var previous: EtcdKeyValue?
}

/// The changes of one revision (or of several, as etcd groups them), and the revision the
/// store was at when they were sent: a watch resumed from `revision + 1` misses nothing.
public struct EtcdWatchBatch: Sendable {
    public var events: [EtcdEvent]
    public var revision: Int64
}

extension EtcdClient {
    /// The changes of every key under `prefix` from `revision` on (0: from now), with the
    /// previous values when `previous` is set. The stream fails with `.compacted` when etcd no
    /// longer has that history (list again and watch from the list's revision + 1), or with
    /// the error that ended the watch; it ends when the consumer stops iterating. With
    /// `announcingStart`, the first batch is an empty one, sent when etcd has set the watch up.
    public func watch(prefix: [UInt8], from revision: Int64 = 0, previous: Bool = true, announcingStart: Bool = false)
        -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream<EtcdWatchBatch, any Error>.makeStream()
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = Data(prefix)
        create.rangeEnd = Data(Self.rangeEnd(ofPrefix: prefix))
        create.startRevision = revision
        create.prevKv = previous
        var watchRequest = Etcdserverpb_WatchRequest()
        watchRequest.requestUnion = .createRequest(create)
        let request = watchRequest
        let endpoints = configuration.endpoints
        var options = CallOptions.defaults
        options.waitForReady = true
        // A watch response holds as many events as etcd puts in it: the same limit as a page.
        Self.allowLargeMessages(&options)
        let task = Task { [watchClient] in
            do {
                try await watchClient.watch(metadata: EtcdClient.requireLeader, options: options) { writer in
                    try await writer.write(request)
                    // The request stream stays open: etcd ends the watch when it is closed.
                    while true { try await Task.sleep(for: .seconds(3600)) }
                } onResponse: { response in
                    for try await message in response.messages {
                        if message.canceled {
                            if message.compactRevision > 0 {
                                throw EtcdError.compacted(requested: revision, compactRevision: message.compactRevision)
                            }
                            throw EtcdError.refused("the watch was cancelled: \(message.cancelReason)")
                        }
                        if message.created && message.events.isEmpty {
                            if announcingStart { continuation.yield(EtcdWatchBatch(events: [], revision: message.header.revision)) }
                            continue
                        }
                        let events = message.events.map { event in
                            EtcdEvent(kind: event.type == .delete ? .delete : .put, keyValue: EtcdKeyValue(event.kv),
                                      previous: event.hasPrevKv ? EtcdKeyValue(event.prevKv) : nil)
                        }
                        continuation.yield(EtcdWatchBatch(events: events, revision: message.header.revision))
                    }
                }
                continuation.finish(throwing: EtcdError.unavailable("the watch stream ended"))
            } catch let error as EtcdError {
                continuation.finish(throwing: error)
            } catch let error as RPCError {
                continuation.finish(throwing: EtcdError(error, endpoints: endpoints))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
