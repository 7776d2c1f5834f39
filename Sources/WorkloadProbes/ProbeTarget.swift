public import NetAddress
public import ServiceRegistry

/// A probe's action made concrete for one pod: the address to reach (the pod's IP unless the
/// probe names a host), the port found by number or by the container's port name.
public enum ProbeTarget: Hashable, Sendable, CustomStringConvertible {
    case tcp(address: IPAddress, port: Int)
    case http(scheme: Probe.HTTPGet.Scheme, address: IPAddress, port: Int, host: String, path: String, headers: [Probe.HTTPGet.Header])
    case grpc(address: IPAddress, port: Int, service: String)
    case exec(command: [String])
    /// The probe cannot be run as written (a port name the container does not have, a host
    /// that is not an address): it fails every time, with this reason.
    case unusable(String)

    /// `action` for a pod at `podIP` whose container declares `ports`.
    public init(_ action: Probe.Action, podIP: String, ports: [Pod.ContainerPort]) {
        func address(_ host: String) -> IPAddress? { IPAddress(host.isEmpty ? podIP : host) }
        func port(_ value: IntOrString) -> Int? {
            switch value {
            case .int(let number): number
            case .string(let name): ports.first { $0.name == name }.map(\.containerPort)
            }
        }
        switch action {
        case .tcpSocket(let socket):
            guard let ip = address(socket.host) else { self = .unusable("no IP address to connect to (\"\(socket.host)\", pod IP \"\(podIP)\")"); return }
            guard let number = port(socket.port) else { self = .unusable("the container has no port named \"\(socket.port)\""); return }
            self = .tcp(address: ip, port: number)
        case .httpGet(let get):
            guard let ip = address(get.host) else { self = .unusable("no IP address to connect to (\"\(get.host)\", pod IP \"\(podIP)\")"); return }
            guard let number = port(get.port) else { self = .unusable("the container has no port named \"\(get.port)\""); return }
            // The Host header the kubelet sends: the host it connects to, unless a header says otherwise.
            let authority = !ip.isIPv4 ? "[\(ip)]:\(number)" : "\(ip):\(number)"
            self = .http(scheme: get.scheme, address: ip, port: number, host: authority,
                         path: get.path.isEmpty ? "/" : get.path, headers: get.headers)
        case .grpc(let grpc):
            guard let ip = address("") else { self = .unusable("the pod has no IP address (\"\(podIP)\")"); return }
            self = .grpc(address: ip, port: grpc.port, service: grpc.service)
        case .exec(let command):
            self = .exec(command: command)
        }
    }

    public var description: String {
        switch self {
        case .tcp(let address, let port): "tcp \(address):\(port)"
        case .http(let scheme, _, _, let host, let path, _): "\(scheme.rawValue.lowercased())://\(host)\(path)"
        case .grpc(let address, let port, let service): "grpc \(address):\(port) \(service.isEmpty ? "(server)" : service)"
        case .exec(let command): "exec \(command.joined(separator: " "))"
        case .unusable(let reason): "unusable: \(reason)"
        }
    }
}

/// Runs one probe attempt within its deadline.
public protocol ProbeRunner: Sendable {
    func run(_ target: ProbeTarget, timeout: Duration) async -> ProbeResult
    /// Starts the attempts and calls each one's `done` once with its result, from any thread.
    /// The prober starts the probes that come due together in one call: a runner that can
    /// make them without a task each (TCP connects on one epoll loop) saves a task, a
    /// continuation and two thread hops per attempt.
    func start(_ attempts: [ProbeAttempt])
}

/// One probe to make, and what to do with its result.
public struct ProbeAttempt: Sendable {
    public var target: ProbeTarget
    public var timeout: Duration
    public var done: @Sendable (ProbeResult) -> Void

    public init(target: ProbeTarget, timeout: Duration, done: @escaping @Sendable (ProbeResult) -> Void) {
        self.target = target
        self.timeout = timeout
        self.done = done
    }
}

extension ProbeRunner {
    public func start(_ attempts: [ProbeAttempt]) { startEach(attempts) }

    /// Each attempt in a task of its own, through `run`, on the shared pool (not on the
    /// executor of the prober's timetable: an exec probe waits for its command).
    public func startEach(_ attempts: [ProbeAttempt]) {
        for attempt in attempts {
            Task(executorPreference: globalConcurrentExecutor) { attempt.done(await run(attempt.target, timeout: attempt.timeout)) }
        }
    }
}
