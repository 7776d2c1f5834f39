public import CoreMetrics
import DispatchSockets
import Synchronization

/// A `MetricsFactory` whose timers and gauges live in atomics and are written here in
/// Prometheus's text format; counters and the rest are made by the factory it wraps.
/// - Timers: every answered query records a duration; here that is a bucket found by comparing
///   integers and two relaxed atomic additions, where swift-prometheus's histogram takes a
///   lock and compares each of its buckets as a 128-bit `Duration` (1.5 % of the server's CPU
///   at saturation).
/// - Gauges: there are two for each service (its endpoints, ready or not), 20,000 at 10,000
///   services. swift-prometheus's registry copies a name's whole family to add one series, so
///   making them cost O(n²) (the first scrape at 10,000 services took 3.7 s, and each new
///   service copied 20,000 entries under its lock); here a series is a dictionary entry.
/// `emit(into:)` writes both, for the daemon to append to its registry's text.
public struct AtomicMetricsFactory: MetricsFactory {
    public let base: any MetricsFactory
    /// Each histogram's upper bounds (`le`), ascending; an implicit `+Inf` follows.
    public let buckets: [Duration]
    let histograms = SeriesList<AtomicHistogram>(type: "histogram")
    let gauges = SeriesList<AtomicGauge>(type: "gauge")

    public init(wrapping base: any MetricsFactory, buckets: [Duration]) {
        self.base = base
        self.buckets = buckets.sorted()
    }

    /// The series of `label` and `dimensions`, made on first use: a timer made again for the
    /// same series (an upstream's, after a reconfiguration) goes on counting into it, as
    /// swift-prometheus's registry does, instead of writing the series twice.
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        histograms.series(label, dimensions) { AtomicHistogram(name: label, labels: dimensions, buckets: buckets) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? AtomicHistogram { histograms.remove(histogram) }
    }

    /// A gauge (swift-metrics makes one as a recorder that does not aggregate); an aggregating
    /// recorder is the wrapped factory's.
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !aggregate else { return base.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }
        return gauges.series(label, dimensions) { AtomicGauge(name: label, labels: dimensions) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? AtomicGauge { gauges.remove(gauge) } else { base.destroyRecorder(handler) }
    }

    /// Every gauge and histogram made and not destroyed, grouped by name (the text format's
    /// families: a `# TYPE` line, then every series of the name, by their labels), names in the
    /// order first made, gauges first.
    public func emit(into buffer: inout [UInt8]) {
        gauges.emit(into: &buffer)
        histograms.emit(into: &buffer)
    }

    public func emitToString() -> String {
        var buffer: [UInt8] = []
        emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        base.makeCounter(label: label, dimensions: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        base.makeFloatingPointCounter(label: label, dimensions: dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        base.makeMeter(label: label, dimensions: dimensions)
    }

    public func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
}

/// One series of the text format: a name, labels, and its lines.
protocol ExposedSeries: AnyObject, Sendable {
    var name: String { get }
    var labels: [(String, String)] { get }
    func emit(into buffer: inout [UInt8])
}

/// The series a factory has made, by name and labels; each made once.
final class SeriesList<Series: ExposedSeries>: Sendable {
    struct Family {
        /// When the name was first made: the families are written in that order.
        var order: Int
        /// By the labels' text (`labelKey`), the order they are written in.
        var series: [String: Series] = [:] {
            didSet { written = nil }
        }
        /// `series` in the order written, kept from one scrape to the next until a series comes
        /// or goes: sorting 20,000 label texts was a third of a scrape.
        var written: [Series]?
    }

    struct State {
        var families: [String: Family] = [:]
        var made = 0
    }

    /// The text format's type of the family (`# TYPE name type`).
    let type: String
    private let state = Mutex(State())

    init(type: String) { self.type = type }

    func series(_ name: String, _ labels: [(String, String)], make: () -> Series) -> Series {
        let key = Self.labelKey(labels)
        return state.withLock { state in
            if let made = state.families[name]?.series[key] { return made }
            let series = make()
            if state.families[name] == nil {
                state.families[name] = Family(order: state.made)
                state.made += 1
            }
            state.families[name]?.series[key] = series
            return series
        }
    }

    func remove(_ series: Series) {
        let key = Self.labelKey(series.labels)
        state.withLock { state in
            guard state.families[series.name]?.series[key] === series else { return }
            state.families[series.name]?.series[key] = nil
            if state.families[series.name]?.series.isEmpty == true { state.families[series.name] = nil }
        }
    }

    var all: [Series] { state.withLock { $0.families.values.flatMap(\.series.values) } }

    func emit(into buffer: inout [UInt8]) {
        let families = state.withLock { state in
            for (name, family) in state.families where family.written == nil {
                state.families[name]?.written = family.series.sorted { $0.key < $1.key }.map(\.value)
            }
            return state.families.map { (name: $0.key, order: $0.value.order, series: $0.value.written ?? []) }
        }
        for family in families.sorted(by: { $0.order < $1.order }) {
            buffer.append(contentsOf: "# TYPE \(family.name) \(type)\n".utf8)
            for series in family.series { series.emit(into: &buffer) }
        }
    }

    /// The labels as the text format writes them inside the braces: `a="x",b="y"`.
    static func labelKey(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\(escaped($0.1))\"" }.joined(separator: ",")
    }

    /// A label value as the text format quotes it.
    static func escaped(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}

/// One gauge series: a `Double` in an atomic, written as swift-prometheus writes it.
public final class AtomicGauge: RecorderHandler, ExposedSeries, Sendable {
    public let name: String
    public let labels: [(String, String)]
    private let bits = Atomic<UInt64>(0.0.bitPattern)
    /// `name{labels} `, made once.
    private let prefix: [UInt8]

    init(name: String, labels: [(String, String)]) {
        self.name = name
        self.labels = labels
        let key = SeriesList<AtomicGauge>.labelKey(labels)
        prefix = Array((key.isEmpty ? "\(name) " : "\(name){\(key)} ").utf8)
    }

    public var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }

    public func record(_ value: Int64) { record(Double(value)) }
    public func record(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }

    func emit(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: prefix)
        buffer.append(contentsOf: "\(value)\n".utf8)
    }
}

/// One histogram series: a count per bucket (not cumulative: one addition per value; summed
/// when written) and the sum in nanoseconds.
public final class AtomicHistogram: TimerHandler, ExposedSeries, @unchecked Sendable {
    public let name: String
    public let labels: [(String, String)]
    /// Upper bounds in nanoseconds, ascending.
    let bounds: [Int64]
    /// `bounds.count + 1` counters, the last for values above every bound. Touched only
    /// through their atomic operations.
    private let counts: UnsafeMutablePointer<Atomic<Int>>
    private let sum = Atomic<Int>(0)

    init(name: String, labels: [(String, String)], buckets: [Duration]) {
        self.name = name
        self.labels = labels
        bounds = buckets.map { Int64(clamping: $0.wholeNanoseconds) }
        counts = .allocate(capacity: bounds.count + 1)
        for index in 0...bounds.count { (counts + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counts.deinitialize(count: bounds.count + 1)
        counts.deallocate()
    }

    public func recordNanoseconds(_ duration: Int64) {
        let value = max(0, duration)
        // Most durations fall in the first buckets: a scan from the smallest stops early.
        var index = 0
        while index < bounds.count, bounds[index] < value { index += 1 }
        counts[index].wrappingAdd(1, ordering: .relaxed)
        sum.wrappingAdd(Int(truncatingIfNeeded: value), ordering: .relaxed)
    }

    /// The cumulative counts (one per bound, then `+Inf`, which is the count) and the sum.
    public var snapshot: (cumulative: [Int], sum: Duration) {
        var running = 0
        var cumulative: [Int] = []
        cumulative.reserveCapacity(bounds.count + 1)
        for index in 0...bounds.count {
            running += counts[index].load(ordering: .relaxed)
            cumulative.append(running)
        }
        return (cumulative, .nanoseconds(sum.load(ordering: .relaxed)))
    }

    func emit(into buffer: inout [UInt8]) {
        let (cumulative, total) = snapshot
        let labelText = SeriesList<AtomicHistogram>.labelKey(labels)
        let prefix = labelText.isEmpty ? "" : labelText + ","
        for (index, bound) in bounds.enumerated() {
            buffer.append(contentsOf: "\(name)_bucket{\(prefix)le=\"\(Self.seconds(bound))\"} \(cumulative[index])\n".utf8)
        }
        buffer.append(contentsOf: "\(name)_bucket{\(prefix)le=\"+Inf\"} \(cumulative[bounds.count])\n".utf8)
        let braced = labelText.isEmpty ? "" : "{\(labelText)}"
        buffer.append(contentsOf: "\(name)_sum\(braced) \(Self.seconds(Int64(clamping: total.wholeNanoseconds)))\n".utf8)
        buffer.append(contentsOf: "\(name)_count\(braced) \(cumulative[bounds.count])\n".utf8)
    }

    /// Nanoseconds as decimal seconds, exactly and without trailing zeros ("0.000025", "1.0"):
    /// the bounds and sums as swift-prometheus writes them.
    static func seconds(_ nanoseconds: Int64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = String(nanoseconds % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.count > 1, fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}
