import CSQLite
import Dispatch
import FoundationEssentials
import Synchronization

/// The registry's database: one SQLite file in a state directory, in WAL mode with
/// `synchronous=FULL`, so a change is on disk (fsync) before `commit` returns, and a process
/// killed at any moment comes back with every acknowledged change and nothing else.
public final class SQLiteStorage: RegistryStorage, @unchecked Sendable {
    /// The connection and statements, used under `lock` only.
    struct Connection {
        var db: OpaquePointer?
        var upsert: OpaquePointer?
        var remove: OpaquePointer?
        var setVersion: OpaquePointer?
    }

    let lock: Mutex<Void> = Mutex(())
    nonisolated(unsafe) var connection = Connection()
    public let path: String
    static let schemaVersion = 1

    /// Opens (creating if needed) `registry.sqlite` in `directory`.
    public init(directory: String) throws(RegistryError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .storage("cannot create the state directory \(directory): \(error)")
        }
        path = joinedPath(directory, "registry.sqlite")
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw .storage("cannot open \(path): \(message)")
        }
        connection.db = db
        sqlite3_busy_timeout(db, 5000)
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=FULL")
        try exec("""
            CREATE TABLE IF NOT EXISTS objects (
                kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                resource_version INTEGER NOT NULL, body BLOB NOT NULL,
                PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID
            """)
        try exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        try exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', \(Self.schemaVersion))")
        let schema = try queryInt("SELECT value FROM meta WHERE key = 'schema'") ?? 0
        guard schema == Self.schemaVersion else {
            throw .storage("\(path) has schema version \(schema); this build reads version \(Self.schemaVersion)")
        }
        connection.upsert = try prepare("INSERT OR REPLACE INTO objects (kind, namespace, name, resource_version, body) VALUES (?, ?, ?, ?, ?)")
        connection.remove = try prepare("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?")
        connection.setVersion = try prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('resourceVersion', ?)")
    }

    deinit {
        for statement in [connection.upsert, connection.remove, connection.setVersion] { sqlite3_finalize(statement) }
        sqlite3_close_v2(connection.db)
    }

    var errorMessage: String { connection.db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed" }

    func exec(_ sql: String) throws(RegistryError) {
        guard sqlite3_exec(connection.db, sql, nil, nil, nil) == SQLITE_OK else {
            // The statement's first word says what failed (COMMIT: the write; PRAGMA: opening).
            let verb = sql.prefix { $0 != " " }
            throw .storage("\(path): \(verb == "COMMIT" ? "cannot write the change" : "\(verb) failed"): \(errorMessage)")
        }
    }

    func prepare(_ sql: String) throws(RegistryError) -> OpaquePointer? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection.db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw .storage("prepare \(sql.prefix(40))...: \(errorMessage)")
        }
        return statement
    }

    func queryInt(_ sql: String) throws(RegistryError) -> Int64? {
        let statement = try prepare(sql)
        defer { sqlite3_finalize(statement) }
        return sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : nil
    }

    public func load() throws(RegistryError) -> (objects: [RegistryObject], resourceVersion: UInt64) {
        try lock.withLock { _ throws(RegistryError) in
            let version = try queryInt("SELECT value FROM meta WHERE key = 'resourceVersion'") ?? 0
            let statement = try prepare("SELECT kind, namespace, name, body FROM objects")
            defer { sqlite3_finalize(statement) }
            var rows: [(key: String, body: Data)] = []
            while true {
                let rc = sqlite3_step(statement)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw .storage("reading \(path): \(errorMessage)") }
                let length = Int(sqlite3_column_bytes(statement, 3))
                let data = sqlite3_column_blob(statement, 3).map { Data(bytes: $0, count: length) } ?? Data()
                let key = (0..<3).map { String(cString: sqlite3_column_text(statement, $0)) }.joined(separator: "/")
                rows.append((key, data))
            }
            // Decoding is most of a restart; the rows are independent, so every core takes a share.
            let objects = try Self.decodeInParallel(rows, path: path)
            return (objects, UInt64(max(0, version)))
        }
    }

    static func decodeInParallel(_ rows: [(key: String, body: Data)], path: String) throws(RegistryError) -> [RegistryObject] {
        let decoded: [(object: RegistryObject?, error: String?)] = inChunksOnEveryCore(rows, atLeast: 256) { chunk in
            let reader = StoredJSONReader()
            return chunk.map { row in
                do { return (try row.body.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> RegistryObject in
                    try RegistryObject(storedJSON: raw, reader: reader)
                }, nil) } catch {
                    return (nil, "\(path): the stored object \(row.key) does not decode: \(error)")
                }
            }
        }
        if let error = decoded.lazy.compactMap(\.error).first { throw .storage(error) }
        return decoded.compactMap(\.object)
    }

    public func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) throws(RegistryError) {
        try commit(upserts: object.map { [$0] } ?? [], delete: key, resourceVersion: resourceVersion)
    }

    public func commit(upserts objects: [RegistryObject], resourceVersion: UInt64) throws(RegistryError) {
        try commit(upserts: objects, delete: nil, resourceVersion: resourceVersion)
    }

    func commit(upserts objects: [RegistryObject], delete key: ObjectKey?, resourceVersion: UInt64) throws(RegistryError) {
        try lock.withLock { _ throws(RegistryError) in
            try exec("BEGIN IMMEDIATE")
            do throws(RegistryError) {
                for object in objects {
                    let body: [UInt8]
                    do { body = try object.storedJSON() } catch {
                        throw .storage("cannot encode \(object.key): \(error)")
                    }
                    let key = object.key
                    try run(connection.upsert) { statement in
                        bind(statement, 1, key.kind.rawValue)
                        bind(statement, 2, key.namespace)
                        bind(statement, 3, key.name)
                        sqlite3_bind_int64(statement, 4, Int64(object.metadata.resourceVersion))
                        _ = body.withUnsafeBytes { sqlite3_bind_blob(statement, 5, $0.baseAddress, Int32($0.count), clusterdns_sqlite_transient()) }
                    }
                }
                if let key {
                    try run(connection.remove) { statement in
                        bind(statement, 1, key.kind.rawValue)
                        bind(statement, 2, key.namespace)
                        bind(statement, 3, key.name)
                    }
                }
                try run(connection.setVersion) { sqlite3_bind_int64($0, 1, Int64(resourceVersion)) }
                try exec("COMMIT")
            } catch {
                try? exec("ROLLBACK")
                throw error
            }
        }
    }

    func bind(_ statement: OpaquePointer?, _ index: Int32, _ text: String) {
        sqlite3_bind_text(statement, index, text, -1, clusterdns_sqlite_transient())
    }

    func run(_ statement: OpaquePointer?, _ bindings: (OpaquePointer?) -> Void) throws(RegistryError) {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        bindings(statement)
        guard sqlite3_step(statement) == SQLITE_DONE else { throw .storage("writing \(path): \(errorMessage)") }
    }
}
