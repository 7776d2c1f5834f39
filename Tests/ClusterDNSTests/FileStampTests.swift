@testable import ClusterDNS
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A file's contents are hashed only while a write could hide from its stamps (its ctime within
/// a second of the look) and at the first look after; a file left alone is only stat'ed.
@Suite struct FileStampTests {
    static func file(_ text: String) throws -> String {
        let path = Scratch.url("stamp").path
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    static func later(_ time: timespec, seconds: Int) -> timespec { timespec(tv_sec: time.tv_sec + seconds, tv_nsec: time.tv_nsec) }

    @Test func aFileLeftAloneIsNotHashed() throws {
        let path = try Self.file("www IN A 192.0.2.1\n")
        defer { unlink(path) }
        let fresh = try #require(FileStamp(path: path))
        #expect(fresh.isRecent && fresh.contentHash != nil, "just written: hashed")
        let settled = try #require(FileStamp(path: path, previous: fresh, now: Self.later(fresh.changed, seconds: 5)))
        #expect(!settled.isRecent && settled.contentHash != nil, "the first look after: hashed, to compare")
        #expect(settled == fresh)
        let idle = try #require(FileStamp(path: path, previous: settled, now: Self.later(fresh.changed, seconds: 6)))
        #expect(idle.contentHash == nil, "left alone: stat only")
        #expect(idle == settled)
        // Without a previous stamp an old file is not hashed either.
        #expect(try #require(FileStamp(path: path, now: Self.later(fresh.changed, seconds: 60))).contentHash == nil)
    }

    /// A write within the tick of the last look leaves every stamp alike: the look after
    /// compares the contents and sees it (simulated by the first look's hash of other bytes).
    @Test func aWriteHiddenFromTheStampsIsSeenByTheFirstLookAfter() throws {
        let path = try Self.file("www IN A 192.0.2.2\n")
        defer { unlink(path) }
        var before = try #require(FileStamp(path: path))
        try #require(before.contentHash != nil)
        before.contentHash = before.contentHash.map { $0 ^ 1 }
        let after = try #require(FileStamp(path: path, previous: before, now: Self.later(before.changed, seconds: 5)))
        #expect(after.sameStatus(as: before))
        #expect(after != before, "the contents differ though every stamp is alike")
    }

    @Test func anyStampThatMovesIsAChange() throws {
        let path = try Self.file("a")
        defer { unlink(path) }
        let first = try #require(FileStamp(path: path))
        try "bb".write(toFile: path, atomically: true, encoding: .utf8)
        let second = try #require(FileStamp(path: path, previous: first, now: Self.later(first.changed, seconds: 5)))
        #expect(second != first)
    }
}
