public import CoreMetrics
import DispatchSockets
import Synchronization

/// A `MetricsFactory` whose timers are histograms counted in atomics; every other kind of
/// metric is made by the factory it wraps. Every answered query records a duration: here that
/// is a bucket found by comparing integers and two relaxed atomic additions, where
/// swift-prometheus's histogram takes a lock and compares each of its buckets as a 128-bit
/// `Duration` (1.5 % of the server's CPU at saturation). `emit(into:)` writes the histograms
/// in Prometheus's text format, for the daemon to append to its registry's.
public struct AtomicTimerFactory: MetricsFactory {
    public let base: any MetricsFactory
    /// Each histogram's upper bounds (`le`), ascending; an implicit `+Inf` follows.
    public let buckets: [Duration]
    let histograms = HistogramList()

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

    /// Every histogram made and not destroyed, grouped by name (the text format's families:
    /// a `# TYPE` line, then every series of the name), names in the order first made.
    public func emit(into buffer: inout [UInt8]) {
        let all = histograms.all
        var names: [String] = []
        var seen = Set<String>()
        for histogram in all where seen.insert(histogram.name).inserted { names.append(histogram.name) }
        for name in names {
            buffer.append(contentsOf: "# TYPE \(name) histogram\n".utf8)
            for histogram in all where histogram.name == name { histogram.emit(into: &buffer) }
        }
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

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        base.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
    }

    public func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    public func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
}

/// The histograms a factory has made, in the order made (the exposition's order), one per
/// name and labels.
final class HistogramList: Sendable {
    private let list = Mutex<[AtomicHistogram]>([])

    func series(_ name: String, _ labels: [(String, String)], make: () -> AtomicHistogram) -> AtomicHistogram {
        list.withLock { list in
            if let made = list.first(where: { $0.name == name && $0.labels.elementsEqual(labels, by: ==) }) { return made }
            let histogram = make()
            list.append(histogram)
            return histogram
        }
    }

    func remove(_ histogram: AtomicHistogram) { list.withLock { $0.removeAll { $0 === histogram } } }

    var all: [AtomicHistogram] { list.withLock { $0 } }
}

/// One histogram series: a count per bucket (not cumulative: one addition per value; summed
/// when written) and the sum in nanoseconds.
public final class AtomicHistogram: TimerHandler, @unchecked Sendable {
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
        let labelText = labels.map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",")
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
