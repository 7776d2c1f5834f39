import FuzzDriver
import DNSResolver
import DNSWire
import ZoneFile

/// One input drives four decoders: the full message decoder (and, when it succeeds, an
/// encode/decode round trip that must give the same message back), the query fast path, the
/// zone-file parser, and resolv.conf's reader (nameservers and search domains).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let message = try? Message(decoding: bytes) {
        let again = try? Message(decoding: message.encoded())
        if again != message { fatalError("round trip changed the message") }
    }
    withUnsafeTemporaryAllocation(byteCount: 255, alignment: 1) { name in
        _ = try? QueryView.parse(bytes, nameBuffer: name)
    }
    if let origin = try? DomainName("example.") {
        _ = try? ZoneParser().parse(Array(bytes), origin: origin)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    _ = ResolvConf.nameservers(in: text)
    _ = ResolvConf.searchDomains(in: text)
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzDecoders_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    return FuzzDriver.run(argc, argv, fuzz)
}
