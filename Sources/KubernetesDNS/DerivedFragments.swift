import Synchronization

/// The last few services whose names and records (or only PTRs) the general path derived, so
/// that questions about a large service do not derive it again each time (a thousand
/// endpoints take milliseconds). A source never changes, so what was derived from it holds
/// while it is kept here; entries keep their source alive, so an identity is never reused.
final class DerivedFragments: Sendable {
    struct Entry: Sendable {
        var source: ClusterZone.Source
        var fragment: FragmentBuilder
        var used: UInt64
    }

    static let capacity = 8
    private let entries = Mutex<(list: [Entry], clock: UInt64)>(([], 0))

    /// The fragment of `source` (with records, or `records: false` for PTRs only), derived by
    /// `derive` when not kept. Derivation runs outside the lock.
    func fragment(of source: ClusterZone.Source, records: Bool, _ derive: () -> FragmentBuilder) -> FragmentBuilder {
        let kept: FragmentBuilder? = entries.withLock { state in
            state.clock += 1
            guard let i = state.list.firstIndex(where: { $0.source === source && ($0.fragment.recordsWanted || !records) })
            else { return nil }
            state.list[i].used = state.clock
            return state.list[i].fragment
        }
        if let kept { return kept }
        let fragment = derive()
        entries.withLock { state in
            // What it supersedes or repeats (another thread may have derived it meanwhile).
            state.list.removeAll { $0.source === source && (fragment.recordsWanted || !$0.fragment.recordsWanted) }
            if state.list.count >= Self.capacity, let oldest = state.list.indices.min(by: { state.list[$0].used < state.list[$1].used }) {
                state.list.remove(at: oldest)
            }
            state.list.append(Entry(source: source, fragment: fragment, used: state.clock))
        }
        return fragment
    }
}
