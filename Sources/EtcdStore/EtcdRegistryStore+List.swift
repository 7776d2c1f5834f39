import Dispatch
import EtcdClient
import ServiceRegistry

/// A listing: every object of some kinds, read at one revision, in pages.
extension EtcdRegistryStore {
    /// The keys from `start` up to `end` (excluded).
    struct KeyRange: Sendable {
        var start: [UInt8]
        var end: [UInt8]
    }

    /// What one range of a listing gave.
    struct ListedPart: Sendable {
        var objects: [RegistryObject] = []
        var leasedNodes: Set<String> = []
    }

    /// The ranges a listing reads: each kind's prefix (and the leases' beside the nodes) when
    /// `kinds` names them; else the whole registry cut at every kind's prefix, so that its
    /// large kinds (slices, pods, services) are read side by side, as each informer of
    /// kube-apiserver's clients lists its own kind, and a key of no known kind is still read
    /// (and told as skipped).
    func listedRanges(kinds: Set<ObjectKind>?) -> [KeyRange] {
        guard let kinds else {
            let cuts = (ObjectKind.allCases.map(kindPrefix) + [leasesPrefix]).sorted { $0.lexicographicallyPrecedes($1) }
            let bounds = [objectsPrefix] + cuts + [EtcdClient.rangeEnd(ofPrefix: objectsPrefix)]
            return zip(bounds, bounds.dropFirst()).map { KeyRange(start: $0, end: $1) }
        }
        return (kinds.sorted().map(kindPrefix) + (kinds.contains(.node) ? [leasesPrefix] : [])).map {
            KeyRange(start: $0, end: EtcdClient.rangeEnd(ofPrefix: $0))
        }
    }

    /// The objects into the listing, or each page's to `page` when there is one (one page at a
    /// time, in the order of their keys within a kind; the kinds' pages interleave). The first
    /// range's first page is read from the cluster (a linearizable read), at `revision` or the
    /// latest, which the rest are then read at, member-local.
    func listing(at revision: Int64, kinds: Set<ObjectKind>?,
                 page give: (@Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void)?) async throws(StoreError) -> StoreListing {
        let ranges = listedRanges(kinds: kinds)
        var at = revision
        do {
            let first = try await client.range(ranges[0].start, end: ranges[0].end, revision: revision, limit: Self.pageSize)
            if at == 0 { at = first.revision }
            let parts = try await readSideBySide(ranges, first: first, at: at, page: give)
            return StoreListing(objects: parts.flatMap(\.objects), revision: at,
                                leasedNodes: parts.reduce(into: []) { $0.formUnion($1.leasedNodes) })
        } catch let error as EtcdError {
            switch error {
            case .compacted: throw .expired(revision: at)
            case .futureRevision: throw .futureRevision(at)
            default: throw .unavailable(error.description)
            }
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// How many ranges are read at once: while one range's page is decoded, the other's next
    /// page is on its way, so a start waits on etcd less often.
    static let rangesSideBySide = 2

    /// Every range read (`rangesSideBySide` at a time), each range's part in `ranges`' order.
    func readSideBySide(_ ranges: [KeyRange], first: EtcdRange, at revision: Int64,
                        page give: (@Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void)?) async throws -> [ListedPart] {
        // One page decoded at a time, each on every core, off the tasks' threads.
        let decoding = DispatchQueue(label: "etcd listing")
        return try await withThrowingTaskGroup(of: (Int, ListedPart).self) { group in
            var parts = [ListedPart](repeating: ListedPart(), count: ranges.count)
            var started = 0
            func startNext() {
                let index = started
                started += 1
                group.addTask {
                    (index, try await self.read(ranges[index], first: index == 0 ? first : nil, at: revision,
                                                decoding: decoding, page: give))
                }
            }
            while started < min(Self.rangesSideBySide, ranges.count) { startNext() }
            while let (index, part) = try await group.next() {
                parts[index] = part
                if started < ranges.count { startNext() }
            }
            return parts
        }
    }

    /// The keys in `range` (starting with `first` when it has been read), at `revision`. Page
    /// by page, each page decoded on every core while the next is on its way: the values are
    /// never all held at once, and a start at 10,000 services is not one core's JSON decoding.
    /// Pages are sized by bytes (`nextPageSize`; tapered toward the end for `page`).
    func read(_ range: KeyRange, first: EtcdRange?, at revision: Int64, decoding: DispatchQueue,
              page give: (@Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void)?) async throws -> ListedPart {
        let leases = leasesPrefix
        var part = ListedPart()
        var page = if let first { first } else {
            try await client.range(range.start, end: range.end, revision: revision, limit: Self.pageSize, memberLocal: true)
        }
        while true {
            let after = page.more ? page.keyValues.last.map { $0.key + [0] } : nil
            var limit = Self.nextPageSize(afterKeys: page.keyValues.count,
                                          bytes: page.keyValues.reduce(0) { $0 + $1.key.count + $1.value.count })
            if give != nil { limit = Self.tapered(limit, remaining: page.count - Int64(page.keyValues.count)) }
            async let next: EtcdRange? = after == nil ? nil
                : client.range(after!, end: range.end, revision: revision, limit: limit, memberLocal: true)
            var values: [EtcdKeyValue] = []
            values.reserveCapacity(page.keyValues.count)
            for keyValue in page.keyValues {
                if let node = nodeLease(keyValue.key, base: leases) { part.leasedNodes.insert(node) } else { values.append(keyValue) }
            }
            if !values.isEmpty {
                let listed = values
                // Decoded, and handed to `give`, one page at a time.
                part.objects += await withCheckedContinuation { done in
                    decoding.async {
                        let objects = self.decodeConcurrently(listed)
                        guard let give else { return done.resume(returning: objects) }
                        give(objects, revision)
                        done.resume(returning: [])
                    }
                }
            }
            guard let following = try await next else { break }
            page = following
        }
        return part
    }

    /// The first page's keys; each page after asks for as many keys as `pageBytes` holds at
    /// the average size of the page before (within 50 and 10,000): fewer round trips, and
    /// less of etcd's work per value, than pages of a fixed count, without a page of large
    /// objects holding far more memory than one of small ones.
    static let pageSize: Int64 = 1000
    static let pageBytes = 4 << 20

    static func nextPageSize(afterKeys keys: Int, bytes: Int) -> Int64 {
        guard keys > 0, bytes > 0 else { return pageSize }
        return Int64(min(10_000, max(50, pageBytes / max(1, bytes / keys))))
    }

    /// A page size for a reader that works on each page as it arrives: no more than half of
    /// what is left (and no less than `taperFloor`), so the pages shrink toward the end and the
    /// reader's work on the last one, all that is left when it arrives, is small.
    static func tapered(_ limit: Int64, remaining: Int64) -> Int64 {
        min(limit, max(taperFloor, remaining / 2))
    }

    static let taperFloor: Int64 = 500

    /// `keyValues` decoded on every core, in their order.
    func decodeConcurrently(_ keyValues: [EtcdKeyValue]) -> [RegistryObject] {
        inChunksOnEveryCore(keyValues, atLeast: 64) { chunk in
            let reader = StoredJSONReader()
            return chunk.compactMap { self.decode($0, reader: reader) }
        }
    }
}
