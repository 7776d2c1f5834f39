import ArgumentParser
import Foundation
import Yams

/// `--config FILE`: YAML whose keys are the long flag names of `serve` (without `--`), values
/// scalars or lists (for repeatable flags). Turned into command-line arguments.
enum ConfigFile {
    static func arguments(from path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--config \(path): cannot be read")
        }
        let node: Yams.Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ValidationError("--config \(path): not valid YAML: \(error)")
        }
        guard let node else { return [] }
        guard case .mapping(let mapping) = node else {
            throw ValidationError("--config \(path): expected a mapping of settings (dns: ..., ttl: ...)")
        }
        let known = Set(Serve.helpKeys)
        var arguments: [String] = []
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            guard known.contains(name), name != "config" else {
                let line = key.mark.map { ":\($0.line)" } ?? ""
                throw ValidationError("--config \(path)\(line): unknown setting \"\(name)\"")
            }
            switch value {
            case .sequence(let items):
                for item in items { arguments += ["--\(name)", item.string ?? ""] }
            case .scalar(let scalar) where Serve.flagKeys.contains(name):
                // A flag: true turns it on, false leaves it off.
                switch scalar.string.lowercased() {
                case "true", "yes", "on": arguments.append("--\(name)")
                case "false", "no", "off": break
                default: throw ValidationError("--config \(path): \(name) must be true or false")
                }
            case .scalar(let scalar):
                arguments += ["--\(name)", scalar.string]
            default:
                throw ValidationError("--config \(path): \(name) must be a value or a list of values")
            }
        }
        return arguments
    }

    /// The file's settings, minus every flag the command line gives itself, then the command line.
    static func merging(_ file: [String], under commandLine: [String]) -> [String] {
        let given = Set(commandLine.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) })
        var kept: [String] = []
        var index = 0
        while index < file.count {
            // A flag stands alone; an option is followed by its value.
            let width = Serve.flagKeys.contains(String(file[index].dropFirst(2))) ? 1 : 2
            guard index + width <= file.count else { break }
            if !given.contains(file[index]) { kept += file[index..<(index + width)] }
            index += width
        }
        return kept + commandLine
    }

    /// The arguments without `--config FILE` (it has been read).
    static func removingConfigFlag(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var skip = false
        for argument in arguments {
            if skip { skip = false; continue }
            if argument == "--config" { skip = true; continue }
            if argument.hasPrefix("--config=") { continue }
            out.append(argument)
        }
        return out
    }
}

extension Serve {
    /// The long names of serve's options, as config-file keys.
    static let helpKeys = ["config", "dns", "domain", "manifests", "ttl", "pods", "service-cidr", "node-port-range",
                           "state", "log-level", "log-format", "udp-sockets", "http", "lameduck", "allow-transfer",
                           "zones", "upstream", "resolv-conf", "stub-domain", "allow-recursion", "policy", "max-fails",
                           "max-concurrent", "upstream-timeout", "forward-deadline", "cache-size", "cache-min-ttl",
                           "cache-max-ttl", "cache-negative-ttl", "cache-servfail-ttl", "serve-stale", "prefetch",
                           "log-queries", "log-queries-sample", "forwarder", "forwarder-mode", "node-name", "node-address",
                           "forwarder-udp-timeout", "forwarder-tcp-timeout", "forwarder-max-flows", "forwarder-interface"]
    /// Settings that are flags (no value on the command line).
    static let flagKeys: Set<String> = ["log-queries", "forwarder"]
}
