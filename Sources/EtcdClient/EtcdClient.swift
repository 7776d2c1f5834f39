import GRPCCore
import GRPCNIOTransportHTTP2
public import FoundationEssentials
import SwiftProtobuf

/// A key and its value as etcd keeps them, with the revisions that make optimistic concurrency
/// possible: `modRevision` is what a transaction compares to update only what it read.
public struct EtcdKeyValue: Sendable, Hashable {
    public var key: [UInt8]
    /// The value as the response holds it, not copied: a list's values are megabytes, read
    /// once by whoever decodes them.
    public var value: Data
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    init(_ kv: Mvccpb_KeyValue) {
        key = Array(kv.key)
        value = kv.value
        createRevision = kv.createRevision
        modRevision = kv.modRevision
        version = kv.version
        lease = kv.lease
    }
}

/// What a transaction checks before it acts (etcd's `Compare`).
public enum EtcdCompare: Sendable, Hashable {
    /// The key was last written at this revision (0: the key does not exist).
    case modRevision([UInt8], equals: Int64)
    /// The key does not exist.
    case absent([UInt8])
    /// The key holds this value.
    case value([UInt8], equals: [UInt8])
}

/// What a transaction does (etcd's `RequestOp`).
public enum EtcdOperation: Sendable, Hashable {
    case put([UInt8], [UInt8], lease: Int64 = 0)
    case delete([UInt8])
    case deletePrefix([UInt8])
    case get([UInt8])
}

/// The outcome of a transaction: whether its comparisons held (then its success operations ran,
/// else its failure ones), the store's revision after it, and what its `get`s read, in order.
public struct EtcdTransactionResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    public var reads: [[EtcdKeyValue]]
}

/// One read of a range: the keys, the store's revision it was read at, and whether a limit cut
/// it short.
public struct EtcdRange: Sendable {
    public var keyValues: [EtcdKeyValue]
    public var revision: Int64
    public var more: Bool
    /// The keys in the range asked for, these and those after them (etcd's `count`).
    public var count: Int64 = 0
}

/// Where etcd is and how to reach it: kube-apiserver's `--etcd-servers` and its TLS options.
public struct EtcdConfiguration: Sendable {
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var secure: Bool

        public var description: String {
            "\(secure ? "https" : "http")://\(host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host):\(port)"
        }
    }

    public var endpoints: [Endpoint]
    /// PEM files: the authority that signed etcd's certificates, and this client's own.
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    /// How long one request may take (a write waits for the members' quorum).
    public var requestTimeout: Duration = .seconds(5)

    /// `urls` as kube-apiserver takes `--etcd-servers`: `http://HOST:PORT` or `https://…`.
    public init(urls: [String], caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) throws(EtcdError) {
        guard !urls.isEmpty else { throw .configuration("no etcd endpoint given") }
        endpoints = try urls.map { url throws(EtcdError) in try Self.endpoint(url) }
        guard Set(endpoints.map(\.secure)).count == 1 else {
            throw .configuration("etcd endpoints mix http:// and https://: use one scheme for all")
        }
        if (certFile == nil) != (keyFile == nil) { throw .configuration("--etcd-certfile and --etcd-keyfile go together") }
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    static func endpoint(_ url: String) throws(EtcdError) -> Endpoint {
        let parts = url.split(separator: "://", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0] == "http" || parts[0] == "https" else {
            throw .configuration("etcd endpoint \"\(url)\": expected http://HOST:PORT or https://HOST:PORT")
        }
        var rest = Substring(parts[1])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        var host: String
        var port = 2379
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    throw .configuration("etcd endpoint \"\(url)\": the port is not a number from 1 to 65535")
                }
                port = p
            } else if !after.isEmpty {
                throw .configuration("etcd endpoint \"\(url)\": expected http://HOST:PORT or https://HOST:PORT")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw .configuration("etcd endpoint \"\(url)\": the port is not a number from 1 to 65535")
            }
            port = p
        } else {
            host = String(rest)
        }
        guard !host.isEmpty, !host.utf8.contains(UInt8(ascii: "/")) else {
            throw .configuration("etcd endpoint \"\(url)\": expected http://HOST:PORT or https://HOST:PORT")
        }
        return Endpoint(host: host, port: port, secure: parts[0] == "https")
    }
}

/// A client of etcd's v3 API: one gRPC client over every endpoint (a member that fails is
/// left for the next), the key-value operations, transactions, watches and leases the
/// registry needs, with etcd's errors named. `run()` keeps its connections; `shutdown()` ends
/// them.
public final class EtcdClient: Sendable {
    public let configuration: EtcdConfiguration
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>
    let watchClient: Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>
    let lease: Etcdserverpb_Lease.Client<HTTP2ClientTransport.Posix>
    let maintenance: Etcdserverpb_Maintenance.Client<HTTP2ClientTransport.Posix>

    public init(configuration: EtcdConfiguration) throws(EtcdError) {
        self.configuration = configuration
        let target: any ResolvableTarget
        let pairs = configuration.endpoints.map { (host: $0.host, port: $0.port) }
        if configuration.endpoints.allSatisfy({ Self.isIPv4($0.host) }) {
            target = .ipv4(pairs: pairs)
        } else if configuration.endpoints.allSatisfy({ $0.host.utf8.contains(UInt8(ascii: ":")) }) {
            target = .ipv6(pairs: pairs)
        } else if configuration.endpoints.count == 1 {
            target = .dns(host: configuration.endpoints[0].host, port: configuration.endpoints[0].port)
        } else {
            throw .configuration("several etcd endpoints must all be IPv4 or all IPv6 addresses (or give one name)")
        }
        var security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext
        if configuration.endpoints.first?.secure == true {
            let roots: TLSConfig.TrustRootsSource = configuration.caFile.map { .certificates([.file(path: $0, format: .pem)]) }
                ?? .systemDefault
            if let certFile = configuration.certFile, let keyFile = configuration.keyFile {
                security = .mTLS(certificateChain: [.file(path: certFile, format: .pem)], privateKey: .file(path: keyFile, format: .pem)) {
                    $0.trustRoots = roots
                }
            } else {
                security = .tls { $0.trustRoots = roots }
            }
        }
        // Round robin over the members: a member that is down is skipped until it is back.
        let serviceConfig = ServiceConfig(loadBalancingConfig: [.roundRobin])
        do {
            // Pings every 10 s: a member cut off without a word (a partition, a dead host) is
            // noticed within 15 s, not when TCP gives up. etcd refuses pings more often than
            // every 5 s, and pings on a connection without calls; the registry's watch is
            // always a call. Pings "without calls" are allowed all the same: the transport
            // stops its ping timer when the last call ends and does not start it again for the
            // next, so a watch opened after a unary call would never be pinged otherwise. A
            // lost member is dialled again at most 5 s apart.
            let config = HTTP2ClientTransport.Posix.Config.defaults { config in
                config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: true)
                config.backoff = .init(initial: .milliseconds(250), max: .seconds(5), multiplier: 1.6, jitter: 0.2)
                config.channelDebuggingCallbacks.onCreateTCPConnection = PingAnswerer.install(in:)
            }
            let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config,
                                                           serviceConfig: serviceConfig)
            client = GRPCClient(transport: transport)
        } catch {
            throw .configuration("etcd: \(error)")
        }
        kv = Etcdserverpb_KV.Client(wrapping: client)
        watchClient = Etcdserverpb_Watch.Client(wrapping: client)
        lease = Etcdserverpb_Lease.Client(wrapping: client)
        maintenance = Etcdserverpb_Maintenance.Client(wrapping: client)
    }

    static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Keeps the connections until `shutdown()`.
    public func run() async throws {
        try await client.runConnections()
    }

    public func shutdown() {
        client.beginGracefulShutdown()
    }

    /// Asks the member to refuse the request at once when it has no leader (etcd's
    /// `hasleader` metadata, as clientv3's WithRequireLeader): a write to a cluster without
    /// quorum is refused as unavailable instead of waiting out the timeout, and a watch on a
    /// member cut off from its peers is ended, to be resumed on another.
    static let requireLeader: Metadata = ["hasleader": "true"]

    var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = configuration.requestTimeout
        // A member being connected to is waited for (up to the timeout), but when none can be
        // reached the request fails at once: a write is refused as unavailable, not held.
        options.waitForReady = false
        Self.allowLargeMessages(&options)
        return options
    }

    /// A page of a list, or a watch response, is as large as the values in it: 1,000
    /// EndpointSlices of 100 endpoints pass 4 MiB, grpc-swift's default, and a replica whose
    /// list is refused never serves. etcd's own client (clientv3) and kube-apiserver receive up
    /// to 2 GiB (math.MaxInt32); so does this one. The transport applies the limit to what it
    /// receives as well as to what it sends; etcd limits what it accepts by itself.
    static func allowLargeMessages(_ options: inout CallOptions) {
        options.maxRequestMessageBytes = Int(Int32.max)
        options.maxResponseMessageBytes = Int(Int32.max)
    }

    /// The end of the range of every key that starts with `prefix` (etcd's prefix convention).
    public static func rangeEnd(ofPrefix prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]  // every key
    }

    // MARK: Keys and values

    /// The keys from `key` up to `end` (just `key` when nil), at `revision` (0: the latest),
    /// at most `limit` of them (0: all). `memberLocal` reads what the member holds without
    /// asking the cluster (etcd's serializable read): for the pages after a list's first, at
    /// the revision the first one was read at, which reads the same on every member that has
    /// applied it; it spares a consensus round per page. Requests go round robin over the
    /// members, so the one asked may not have applied that revision yet: then the cluster is
    /// asked (a linearizable read waits until the member has).
    public func range(_ key: [UInt8], end: [UInt8]? = nil, revision: Int64 = 0, limit: Int64 = 0,
                      memberLocal: Bool = false) async throws(EtcdError) -> EtcdRange {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key)
        if let end { request.rangeEnd = Data(end) }
        request.revision = revision
        request.limit = limit
        request.serializable = memberLocal
        let response: Etcdserverpb_RangeResponse
        do {
            response = try await call { try await self.kv.range(request, metadata: Self.requireLeader, options: self.options) }
        } catch .futureRevision where memberLocal {
            request.serializable = false
            response = try await call { try await self.kv.range(request, metadata: Self.requireLeader, options: self.options) }
        }
        return EtcdRange(keyValues: response.kvs.map(EtcdKeyValue.init), revision: response.header.revision, more: response.more,
                         count: response.count)
    }

    /// Every key under `prefix`, read at one revision, in pages of `pageSize`.
    public func list(prefix: [UInt8], pageSize: Int64 = 1000) async throws(EtcdError) -> EtcdRange {
        let end = Self.rangeEnd(ofPrefix: prefix)
        var all: [EtcdKeyValue] = []
        var start = prefix
        var revision: Int64 = 0
        while true {
            let page = try await range(start, end: end, revision: revision, limit: pageSize, memberLocal: !all.isEmpty)
            if revision == 0 { revision = page.revision }
            all += page.keyValues
            guard page.more, let last = page.keyValues.last else { break }
            start = last.key + [0]
        }
        return EtcdRange(keyValues: all, revision: revision, more: false, count: Int64(all.count))
    }

    /// Writes `value` at `key`; returns the store's revision after the write.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0) async throws(EtcdError) -> Int64 {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key)
        request.value = Data(value)
        request.lease = lease
        return try await call { try await self.kv.put(request, metadata: Self.requireLeader, options: self.options) }.header.revision
    }

    /// Deletes `key` (with `end`, the range up to it); returns how many were deleted and the
    /// store's revision after.
    @discardableResult
    public func delete(_ key: [UInt8], end: [UInt8]? = nil) async throws(EtcdError) -> (deleted: Int64, revision: Int64) {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Data(key)
        if let end { request.rangeEnd = Data(end) }
        let response = try await call { try await self.kv.deleteRange(request, metadata: Self.requireLeader, options: self.options) }
        return (response.deleted, response.header.revision)
    }

    /// Runs `success` if every comparison holds, else `failure`, atomically.
    public func transaction(if compare: [EtcdCompare], then success: [EtcdOperation],
                            else failure: [EtcdOperation] = []) async throws(EtcdError) -> EtcdTransactionResult {
        var request = Etcdserverpb_TxnRequest()
        request.compare = compare.map(Self.compare)
        request.success = success.map(Self.operation)
        request.failure = failure.map(Self.operation)
        let response = try await call { try await self.kv.txn(request, metadata: Self.requireLeader, options: self.options) }
        var reads: [[EtcdKeyValue]] = []
        for item in response.responses {
            if case .responseRange(let range)? = item.response { reads.append(range.kvs.map(EtcdKeyValue.init)) }
        }
        return EtcdTransactionResult(succeeded: response.succeeded, revision: response.header.revision, reads: reads)
    }

    static func compare(_ compare: EtcdCompare) -> Etcdserverpb_Compare {
        var c = Etcdserverpb_Compare()
        c.result = .equal
        switch compare {
        case .modRevision(let key, let revision):
            c.key = Data(key)
            c.target = .mod
            c.targetUnion = .modRevision(revision)
        case .absent(let key):
            c.key = Data(key)
            c.target = .version
            c.targetUnion = .version(0)
        case .value(let key, let value):
            c.key = Data(key)
            c.target = .value
            c.targetUnion = .value(Data(value))
        }
        return c
    }

    static func operation(_ operation: EtcdOperation) -> Etcdserverpb_RequestOp {
        var op = Etcdserverpb_RequestOp()
        switch operation {
        case .put(let key, let value, let lease):
            var put = Etcdserverpb_PutRequest()
            put.key = Data(key)
            put.value = Data(value)
            put.lease = lease
            op.request = .requestPut(put)
        case .delete(let key):
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = Data(key)
            op.request = .requestDeleteRange(delete)
        case .deletePrefix(let prefix):
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = Data(prefix)
            delete.rangeEnd = Data(rangeEnd(ofPrefix: prefix))
            op.request = .requestDeleteRange(delete)
        case .get(let key):
            var range = Etcdserverpb_RangeRequest()
            range.key = Data(key)
            op.request = .requestRange(range)
        }
        return op
    }

    /// Discards the history before `revision` (watches from before it then fail with
    /// `.compacted`).
    public func compact(revision: Int64) async throws(EtcdError) {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        _ = try await call { try await self.kv.compact(request, metadata: Self.requireLeader, options: self.options) }
    }

    /// The member's view: its version, the store's revision, the current leader.
    public func status() async throws(EtcdError) -> (version: String, revision: Int64, leader: UInt64) {
        let response = try await call { try await self.maintenance.status(Etcdserverpb_StatusRequest(), options: self.options) }
        return (response.version, response.header.revision, response.leader)
    }

    // MARK: Leases

    /// A lease of `ttl` seconds; keys written with it go when it expires.
    public func grantLease(ttl: Int64) async throws(EtcdError) -> (id: Int64, ttl: Int64) {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        let response = try await call { try await self.lease.leaseGrant(request, metadata: Self.requireLeader, options: self.options) }
        guard response.error.isEmpty else { throw .refused(response.error) }
        return (response.id, response.ttl)
    }

    /// Renews a lease once; returns its remaining time (0: it had expired).
    public func renewLease(_ id: Int64) async throws(EtcdError) -> Int64 {
        var keepAlive = Etcdserverpb_LeaseKeepAliveRequest()
        keepAlive.id = id
        let request = keepAlive
        return try await call {
            try await self.lease.leaseKeepAlive(metadata: Self.requireLeader, options: self.options) { writer in
                try await writer.write(request)
            } onResponse: { response in
                for try await message in response.messages { return message.ttl }
                return 0
            }
        }
    }

    public func revokeLease(_ id: Int64) async throws(EtcdError) {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = id
        _ = try await call { try await self.lease.leaseRevoke(request, metadata: Self.requireLeader, options: self.options) }
    }

    /// Runs one call, naming its failure as an `EtcdError`.
    func call<T: Sendable>(_ body: () async throws -> T) async throws(EtcdError) -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw EtcdError(error, endpoints: configuration.endpoints)
        } catch let error as EtcdError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }
}
