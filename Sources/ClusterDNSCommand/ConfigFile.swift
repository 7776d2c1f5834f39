import ArgumentParser
import FoundationEssentials
import YAML

/// `--config FILE`: YAML whose keys are the long flag names of `serve` (without `--`), values
/// scalars or lists (for repeatable flags). Turned into command-line arguments.
enum ConfigFile {
    static func arguments(from path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--config \(path): cannot be read")
        }
        let node: YAMLNode?
        do { node = try YAMLParser.firstDocument(in: text) } catch {
            throw ValidationError("--config \(path):\(error.line):\(error.column): not valid YAML: \(error.message)")
        }
        guard let node, !node.isNull else { return [] }
        guard case .mapping(let pairs, _) = node else {
            throw ValidationError("--config \(path): expected a mapping of settings (dns: ..., ttl: ...)")
        }
        let known = Set(Serve.helpKeys)
        var arguments: [String] = []
        for (name, keyPosition, value) in pairs {
            guard known.contains(name), name != "config" else {
                throw ValidationError("--config \(path):\(keyPosition.line): unknown setting \"\(name)\"")
            }
            switch value {
            case .sequence(let items, _):
                for item in items {
                    guard let text = item.scalarText else {
                        throw ValidationError("--config \(path):\(item.position.line): \(name) must list values")
                    }
                    arguments += ["--\(name)", text]
                }
            case .scalar(let text, _, _) where Serve.flagKeys.contains(name):
                // A flag: true turns it on, false leaves it off.
                switch text.lowercased() {
                case "true", "yes", "on": arguments.append("--\(name)")
                case "false", "no", "off": break
                default: throw ValidationError("--config \(path):\(value.position.line): \(name) must be true or false")
                }
            case .scalar(let text, _, _):
                arguments += ["--\(name)", text]
            default:
                throw ValidationError("--config \(path):\(value.position.line): \(name) must be a value or a list of values")
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
    static let helpKeys = ["config", "dns", "domain", "manifests", "ttl", "pods", "autopath", "search-path", "service-cidr", "node-port-range",
                           "state", "log-level", "log-format", "udp-sockets", "http", "lameduck", "allow-transfer",
                           "zones", "upstream", "resolv-conf", "stub-domain", "allow-recursion", "policy", "max-fails",
                           "max-concurrent", "upstream-timeout", "forward-deadline", "cache-size", "cache-min-ttl",
                           "cache-max-ttl", "cache-negative-ttl", "cache-servfail-ttl", "cache-no-soa-ttl", "serve-stale", "prefetch",
                           "log-queries", "log-queries-sample", "forwarder", "forwarder-mode", "node-name", "node-address",
                           "forwarder-udp-timeout", "forwarder-tcp-timeout", "forwarder-max-flows", "forwarder-interface", "probes",
                           "forwarder-close-on-removal", "probes-exec"]
    /// Settings that are flags (no value on the command line).
    static let flagKeys: Set<String> = ["log-queries", "autopath", "forwarder", "probes", "forwarder-close-on-removal", "probes-exec"]
}
