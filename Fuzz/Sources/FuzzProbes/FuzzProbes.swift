import FuzzDriver
import ProbeWire

/// What a gRPC server sends back to a health probe is outside input (any pod's port): any
/// bytes must give a verdict or a wait for more, never a trap, and the same verdict and
/// acknowledgements whether they arrive at once or cut into reads (where the first byte says,
/// then every few bytes), as TCP may cut them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let cut = Int(data[0])
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    func run(_ chunks: [ArraySlice<UInt8>]) -> ([UInt8], GRPCHealthCheck.Reader.Verdict?) {
        var reader = GRPCHealthCheck.Reader()
        var sent: [UInt8] = []
        for chunk in chunks {
            let (send, verdict) = reader.read(chunk)
            sent += send
            if let verdict { return (sent, verdict) }
        }
        return (sent, nil)
    }
    let whole = run([bytes[...]])
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    var step = max(1, cut)
    while start < bytes.count {
        let end = min(bytes.count, start + step)
        chunks.append(bytes[start..<end])
        start = end
        step = 1 + (step * 7 + 3) % 13
    }
    let split = run(chunks)
    if whole.0 != split.0 || whole.1 != split.1 {
        fatalError("the verdict depends on how the bytes are cut: \(String(describing: whole.1)) at once, \(String(describing: split.1)) cut")
    }
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzProbes_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    return FuzzDriver.run(argc, argv, fuzz)
}
