import GRPCCore

/// Why a request to etcd failed, in the terms an operator acts on.
public enum EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The flags or files do not describe a usable etcd.
    case configuration(String)
    /// No member answered (down, unreachable, or no quorum): try again later.
    case unavailable(String)
    /// The request took longer than the request timeout (often: the cluster has lost quorum).
    case timeout(String)
    /// The revision asked for has been compacted away: list again, then watch from the list.
    case compacted(requested: Int64, compactRevision: Int64)
    /// The revision asked for is newer than any the store has reached.
    case futureRevision
    /// etcd refused the request (a bad argument, a missing lease, permissions, ...).
    case refused(String)

    public var description: String {
        switch self {
        case .configuration(let message): message
        case .unavailable(let message): "etcd is unavailable: \(message)"
        case .timeout(let message): "etcd did not answer in time: \(message)"
        case .compacted(let requested, let compactRevision):
            "etcd has compacted its history past revision \(requested) (compacted up to \(compactRevision))"
        case .futureRevision: "etcd has not reached the revision asked for"
        case .refused(let message): "etcd refused the request: \(message)"
        }
    }

    init(_ error: RPCError, endpoints: [EtcdConfiguration.Endpoint]) {
        let members = endpoints.map { "\($0.host):\($0.port)" }.joined(separator: ", ")
        switch error.code {
        case .unavailable: self = .unavailable("\(error.message) (\(members))")
        case .deadlineExceeded: self = .timeout("\(error.message) (\(members))")
        case .outOfRange where error.message.firstRange(of: "compacted") != nil: self = .compacted(requested: 0, compactRevision: 0)
        case .outOfRange where error.message.firstRange(of: "future revision") != nil: self = .futureRevision
        default: self = .refused("\(error.code): \(error.message)")
        }
    }
}
