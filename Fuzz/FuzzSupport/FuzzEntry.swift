import Foundation

/// The one entry point of every fuzz target. Built with `-D FUZZING` and `-sanitize=fuzzer`
/// (`scripts/fuzz.sh`), it hands `check` to libFuzzer's driver (each target also exports
/// `LLVMFuzzerTestOneInput`, for libFuzzer's own `main`); otherwise it replays the files named
/// on the command line (`CorpusReplay`).
public enum FuzzEntry {
    public static func main(_ check: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
        #if FUZZING
        currentCheck = check
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(
            LLVMFuzzerRunDriver(&argc, &argv) { data, count in
                currentCheck?(UnsafeRawBufferPointer(start: data, count: count))
                return 0
            }
        )
        #else
        CorpusReplay.run(check)
        exit(0)
        #endif
    }
}

#if FUZZING
/// libFuzzer calls back through a C function pointer, which carries no context.
nonisolated(unsafe) private var currentCheck: ((UnsafeRawBufferPointer) -> Void)?

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif
