/// libFuzzer's driver, for the targets of this package: each declares its `<Target>_main` entry
/// point (the name SwiftPM gives an executable's `main`) and hands control over with `run`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

public enum FuzzDriver {
    /// Runs libFuzzer with the command line, calling `target` with every input.
    public static func run(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                           _ target: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt {
        var count = argc
        var arguments = argv
        return runFuzzerDriver(&count, &arguments, target)
    }
}
