import DNSWire
import NetAddress

extension Registry {
    /// Applies one object under the lock. With `batch`, the change is neither stored nor
    /// published: it is appended to `batch` for the caller to commit and publish together.
    static func applyLocked(_ input: RegistryObject, state: inout State, storage: (any RegistryStorage)?,
                            isRestore: Bool, validated: Bool = false,
                            batch: UnsafeMutablePointer<[WatchEvent]>? = nil) throws(RegistryError) -> ApplyOutcome {
        let key = input.key
        let existing = state.snapshot.objects[key]
        var (object, allocations) = try prepared(input, existing: existing, allocations: state.allocations, snapshot: state.snapshot,
                                                 wallClock: state.wallClock, isRestore: isRestore, validated: validated)
        if let existing, existing == object, !isRestore { return .unchanged }

        let version = isRestore ? max(state.snapshot.resourceVersion, input.metadata.resourceVersion)
                                : state.snapshot.resourceVersion + 1
        object.metadata.resourceVersion = isRestore ? input.metadata.resourceVersion : version
        if let storage, batch == nil { try storage.commit(upsert: object, delete: nil, resourceVersion: version) }

        state.allocations = allocations
        let event = install(object, replacing: existing, version: version, state: &state)
        if let batch { batch.pointee.append(event) } else { publish(event, state: &state) }
        return existing == nil ? .created : .configured
    }

    /// `input` validated (unless the caller did: `validated`), defaulted and allocated against
    /// `allocations` as it would be stored over `existing` (its uid, creation time and version
    /// kept): the object, and the allocations with it in them. Nothing in the registry changes.
    static func prepared(_ input: RegistryObject, existing: RegistryObject?, allocations base: Allocations, snapshot: RegistrySnapshot,
                         wallClock: () -> Int64, isRestore: Bool, validated: Bool = false) throws(RegistryError) -> (RegistryObject, Allocations) {
        let fieldErrors = validated ? [] : Validation.validate(input)
        if !fieldErrors.isEmpty {
            throw .invalid(kind: input.kind, name: input.metadata.name, errors: fieldErrors)
        }
        var allocations = base
        if let existing { allocations.release(existing) }

        var object = input
        switch input {
        case .service(let service):
            var old: Service? = nil
            if case .service(let s)? = existing { old = s }
            object = .service(try prepare(service, old: old, allocations: &allocations))
        case .pod(let pod):
            var old: Pod? = nil
            if case .pod(let p)? = existing { old = p }
            var prepared = try prepare(pod, allocations: &allocations)
            if !isRestore { stampReadyTransition(&prepared, old: old, now: wallClock) }
            object = .pod(prepared)
        case .node(let node):
            try prepare(node, old: existing, allocations: &allocations, pods: snapshot)
        default:
            break
        }

        var meta = object.metadata
        meta.uidValue = existing?.metadata.uidValue ?? (input.metadata.uidValue.isEmpty ? .random() : input.metadata.uidValue)
        meta.creationTimestamp = existing?.metadata.creationTimestamp
            ?? (isRestore ? input.metadata.creationTimestamp : nil) ?? wallClock()
        meta.resourceVersion = existing?.metadata.resourceVersion ?? 0
        object.metadata = meta
        return (object, allocations)
    }

    /// Puts `object` (at `version`) in place of `existing` in the snapshot, its indexes and its
    /// services' endpoints; returns the change for watchers.
    static func install(_ object: RegistryObject, replacing existing: RegistryObject?, version: UInt64, state: inout State) -> WatchEvent {
        state.snapshot.objects[object.key] = object
        state.snapshot.resourceVersion = version
        if let existing { state.indexes.remove(existing) }
        state.indexes.add(object)
        let changed = recomputeEndpoints(after: object, previous: existing, snapshot: &state.snapshot, indexes: state.indexes)
        return WatchEvent(resourceVersion: version, change: existing == nil ? .added : .modified,
                          object: object, previous: existing, endpointsChanged: changed)
    }

    /// Takes `existing` out of the snapshot, its indexes and its services' endpoints (its
    /// allocations are the caller's); returns the change for watchers.
    static func uninstall(_ existing: RegistryObject, version: UInt64, state: inout State) -> WatchEvent {
        state.snapshot.objects[existing.key] = nil
        state.snapshot.resourceVersion = version
        state.indexes.remove(existing)
        let changed = recomputeEndpoints(after: nil, previous: existing, snapshot: &state.snapshot, indexes: state.indexes)
        return WatchEvent(resourceVersion: version, change: .deleted, object: existing, previous: existing, endpointsChanged: changed)
    }

    static func deleteLocked(_ key: ObjectKey, state: inout State, storage: any RegistryStorage) throws(RegistryError) -> RegistryObject {
        guard let existing = state.snapshot.objects[key] else { throw .notFound(key) }
        let version = state.snapshot.resourceVersion + 1
        try storage.commit(upsert: nil, delete: key, resourceVersion: version)
        state.allocations.release(existing)
        publish(uninstall(existing, version: version, state: &state), state: &state)
        return existing
    }

    // MARK: Services

    static func prepare(_ input: Service, old: Service?, allocations: inout Allocations) throws(RegistryError) -> Service {
        var service = input
        var spec = service.spec
        var errors: [FieldError] = []
        let name = service.metadata.name

        // What an update may and may not change; what it inherits when it does not say.
        if let old, old.spec.type != .externalName, spec.type != .externalName {
            if spec.clusterIP.isEmpty && spec.clusterIPs.isEmpty {
                spec.clusterIP = old.spec.clusterIP
                spec.clusterIPs = old.spec.clusterIPs
                if spec.ipFamilies.isEmpty { spec.ipFamilies = old.spec.ipFamilies }
                if spec.ipFamilyPolicy == nil { spec.ipFamilyPolicy = old.spec.ipFamilyPolicy }
            } else {
                let requested = spec.clusterIP.isEmpty ? spec.clusterIPs[0] : spec.clusterIP
                if requested != old.spec.clusterIP {
                    errors.append(FieldError("spec.clusterIP", .immutable(value: FieldError.quoted(requested))))
                }
            }
            for i in spec.ports.indices where spec.ports[i].nodePort == 0 {
                let p = spec.ports[i]
                if let match = old.spec.ports.first(where: { $0.port == p.port && $0.protocol == p.protocol && $0.nodePort != 0 }) {
                    spec.ports[i].nodePort = match.nodePort
                }
            }
            if spec.type == .loadBalancer && old.spec.type == .loadBalancer
                && (spec.loadBalancerIP.isEmpty || spec.loadBalancerIP == old.spec.loadBalancerIP)
                && input.status.loadBalancerIngress.isEmpty {
                service.status.loadBalancerIngress = old.status.loadBalancerIngress
            }
        }
        if !errors.isEmpty { throw .invalid(kind: .service, name: name, errors: errors) }

        // Defaults, stored as kube-apiserver stores them, so that an object read and written
        // back unchanged is unchanged.
        for i in spec.ports.indices where spec.ports[i].targetPort == nil {
            spec.ports[i].targetPort = .int(spec.ports[i].port)
        }

        // Cluster IPs.
        switch spec.type {
        case .externalName:
            // An internationalised name is stored as its A-labels (validation checked it converts).
            if spec.externalName.utf8.contains(where: { $0 >= 0x80 }),
               let ascii = try? DomainName(unicode: spec.externalName) {
                spec.externalName = ascii.description.hasSuffix(".") && !spec.externalName.hasSuffix(".")
                    ? String(ascii.description.dropLast()) : ascii.description
            }
            spec.clusterIP = ""
            spec.clusterIPs = []
            spec.ipFamilies = []
            spec.ipFamilyPolicy = nil
        default:
            try allocateClusterIPs(&spec, name: name, allocations: &allocations)
        }

        // Node ports: one per port for NodePort and LoadBalancer services.
        if spec.type == .nodePort || spec.type == .loadBalancer {
            var given: [Int: Int] = [:]  // requested nodePort → index of the port that took it
            for i in spec.ports.indices {
                let path = "spec.ports[\(i)].nodePort"
                let requested = spec.ports[i].nodePort
                if requested != 0 {
                    // The same port number for TCP and UDP may share one node port.
                    if let j = given[requested], spec.ports[j].port == spec.ports[i].port { continue }
                    do throws(PortAllocator.Failure) {
                        try allocations.nodePorts.allocate(requested)
                        given[requested] = i
                    } catch .notInRange {
                        let r = allocations.nodePorts.range
                        errors.append(.invalid(path, String(requested), "provided port is not in the valid range. The range of valid ports is \(r.lowerBound)-\(r.upperBound)"))
                    } catch {
                        errors.append(.invalid(path, String(requested), "provided port is already allocated"))
                    }
                } else {
                    do throws(PortAllocator.Failure) {
                        spec.ports[i].nodePort = try allocations.nodePorts.allocateNext()
                    } catch {
                        errors.append(.invalid(path, "0", "failed to allocate a nodePort: range is full"))
                    }
                }
            }
        } else {
            for i in spec.ports.indices { spec.ports[i].nodePort = 0 }
        }

        // Load-balancer address: from the pool, or pending without one.
        if spec.type == .loadBalancer && !allocations.loadBalancer.isEmpty {
            let pool = allocations.loadBalancer.map(\.prefix.description).joined(separator: ", ")
            let requested = !spec.loadBalancerIP.isEmpty ? spec.loadBalancerIP : service.status.loadBalancerIngress.first
            if let requested, let ip = IPAddress(requested) {
                if let index = allocations.loadBalancer.firstIndex(where: { $0.prefix.contains(ip) }) {
                    do throws(IPAllocator.Failure) {
                        try allocations.loadBalancer[index].allocate(ip)
                        service.status.loadBalancerIngress = [ip.description]
                    } catch {
                        errors.append(.invalid("spec.loadBalancerIP", FieldError.quoted(requested), "provided IP is already allocated"))
                    }
                } else {
                    errors.append(.invalid("spec.loadBalancerIP", FieldError.quoted(requested), "not in the load-balancer pool (\(pool))"))
                }
            } else {
                var allocated: IPAddress? = nil
                for index in allocations.loadBalancer.indices where allocated == nil {
                    allocated = try? allocations.loadBalancer[index].allocateNext()
                }
                if let allocated {
                    service.status.loadBalancerIngress = [allocated.description]
                } else {
                    errors.append(.invalid("spec.loadBalancerIP", "\"\"", "failed to allocate a load-balancer IP: the pool (\(pool)) is full"))
                }
            }
        } else {
            service.status.loadBalancerIngress = []
        }
        if !errors.isEmpty { throw .allocation(kind: .service, name: name, errors: errors) }
        service.spec = spec
        return service
    }

    static func allocateClusterIPs(_ spec: inout Service.Spec, name: String, allocations: inout Allocations) throws(RegistryError) {
        let policy = spec.ipFamilyPolicy ?? .singleStack
        var requested = spec.clusterIPs
        if requested.isEmpty && !spec.clusterIP.isEmpty { requested = [spec.clusterIP] }
        let headless = requested.first == "None" || spec.isHeadless

        // Families: as asked, else those of the requested IPs, else the cluster's primary.
        var families = spec.ipFamilies
        if families.isEmpty {
            families = headless ? [] : requested.compactMap(IPAddress.init).map { $0.isIPv4 ? .ipv4 : .ipv6 }
        }
        if families.isEmpty { families = [allocations.primaryFamily] }
        let configured = Set(allocations.serviceIPs.map { $0.prefix.network.isIPv4 ? IPFamily.ipv4 : .ipv6 })
        if policy != .singleStack && families.count == 1 {
            let other: IPFamily = families[0] == .ipv4 ? .ipv6 : .ipv4
            if configured.contains(other) {
                families.append(other)
            } else if policy == .requireDualStack {
                throw .invalid(kind: .service, name: name, errors: [
                    .invalid("spec.ipFamilyPolicy", "\"RequireDualStack\"", "this cluster is not configured for dual-stack services")])
            }
        }
        for (i, family) in families.enumerated() where !configured.contains(family) {
            throw .invalid(kind: .service, name: name, errors: [
                .invalid("spec.ipFamilies[\(i)]", FieldError.quoted(family.rawValue), "not configured on this cluster")])
        }
        spec.ipFamilies = families
        spec.ipFamilyPolicy = policy
        if headless {
            spec.clusterIP = "None"
            spec.clusterIPs = ["None"]
            return
        }
        var assigned: [String] = []
        for (i, family) in families.enumerated() {
            guard let index = allocations.serviceAllocatorIndex(for: family) else { continue }
            let cidr = allocations.serviceIPs[index].prefix
            if i < requested.count {
                let text = requested[i]
                guard let ip = IPAddress(text), ip.isIPv4 == (family == .ipv4) else {
                    throw .invalid(kind: .service, name: name, errors: [
                        .invalid("spec.clusterIPs[\(i)]", FieldError.quoted(text), "expected an \(family.rawValue) address")])
                }
                do throws(IPAllocator.Failure) {
                    try allocations.serviceIPs[index].allocate(ip)
                } catch .notInRange {
                    throw .allocation(kind: .service, name: name, errors: [
                        .invalid("spec.clusterIPs", "[\"\(text)\"]", "failed to allocate IP \(text): the provided IP (\(text)) is not in the valid range. The range of valid IPs is \(cidr)")])
                } catch {
                    throw .allocation(kind: .service, name: name, errors: [
                        .invalid("spec.clusterIPs", "[\"\(text)\"]", "failed to allocate IP \(text): provided IP is already allocated")])
                }
                assigned.append(ip.description)
            } else {
                do throws(IPAllocator.Failure) {
                    assigned.append(try allocations.serviceIPs[index].allocateNext().description)
                } catch {
                    throw .allocation(kind: .service, name: name, errors: [
                        .invalid("spec.clusterIPs", "[]", "failed to allocate a service IP from \(cidr): range is full")])
                }
            }
        }
        spec.clusterIPs = assigned
        spec.clusterIP = assigned.first ?? ""
    }

    // MARK: Pods and nodes

    /// The Ready condition's transition time, as the kubelet keeps it: a write that changes the
    /// status without giving a new time gets the current one; one that leaves the status
    /// alone without giving a time keeps the stored one.
    static func stampReadyTransition(_ pod: inout Pod, old: Pod?, now: () -> Int64) {
        guard let ready = pod.status.isReady else { return }
        let given = pod.status.readyTransitionTime
        guard given == nil || given == old?.status.readyTransitionTime else { return }
        if let old, old.status.isReady == ready {
            pod.status.readyTransitionTime = old.status.readyTransitionTime ?? given
        } else {
            pod.status.readyTransitionTime = now()
        }
    }

    static func prepare(_ input: Pod, allocations: inout Allocations) throws(RegistryError) -> Pod {
        var pod = input
        // A hostNetwork pod's address is its node's: nothing of the pod CIDRs is its own.
        guard !pod.spec.hostNetwork, var allocators = allocations.podIPs[pod.spec.nodeName] else { return pod }
        if pod.status.podIPs.isEmpty {
            // kubenet style: a pod scheduled without an IP gets one from its node's pod CIDRs.
            for i in allocators.indices {
                if let ip = try? allocators[i].allocateNext() { pod.status.podIPs.append(ip.description) }
            }
            pod.status.podIP = pod.status.podIPs.first ?? ""
        } else {
            for (n, text) in pod.status.podIPs.enumerated() {
                guard let ip = IPAddress(text), let i = allocators.firstIndex(where: { $0.prefix.contains(ip) }) else { continue }
                do throws(IPAllocator.Failure) {
                    try allocators[i].allocate(ip)
                } catch .alreadyAllocated {
                    throw .allocation(kind: .pod, name: pod.metadata.name, errors: [
                        .invalid("status.podIPs[\(n)].ip", FieldError.quoted(text), "already in use by another pod on node \(pod.spec.nodeName)")])
                } catch {
                    // The network address, the bridge's first host or the broadcast: let it be,
                    // the operator assigned it.
                }
            }
        }
        allocations.podIPs[pod.spec.nodeName] = allocators
        return pod
    }

    static func prepare(_ node: Node, old: RegistryObject?, allocations: inout Allocations,
                        pods snapshot: RegistrySnapshot) throws(RegistryError) {
        if case .node(let oldNode)? = old, !oldNode.podCIDRs.isEmpty, oldNode.podCIDRs != node.podCIDRs {
            throw .invalid(kind: .node, name: node.metadata.name, errors: [
                FieldError("spec.podCIDRs", .forbidden(detail: "node updates may not change podCIDR except from \"\" to valid"))])
        }
        allocations.podIPs[node.metadata.name] = Allocations.podAllocators(of: node, snapshot: snapshot)
    }

    // MARK: Endpoints

    /// Recomputes the derived endpoints of the services a change can affect; returns those that changed.
    static func recomputeEndpoints(after object: RegistryObject?, previous: RegistryObject?,
                                   snapshot: inout RegistrySnapshot, indexes: Indexes) -> [ObjectKey] {
        var affected = Set<ObjectKey>()
        for candidate in [object, previous].compactMap({ $0 }) {
            let namespace = candidate.metadata.namespace
            switch candidate {
            case .service(let s):
                affected.insert(s.key)
            case .pod(let pod):
                for key in indexes.selectorServices[namespace, default: []] {
                    if case .service(let s)? = snapshot.objects[key], let selector = s.spec.selector,
                       EndpointsController.selects(selector, pod.metadata.labels) {
                        affected.insert(key)
                    }
                }
            case .endpointSlice(let slice):
                if let name = slice.serviceName { affected.insert(ObjectKey(.service, namespace: namespace, name: name)) }
            case .endpoints(let e):
                affected.insert(ObjectKey(.service, namespace: namespace, name: e.metadata.name))
            default:
                break
            }
        }
        var changed: [ObjectKey] = []
        for key in affected.sorted() {
            let endpoints = computeEndpoints(for: key, in: snapshot, indexes: indexes)
            if snapshot.serviceEndpoints[key] != endpoints {
                snapshot.serviceEndpoints[key] = endpoints
                changed.append(key)
            }
        }
        return changed
    }

    static func computeEndpoints(for key: ObjectKey, in snapshot: RegistrySnapshot, indexes: Indexes) -> ServiceEndpoints? {
        guard let source = endpointSource(for: key, in: snapshot, indexes: indexes) else { return nil }
        let unreachable = snapshot.unreachableNodes.isEmpty ? []
            : ServiceEndpoints.nodes(of: source).intersection(snapshot.unreachableNodes)
        return ServiceEndpoints(service: key, source: source, unreachable: unreachable)
    }

    static func endpointSource(for key: ObjectKey, in snapshot: RegistrySnapshot, indexes: Indexes) -> ServiceEndpoints.Source? {
        guard let object = snapshot.objects[key], case .service(let service) = object, service.spec.type != .externalName else { return nil }
        if let selector = service.spec.selector, !selector.isEmpty {
            let pods = indexes.pods[key.namespace, default: []].sorted().compactMap { podKey -> RegistryObject? in
                if let object = snapshot.objects[podKey], case .pod(let pod) = object, EndpointsController.selects(selector, pod.metadata.labels),
                   !pod.status.podIPs.isEmpty { return object }
                return nil
            }
            return pods.isEmpty ? nil : .pods(service: object, pods: pods)
        }
        let slices = indexes.slices[key, default: []].sorted().compactMap { sliceKey -> RegistryObject? in
            if let object = snapshot.objects[sliceKey], case .endpointSlice = object { return object }
            return nil
        }
        if !slices.isEmpty, slices.contains(where: { !$0.asSlice.endpoints.isEmpty }) {
            return .slices(service: object, slices: slices)
        }
        if slices.isEmpty, let legacy = snapshot.objects[ObjectKey(.endpoints, namespace: key.namespace, name: key.name)],
           case .endpoints(let endpoints) = legacy,
           endpoints.subsets.contains(where: { !$0.addresses.isEmpty || !$0.notReadyAddresses.isEmpty }) {
            return .legacy(service: object, endpoints: legacy)
        }
        return nil
    }
}
