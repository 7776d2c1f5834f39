import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Synchronization
import Testing
@testable import EtcdClient

/// A list's pages after the first are read member-local at the first page's revision; requests
/// go round robin over the members, so the member asked may not have applied that revision yet.
/// A real member catches up within milliseconds, too fast to be caught behind on cue, so this
/// member is scripted: a gRPC server of etcd's KV.Range alone that holds `applied` while the
/// cluster is at `latest`, and answers as etcd does.
struct MemberLocalReadTests {
    final class LaggingMember: RegistrableRPCService {
        let applied: Int64
        let latest: Int64
        /// Each Range asked: whether member-local, and at which revision.
        let asked = Mutex<[String]>([])

        init(applied: Int64, latest: Int64) {
            self.applied = applied
            self.latest = latest
        }

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(forMethod: MethodDescriptor(fullyQualifiedService: "etcdserverpb.KV", method: "Range"),
                                   deserializer: ProtobufDeserializer<Etcdserverpb_RangeRequest>(),
                                   serializer: ProtobufSerializer<Etcdserverpb_RangeResponse>()) { request, _ in
                var message: Etcdserverpb_RangeRequest? = nil
                for try await received in request.messages { message = received }
                guard let message else { throw RPCError(code: .invalidArgument, message: "no request") }
                self.asked.withLock { $0.append("\(message.serializable ? "member-local" : "cluster") at \(message.revision)") }
                // A serializable read sees what this member has applied; a linearizable one
                // waits until it has applied what the cluster has.
                let holds = message.serializable ? self.applied : self.latest
                guard message.revision <= holds else {
                    throw RPCError(code: .outOfRange, message: "etcdserver: mvcc: required revision is a future revision")
                }
                var response = Etcdserverpb_RangeResponse()
                response.header.revision = holds
                var kv = Mvccpb_KeyValue()
                kv.key = message.key
                kv.value = Data("v".utf8)
                kv.modRevision = 5
                response.kvs = [kv]
                return StreamingServerResponse(single: ServerResponse(message: response))
            }
        }
    }

    @Test func aPageTheMemberHasNotReachedIsAskedOfTheCluster() async throws {
        let member = LaggingMember(applied: 10, latest: 12)
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext)
        let server = GRPCServer(transport: transport, services: [member])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await transport.listeningAddress.ipv4?.port)
            // The member's handler runs on this process's concurrency pool, which the suite's
            // other tests keep busy for seconds at a time (a real member does not): its answer
            // is waited for, its timing not tested.
            var configuration = try EtcdConfiguration(urls: ["http://127.0.0.1:\(port)"])
            configuration.requestTimeout = .seconds(120)
            let client = try EtcdClient(configuration: configuration)
            group.addTask { try await client.run() }
            defer { client.shutdown() }
            let key = Array("/p/a".utf8)

            // At a revision the member holds: read there, once.
            #expect(try await client.range(key, revision: 10, memberLocal: true).keyValues.map(\.key) == [key])
            // Beyond it, but reached by the cluster: asked again of the cluster, and answered.
            let page = try await client.range(key, revision: 12, memberLocal: true)
            #expect(page.keyValues.map(\.key) == [key] && page.revision == 12)
            // Beyond the cluster too: said as such, whether member-local or not.
            for memberLocal in [true, false] {
                await #expect(throws: EtcdError.futureRevision) { _ = try await client.range(key, revision: 13, memberLocal: memberLocal) }
            }
            #expect(member.asked.withLock { $0 } == [
                "member-local at 10",
                "member-local at 12", "cluster at 12",
                "member-local at 13", "cluster at 13",
                "cluster at 13",
            ])
        }
    }
}
