@testable import ClusterDNS
import CoreMetrics
import Foundation
import MetricsTestKit
import Prometheus
import Testing
import TestSupport

@Suite struct AtomicMetricsTests {
    static let buckets: [Duration] = [.microseconds(25), .milliseconds(1), .seconds(1)]

    struct Case: CustomTestStringConvertible, Sendable {
        let reason: String
        let nanoseconds: [Int64]
        let expected: [String]
        var testDescription: String { reason }
    }

    /// Recorded durations → the exposition, line for line.
    static let cases: [Case] = [
        Case(reason: "nothing recorded: every bucket at 0", nanoseconds: [], expected: [
            #"t_bucket{transport="udp",le="0.000025"} 0"#, #"t_bucket{transport="udp",le="0.001"} 0"#,
            #"t_bucket{transport="udp",le="1.0"} 0"#, #"t_bucket{transport="udp",le="+Inf"} 0"#,
            #"t_sum{transport="udp"} 0.0"#, #"t_count{transport="udp"} 0"#,
        ]),
        Case(reason: "a bound is in its own bucket (le), one past it in the next; buckets cumulative", nanoseconds: [0, 25_000, 25_001, 1_000_000], expected: [
            #"t_bucket{transport="udp",le="0.000025"} 2"#, #"t_bucket{transport="udp",le="0.001"} 4"#,
            #"t_bucket{transport="udp",le="1.0"} 4"#, #"t_bucket{transport="udp",le="+Inf"} 4"#,
            #"t_sum{transport="udp"} 0.001050001"#, #"t_count{transport="udp"} 4"#,
        ]),
        Case(reason: "above every bound: only +Inf; a negative duration counts as 0", nanoseconds: [2_000_000_000, -5], expected: [
            #"t_bucket{transport="udp",le="0.000025"} 1"#, #"t_bucket{transport="udp",le="0.001"} 1"#,
            #"t_bucket{transport="udp",le="1.0"} 1"#, #"t_bucket{transport="udp",le="+Inf"} 2"#,
            #"t_sum{transport="udp"} 2.0"#, #"t_count{transport="udp"} 2"#,
        ]),
    ]

    @Test(arguments: cases) func exposition(_ test: Case) {
        let factory = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: Self.buckets)
        let timer = CoreMetrics.Timer(label: "t", dimensions: [("transport", "udp")], factory: factory)
        for value in test.nanoseconds { timer.recordNanoseconds(value) }
        #expect(factory.emitToString() == (["# TYPE t histogram"] + test.expected).map { $0 + "\n" }.joined())
    }

    /// The same durations give swift-prometheus's text, line for line (the daemon's /metrics
    /// wrote that text before; dashboards and alerts read it).
    @Test func writesWhatSwiftPrometheusWrites() {
        let buckets: [Duration] = [.microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                                   .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .seconds(1), .seconds(5)]
        let registry = PrometheusCollectorRegistry()
        var theirFactory = PrometheusMetricsFactory(registry: registry)
        theirFactory.defaultDurationHistogramBuckets = buckets
        let ours = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: buckets)
        let dimensions = [("transport", "tcp"), ("upstream", #"a "quoted" \ name"#)]
        let theirs = CoreMetrics.Timer(label: "clusterdns_x_seconds", dimensions: dimensions, factory: theirFactory)
        let mine = CoreMetrics.Timer(label: "clusterdns_x_seconds", dimensions: dimensions, factory: ours)
        var random = SplitMix64(state: 13)
        for _ in 0..<2_000 {
            // Spread over every bucket: 1 ns to 10 s, logarithmically.
            let value = Int64(pow(10, Double.random(in: 0...10, using: &random)))
            theirs.recordNanoseconds(value)
            mine.recordNanoseconds(value)
        }
        let lines = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix("#") } }
        #expect(lines(ours.emitToString()) == lines(registry.emitToString()))
        #expect(lines(ours.emitToString()).count == buckets.count + 3)
    }

    @Test func concurrentRecordsAreAllCounted() async throws {
        let factory = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: Self.buckets)
        let timer = CoreMetrics.Timer(label: "t", dimensions: [], factory: factory)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask { for index in 0..<25_000 { timer.recordNanoseconds(Int64(task * 25_000 + index)) } }
            }
        }
        let all = factory.histograms.all
        try #require(all.count == 1)
        #expect(all[0].snapshot.cumulative == [25_001, 100_000, 100_000, 100_000])
        #expect(all[0].snapshot.sum == .nanoseconds(99_999 * 100_000 / 2))
    }

    /// A timer made again for a series (an upstream's, after SIGHUP) counts on into it.
    @Test func aSeriesMadeAgainIsTheSameSeries() {
        let factory = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: Self.buckets)
        CoreMetrics.Timer(label: "u", dimensions: [("upstream", "a")], factory: factory).recordNanoseconds(1)
        CoreMetrics.Timer(label: "u", dimensions: [("upstream", "a")], factory: factory).recordNanoseconds(2)
        CoreMetrics.Timer(label: "v", factory: factory).recordNanoseconds(4)
        CoreMetrics.Timer(label: "u", dimensions: [("upstream", "b")], factory: factory).recordNanoseconds(3)
        let lines = factory.emitToString().split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("u_count") } == [#"u_count{upstream="a"} 2"#, #"u_count{upstream="b"} 1"#])
        // A family's lines together (u's second series before v, made later), one TYPE line each.
        #expect(lines.filter { $0.hasPrefix("# TYPE") || $0.contains("_count") } == [
            "# TYPE u histogram", #"u_count{upstream="a"} 2"#, #"u_count{upstream="b"} 1"#, "# TYPE v histogram", "v_count 1",
        ])
    }

    @Test func otherMetricsAreTheWrappedFactorysAndDestroyedSeriesGo() throws {
        let base = TestMetrics()
        let factory = AtomicMetricsFactory(wrapping: base, buckets: Self.buckets)
        CoreMetrics.Counter(label: "c", dimensions: [("k", "v")], factory: factory).increment(by: 3)
        CoreMetrics.Recorder(label: "r", factory: factory).record(7)
        CoreMetrics.Gauge(label: "g", factory: factory).record(2.5)
        #expect(try base.expectCounter("c", [("k", "v")]).totalValue == 3)
        #expect(try base.expectRecorder("r").lastValue == 7)
        #expect(throws: (any Error).self) { try base.expectGauge("g") }
        let kept = CoreMetrics.Timer(label: "kept", factory: factory)
        let gone = CoreMetrics.Timer(label: "gone", factory: factory)
        let goneGauge = CoreMetrics.Gauge(label: "gone_gauge", dimensions: [("service", "a/b")], factory: factory)
        goneGauge.record(1)
        gone.destroy()
        goneGauge.destroy()
        kept.recordNanoseconds(1)
        let text = factory.emitToString()
        #expect(text.hasPrefix("# TYPE g gauge\ng 2.5\n"))
        #expect(text.contains("kept_count 1\n"))
        #expect(!text.contains("gone"))
    }

    /// Gauges: the same values give swift-prometheus's lines (labels quoted and escaped, whole
    /// numbers as "2.0"); a gauge made again is the same series; a family's series are written
    /// together, by their labels.
    @Test func gaugesWriteWhatSwiftPrometheusWrites() {
        let registry = PrometheusCollectorRegistry()
        let theirFactory = PrometheusMetricsFactory(registry: registry)
        let ours = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: Self.buckets)
        let values: [([(String, String)], Double)] = [
            ([("service", "shop/web"), ("ready", "true")], 2), ([("service", "shop/web"), ("ready", "false")], 0),
            ([("service", #"odd "name" \ here"#), ("ready", "true")], 1.5), ([("service", "a/b"), ("ready", "true")], -3),
        ]
        for (dimensions, value) in values {
            CoreMetrics.Gauge(label: "clusterdns_service_endpoints", dimensions: dimensions, factory: theirFactory).record(value)
            CoreMetrics.Gauge(label: "clusterdns_service_endpoints", dimensions: dimensions, factory: ours).record(value)
        }
        CoreMetrics.Gauge(label: "clusterdns_dns_static_zones", factory: theirFactory).record(Int64(4))
        CoreMetrics.Gauge(label: "clusterdns_dns_static_zones", factory: ours).record(Int64(4))
        let lines = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix("#") }.sorted() }
        #expect(lines(ours.emitToString()) == lines(registry.emitToString()))
        #expect(ours.emitToString().split(separator: "\n").filter { $0.hasPrefix("#") } == [
            "# TYPE clusterdns_service_endpoints gauge", "# TYPE clusterdns_dns_static_zones gauge",
        ])
        CoreMetrics.Gauge(label: "clusterdns_service_endpoints", dimensions: [("service", "a/b"), ("ready", "true")], factory: ours).record(9)
        let endpoints = ours.emitToString().split(separator: "\n").filter { $0.hasPrefix("clusterdns_service_endpoints") }
        #expect(endpoints == [
            #"clusterdns_service_endpoints{service="a/b",ready="true"} 9.0"#,
            #"clusterdns_service_endpoints{service="odd \"name\" \\ here",ready="true"} 1.5"#,
            #"clusterdns_service_endpoints{service="shop/web",ready="false"} 0.0"#,
            #"clusterdns_service_endpoints{service="shop/web",ready="true"} 2.0"#,
        ])
    }

    /// The order a family is written in is kept from one scrape to the next: a series made or
    /// destroyed between two scrapes is in (in its place) or out of the next one.
    @Test func aSeriesThatComesOrGoesBetweenScrapes() {
        let factory = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: Self.buckets)
        func gauge(_ service: String) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: "e", dimensions: [("service", service)], factory: factory)
        }
        func written() -> [String] { factory.emitToString().split(separator: "\n").map(String.init) }
        gauge("b").record(2)
        gauge("d").record(4)
        #expect(written() == ["# TYPE e gauge", #"e{service="b"} 2.0"#, #"e{service="d"} 4.0"#])
        gauge("c").record(3)
        gauge("a").record(1)
        #expect(written() == ["# TYPE e gauge", #"e{service="a"} 1.0"#, #"e{service="b"} 2.0"#, #"e{service="c"} 3.0"#,
                              #"e{service="d"} 4.0"#])
        gauge("b").destroy()
        gauge("d").record(5)
        #expect(written() == ["# TYPE e gauge", #"e{service="a"} 1.0"#, #"e{service="c"} 3.0"#, #"e{service="d"} 5.0"#])
        for service in ["a", "c", "d"] { gauge(service).destroy() }
        #expect(written() == [])
    }
}
