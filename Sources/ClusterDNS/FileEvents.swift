#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import DispatchSockets

/// Changes in the directories of some paths, through inotify: `onChange` runs (on a queue of
/// its own) soon after a file there is written and closed, moved in or out, created, removed or
/// has its attributes changed. It says only that something may have changed: the watcher
/// compares its stamps to learn what. Nil when inotify cannot be had (then polling alone
/// notices changes).
final class FileEvents: @unchecked Sendable {
    let fd: Int32
    let source: any DispatchSourceRead

    init?(paths: [String], onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        var watched = 0
        for path in paths {
            var info = stat()
            let isDirectory = stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
            // A file is watched through its directory: a new version moved over it is a new inode.
            let directory = isDirectory ? path : FileEvents.directory(of: path)
            if inotify_add_watch(fd, directory, mask) >= 0 { watched += 1 }
        }
        guard watched > 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "clusterdns.file-events"))
        source.setEventHandler { [fd] in
            // Drain the events (their content does not matter), then say so once.
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case .done(let n) = buffer.withUnsafeMutableBytes({ Socket.read(fd, into: $0) }), n > 0 {}
            onChange()
        }
        source.setCancelHandler { [fd] in close(fd) }
        source.resume()
    }

    func stop() { source.cancel() }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// When to look at some files again: at once when inotify reports a change in their
/// directories, and every second as well (where inotify misses something or cannot be had).
/// The watchers compare their stamps on every signal; signals that pile up while one look
/// runs count as one.
final class FileChanges: @unchecked Sendable {
    let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation
    private let events: FileEvents?
    /// Confined to its own queue but for `cancel`, which libdispatch allows from anywhere.
    private let poll: any DispatchSourceTimer

    init(paths: [String]) {
        let (signals, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.signals = signals
        self.signal = signal
        events = FileEvents(paths: paths) { signal.yield() }
        poll = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "clusterdns.file-poll"))
        poll.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1), leeway: .milliseconds(100))
        poll.setEventHandler { signal.yield() }
        poll.resume()
    }

    func stop() {
        poll.cancel()
        events?.stop()
        signal.finish()
    }
}
