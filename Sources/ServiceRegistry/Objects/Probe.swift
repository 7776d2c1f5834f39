/// A container's readiness or startup probe, as the kubelet runs it (core/v1 Probe): one
/// action, and the timings and thresholds that turn its results into readiness.
public struct Probe: Hashable, Sendable, Codable {
    public enum Action: Hashable, Sendable, Codable {
        case httpGet(HTTPGet)
        case tcpSocket(TCPSocket)
        case grpc(GRPC)
        /// A command run on the node: only with the daemon's `--probes-exec`.
        case exec(command: [String])
    }

    public struct HTTPGet: Hashable, Sendable, Codable {
        public enum Scheme: String, Hashable, Sendable, CaseIterable, Codable {
            case http = "HTTP"
            case https = "HTTPS"
        }
        public struct Header: Hashable, Sendable, Codable {
            public var name: String
            public var value: String
            public init(name: String, value: String) {
                self.name = name
                self.value = value
            }
        }
        /// The address to connect to; empty means the pod's IP.
        public var host: String
        public var scheme: Scheme
        public var path: String
        public var port: IntOrString
        public var headers: [Header]
        public init(host: String = "", scheme: Scheme = .http, path: String = "/", port: IntOrString, headers: [Header] = []) {
            self.host = host
            self.scheme = scheme
            self.path = path
            self.port = port
            self.headers = headers
        }
    }

    public struct TCPSocket: Hashable, Sendable, Codable {
        public var host: String
        public var port: IntOrString
        public init(host: String = "", port: IntOrString) {
            self.host = host
            self.port = port
        }
    }

    public struct GRPC: Hashable, Sendable, Codable {
        public var port: Int
        /// The service name sent in the health check request; empty asks for the server.
        public var service: String
        public init(port: Int, service: String = "") {
            self.port = port
            self.service = service
        }
    }

    public var action: Action
    public var initialDelaySeconds: Int
    public var periodSeconds: Int
    public var timeoutSeconds: Int
    public var successThreshold: Int
    public var failureThreshold: Int

    /// The kubelet's defaults: every 10 s, 1 s to answer, ready after 1 success, not ready after 3 failures.
    public init(action: Action, initialDelaySeconds: Int = 0, periodSeconds: Int = 10, timeoutSeconds: Int = 1,
                successThreshold: Int = 1, failureThreshold: Int = 3) {
        self.action = action
        self.initialDelaySeconds = initialDelaySeconds
        self.periodSeconds = periodSeconds
        self.timeoutSeconds = timeoutSeconds
        self.successThreshold = successThreshold
        self.failureThreshold = failureThreshold
    }
}
