import ServiceRegistry
import Testing

/// RFC 3339 times and Go durations as Kubernetes objects write them.
@Suite struct TimeTextTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-12-05T03:20:00Z", 1_796_440_800),
        ("2026-12-05t03:20:00z", 1_796_440_800),
        ("2026-12-05T03:20:00.999999999Z", 1_796_440_800),
        ("2026-12-05T05:20:00+02:00", 1_796_440_800),
        ("2026-12-04T22:50:00-04:30", 1_796_440_800),
        ("2000-02-29T12:00:00Z", 951_825_600),
        ("1969-12-31T23:59:59Z", -1),
        ("2024-12-31T23:59:60Z", 1_735_689_600),
    ] as [(String, Int64)])
    func parsesRFC3339(_ text: String, _ seconds: Int64) {
        #expect(Timestamp.parse(text) == seconds)
    }

    @Test(arguments: ["", "2026-12-05", "2026-12-05T03:20:00", "2026-12-05 03:20:00Z", "2026-13-05T03:20:00Z", "2026-12-05T24:00:00Z",
                      "2026-12-05T03:20:00.Z", "2026-12-05T03:20:00+0200", "2026-12-05T03:20:00Zjunk", "２026-12-05T03:20:00Z"])
    func refusesWhatIsNotRFC3339(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func formatsWhatItParses() {
        for seconds: Int64 in [0, 951_825_600, 1_796_440_800, -86_401, 253_402_300_799] {
            #expect(Timestamp.parse(Timestamp.rfc3339(seconds)) == seconds)
        }
    }

    @Test(arguments: [
        ("0", Duration.zero), ("15s", .seconds(15)), ("1m30s", .seconds(90)), ("1.5h", .seconds(5400)), ("500ms", .milliseconds(500)),
        ("2h45m10.5s", .milliseconds(9_910_500)), ("10us", .microseconds(10)), ("10µs", .microseconds(10)), ("7ns", .nanoseconds(7)),
        (".5s", .milliseconds(500)), ("1s500ms", .milliseconds(1500)),
    ] as [(String, Duration)])
    func parsesGoDurations(_ text: String, _ duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: ["", "15", "s", "-15s", "+15s", "1.2.3s", "15 s", "15sec", "1d", ".s", "9999999999h"])
    func refusesWhatGoRefuses(_ text: String) {
        #expect(DurationText.parse(text) == nil)
    }
}
