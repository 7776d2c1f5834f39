public import DNSWire
public import DispatchSockets
import Dispatch
import Synchronization

/// Forwarded answers, kept for their TTL: positive answers for the smallest TTL of their
/// records, negative ones (NXDOMAIN, NODATA) for the SOA's negative TTL (RFC 2308 §5: the
/// smaller of the SOA record's TTL and its MINIMUM), negative ones without an SOA and SERVFAIL
/// briefly; all clamped to a minimum and a maximum. Bounded in entries, with random eviction
/// in the full shard. Entries past their TTL are kept for `staleWindow` to answer when every
/// upstream fails (RFC 8767).
///
/// Each entry keeps the response pre-encoded with the offsets of its TTLs, so a hit is a copy,
/// an ID, the client's question letters and the TTLs patched in (`ResponseCache.write`), without
/// decoding or allocating. Shards keyed by a hash of the lower-cased name, type, class and the
/// DO/CD bits keep lookups from different cores apart.
public final class ResponseCache: Sendable {
    public struct Configuration: Sendable {
        /// Entries kept at most (0 turns the cache off).
        public var capacity: Int = 10_000
        public var minimumTTL: UInt32 = 0
        public var maximumTTL: UInt32 = 3600
        public var maximumNegativeTTL: UInt32 = 1800
        /// How long SERVFAIL from upstream is remembered (0: not cached).
        public var serverFailureTTL: UInt32 = 5
        /// How long a negative answer without an SOA is remembered (0: not cached). RFC 2308 §5
        /// says not to cache one at all, for fear of two caches feeding it to each other; Unbound
        /// and CoreDNS keep it 5 seconds, so that an upstream that leaves the SOA out is not asked
        /// again for every query of a name that does not exist.
        public var bareNegativeTTL: UInt32 = 5
        /// How long an expired entry may still answer when the upstreams fail (0: never).
        public var staleWindow: UInt32 = 0
        /// TTL of a stale answer (RFC 8767 recommends 30 s).
        public var staleTTL: UInt32 = 30
        /// Refresh an entry in the background when a hit finds less than this fraction of its
        /// TTL left (0 turns prefetch off) and it was asked at least `prefetchHits` times.
        public var prefetchFraction: Double = 0
        public var prefetchHits: Int = 2
        public init() {}
    }

    public struct Key: Hashable, Sendable {
        /// The lower-cased wire name with its terminating zero.
        public var name: [UInt8]
        public var type: UInt16
        public var recordClass: UInt16
        /// Bit 0: DO, bit 1: CD.
        public var bits: UInt8

        public init(_ question: Question, dnssecOK: Bool = false, checkingDisabled: Bool = false) {
            name = question.name.lookupKey
            type = question.type.rawValue
            recordClass = question.recordClass.rawValue
            bits = (dnssecOK ? 1 : 0) | (checkingDisabled ? 2 : 0)
        }

        public var dnssecOK: Bool { bits & 1 != 0 }
        public var checkingDisabled: Bool { bits & 2 != 0 }

        var hash: UInt64 { ResponseCache.hash(name.withUnsafeBytes { $0 }, type: type, recordClass: recordClass, bits: bits) }
    }

    /// One cached response.
    public final class Entry: Sendable {
        public let key: Key
        public let question: Question
        /// The upstream's response as received (TTLs as they were when stored).
        public let message: Message
        /// `message` encoded without OPT, ID 0, the question lower-cased.
        let wire: [UInt8]
        /// Where each record's TTL sits in `wire`, and its value when stored.
        let ttls: [(offset: Int, ttl: UInt32)]
        let counts: (UInt16, UInt16, UInt16)
        /// The upstream's RCODE (its header's four bits) and AD bit; the rest is set per client.
        let rcode: ResponseCode
        let isAuthenticData: Bool
        /// Uptime (ns) when stored, and the lifetime granted.
        public let stored: UInt64
        public let lifetime: UInt32
        let hits = Atomic<Int>(0)
        let prefetching = Atomic<Bool>(false)
        /// Times it answered (the fast path's and `fresh`'s hits).
        public var hitCount: Int { hits.load(ordering: .relaxed) }
        /// A composed answer's: the version of our zone it was made from (it answers only while
        /// that is the zone's current one), and the upstream's entry it ends in.
        public let token: (any AnyObject & Sendable)?
        public let source: Entry?

        init?(key: Key, question: Question, message: Message, lifetime: UInt32, now: UInt64) {
            var stripped = message
            stripped.edns = nil
            stripped.header.id = 0
            stripped.questions = [Question(name: question.name.lowercased, type: question.type, recordClass: question.recordClass)]
            let wire = stripped.encoded()
            guard let ttls = wire.withUnsafeBytes({ ResourceRecord.ttlOffsets(inMessage: $0) }) else { return nil }
            self.key = key
            self.question = question
            self.message = message
            self.wire = wire
            self.ttls = ttls
            counts = (UInt16(message.answers.count), UInt16(message.authorities.count), UInt16(message.additionals.count))
            rcode = ResponseCode(rawValue: UInt16(stripped.header.rcodeBits))
            isAuthenticData = stripped.header.isAuthenticData
            stored = now
            self.lifetime = lifetime
            token = nil
            source = nil
        }

        /// An answer of ours that ends in an upstream's: an ExternalName's CNAME, then the
        /// upstream's records for its target. `wire` is the general path's reply to the first
        /// client as `ReplyShape.unshaped` keeps it, made with `upstream`'s records as stored;
        /// its first `fixedRecords` answer records are our zone's (their TTLs stay as written),
        /// the rest age with `upstream`, whose lifetime it has.
        init?(key: Key, question: Question, composed wire: [UInt8], fixedRecords: Int, upstream: Entry, token: any AnyObject & Sendable) {
            guard let offsets = wire.withUnsafeBytes({ ResourceRecord.ttlOffsets(inMessage: $0) }), offsets.count >= fixedRecords,
                  let message = try? Message(decoding: wire) else { return nil }
            self.key = key
            self.question = question
            self.message = message
            self.wire = wire
            ttls = Array(offsets.dropFirst(fixedRecords))
            counts = (UInt16(message.answers.count), UInt16(message.authorities.count), UInt16(message.additionals.count))
            rcode = ResponseCode(rawValue: UInt16(message.header.rcodeBits))
            isAuthenticData = message.header.isAuthenticData
            stored = upstream.stored
            lifetime = upstream.lifetime
            self.token = token
            source = upstream
        }

        /// Seconds left before expiry (negative once expired).
        public func remaining(at now: UInt64) -> Int64 {
            Int64(lifetime) - Int64((now &- stored) / 1_000_000_000)
        }

        /// The message with every TTL lowered by the time spent in the cache (or set to `ttl`).
        public func aged(at now: UInt64, fixed ttl: UInt32? = nil) -> Message {
            let elapsed = UInt32(min(UInt64(UInt32.max), (now &- stored) / 1_000_000_000))
            func age(_ records: [ResourceRecord]) -> [ResourceRecord] {
                records.map { record in
                    var record = record
                    record.ttl = ttl ?? (record.ttl > elapsed ? record.ttl - elapsed : 0)
                    return record
                }
            }
            var out = message
            out.answers = age(message.answers)
            out.authorities = age(message.authorities)
            out.additionals = age(message.additionals)
            return out
        }
    }

    public let configuration: Configuration
    static let shardCount = 16
    final class Shard: Sendable {
        let table = Mutex<[UInt64: [Entry]]>([:])
        let count = Atomic<Int>(0)
    }
    let shards: [Shard]
    let hitCount = Atomic<Int>(0)
    let missCount = Atomic<Int>(0)
    let evictionCount = Atomic<Int>(0)

    /// What ages entries: the system's clock, or a test's.
    public let clock: any MonotonicClock

    public init(configuration: Configuration = Configuration(), clock: any MonotonicClock = SystemClock()) {
        self.configuration = configuration
        self.clock = clock
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.count.load(ordering: .relaxed) } }
    public var hits: Int { hitCount.load(ordering: .relaxed) }
    public var misses: Int { missCount.load(ordering: .relaxed) }
    public var evictions: Int { evictionCount.load(ordering: .relaxed) }

    /// The cache's clock now (nanoseconds).
    public func now() -> UInt64 { clock.now() }

    /// FNV-1a over the key's parts.
    static func hash(_ name: UnsafeRawBufferPointer, type: UInt16, recordClass: UInt16, bits: UInt8) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for byte in name { h = (h ^ UInt64(byte)) &* 0x100000001b3 }
        for byte in [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(recordClass >> 8), UInt8(recordClass & 0xFF), bits] {
            h = (h ^ UInt64(byte)) &* 0x100000001b3
        }
        return h
    }

    /// The entry for a lower-cased wire name and the rest of a key, fresh or stale.
    func entry(name: UnsafeRawBufferPointer, type: UInt16, recordClass: UInt16, bits: UInt8) -> Entry? {
        let h = Self.hash(name, type: type, recordClass: recordClass, bits: bits)
        return shards[Int(h % UInt64(Self.shardCount))].table.withLock { table -> Entry? in
            guard let bucket = table[h] else { return nil }
            for entry in bucket where entry.key.type == type && entry.key.recordClass == recordClass && entry.key.bits == bits
                && entry.key.name.count == name.count && entry.key.name.withUnsafeBytes({ $0.elementsEqual(name) }) {
                return entry
            }
            return nil
        }
    }

    public func entry(for key: Key) -> Entry? {
        key.name.withUnsafeBytes { entry(name: $0, type: key.type, recordClass: key.recordClass, bits: key.bits) }
    }

    /// A fresh entry for `key` (counted as a hit), or nil (counted as a miss).
    public func fresh(_ key: Key, now: UInt64? = nil) -> Entry? {
        let now = now ?? clock.now()
        if let entry = entry(for: key), entry.remaining(at: now) > 0 {
            hitCount.add(1, ordering: .relaxed)
            entry.hits.add(1, ordering: .relaxed)
            return entry
        }
        missCount.add(1, ordering: .relaxed)
        return nil
    }

    /// An expired entry still inside the stale window.
    public func stale(_ key: Key, now: UInt64? = nil) -> Entry? {
        let now = now ?? clock.now()
        guard configuration.staleWindow > 0, let entry = entry(for: key) else { return nil }
        return entry.remaining(at: now) > -Int64(configuration.staleWindow) ? entry : nil
    }

    /// The lifetime a response gets in the cache, or nil when it is not cached (truncated,
    /// an rcode other than NOERROR/NXDOMAIN/SERVFAIL).
    public func lifetime(of message: Message) -> UInt32? {
        guard !message.header.isTruncated else { return nil }
        let c = configuration
        switch message.rcode {
        case .serverFailure:
            return c.serverFailureTTL > 0 ? c.serverFailureTTL : nil
        case .noError where !message.answers.isEmpty:
            let ttl = message.answers.map(\.ttl).min()!
            return min(max(ttl, c.minimumTTL), c.maximumTTL)
        case .noError, .nameError:
            guard let soa = message.authorities.first(where: { $0.type == .soa }), case .soa(let data) = soa.data else {
                return c.bareNegativeTTL > 0 ? min(c.bareNegativeTTL, c.maximumNegativeTTL) : nil
            }
            return min(max(min(soa.ttl, data.minimum), c.minimumTTL), c.maximumNegativeTTL)
        default:
            return nil
        }
    }

    /// Stores a response; returns the entry, or nil when it is not cacheable.
    @discardableResult
    public func store(_ message: Message, for question: Question, key: Key, now: UInt64? = nil) -> Entry? {
        let now = now ?? clock.now()
        guard configuration.capacity > 0, let lifetime = lifetime(of: message), lifetime > 0,
              let entry = Entry(key: key, question: question, message: message, lifetime: lifetime, now: now) else { return nil }
        insert(entry, now: now)
        return entry
    }

    /// Stores an answer of ours that ends in `upstream`'s (see `Entry.init(key:question:composed:...)`),
    /// under the client's question: the fast path answers it (`respond`) while `upstream` is
    /// fresh and `token` is the current version of our zone. Returns the entry, or nil when it
    /// is not kept (cache off, no rcode the fast path writes, bytes that do not parse).
    @discardableResult
    public func storeComposed(_ wire: [UInt8], for question: Question, key: Key, fixedRecords: Int, upstream: Entry,
                              token: any AnyObject & Sendable) -> Entry? {
        guard configuration.capacity > 0,
              let entry = Entry(key: key, question: question, composed: wire, fixedRecords: fixedRecords, upstream: upstream, token: token),
              entry.rcode == .noError || entry.rcode == .nameError else { return nil }
        insert(entry, now: clock.now())
        return entry
    }

    /// Puts `entry` in its shard, in place of one with its key, evicting when the shard is full.
    func insert(_ entry: Entry, now: UInt64) {
        let key = entry.key
        let h = key.hash
        let index = Int(h % UInt64(Self.shardCount))
        let perShard = max(1, configuration.capacity / Self.shardCount)
        shards[index].table.withLock { table in
            var bucket = table[h] ?? []
            if let existing = bucket.firstIndex(where: { $0.key == key }) {
                bucket[existing] = entry
                table[h] = bucket
                return
            }
            if shards[index].count.load(ordering: .relaxed) >= perShard {
                // Evict: an expired entry if the first few looked at hold one, else a random one.
                var victim: UInt64? = nil
                var looked = 0
                for (hash, entries) in table {
                    if entries.contains(where: { $0.remaining(at: now) <= -Int64(configuration.staleWindow) }) { victim = hash; break }
                    looked += 1
                    if looked >= 8 { break }
                }
                if let hash = victim ?? table.randomElement()?.key, let removed = table.removeValue(forKey: hash) {
                    shards[index].count.subtract(removed.count, ordering: .relaxed)
                    evictionCount.add(removed.count, ordering: .relaxed)
                }
                bucket = table[h] ?? []
            }
            bucket.append(entry)
            table[h] = bucket
            shards[index].count.add(1, ordering: .relaxed)
        }
    }

    /// Drops everything (a zone was added or removed: names it covers must stop being forwarded).
    public func removeAll() {
        for index in 0..<Self.shardCount {
            shards[index].table.withLock { table in
                table.removeAll()
                shards[index].count.store(0, ordering: .relaxed)
            }
        }
    }
}

extension ResponseCache {
    /// The fast path of a cache hit: for a plain query already parsed into `view` (its
    /// lower-cased name in `name`), writes the response from a fresh entry into `output` and
    /// returns its length; nil when there is no fresh entry or the response does not fit
    /// the shape's limit (the general path truncates). The header bits and the OPT record are the
    /// shape's; the client's question letters are kept; TTLs are lowered by the time spent in
    /// the cache. A composed entry answers only when `isCurrent` says its token is the current
    /// version of its zone.
    public func respond(to query: UnsafeRawBufferPointer, view: QueryView, name: UnsafeRawBufferPointer,
                        into output: UnsafeMutableRawBufferPointer, shape: ReplyShape,
                        now: UInt64? = nil, isCurrent: (any AnyObject & Sendable) -> Bool = { _ in false }) -> (length: Int, entry: Entry)? {
        let now = now ?? clock.now()
        let bits: UInt8 = (shape.isDNSSECOK ? 1 : 0) | (shape.isCheckingDisabled ? 2 : 0)
        guard let entry = entry(name: name, type: view.type.rawValue, recordClass: view.recordClass.rawValue, bits: bits) else { return nil }
        if let token = entry.token, !isCurrent(token) { return nil }
        let remaining = entry.remaining(at: now)
        guard remaining > 0 else { return nil }
        let total = entry.wire.count + shape.optLength
        guard total <= shape.limit, total <= output.count, view.questionEnd <= entry.wire.count else { return nil }
        let elapsed = UInt32(min(UInt64(UInt32.max), (now &- entry.stored) / 1_000_000_000))
        entry.wire.withUnsafeBytes { wire in
            output.copyMemory(from: wire)
        }
        shape.writeHeader(into: output, rcode: entry.rcode, isAuthoritative: false, isAuthenticData: entry.isAuthenticData,
                          counts: entry.counts)
        // The client's question (same length: only letters' case can differ).
        for i in 12..<view.questionEnd { output[i] = query[i] }
        for (offset, ttl) in entry.ttls {
            ResourceRecord.setTTL(ttl > elapsed ? ttl - elapsed : 0, at: offset, in: output)
        }
        var length = entry.wire.count
        if let written = shape.writeOPT(into: output, at: length) { length += written }
        hitCount.add(1, ordering: .relaxed)
        entry.hits.add(1, ordering: .relaxed)
        return (length, entry)
    }
}
