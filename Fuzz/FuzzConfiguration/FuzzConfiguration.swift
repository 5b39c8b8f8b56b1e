import FuzzSupport
import TollgateCore

/// The configuration loader on any YAML. Properties: no crash, no hang, and a refusal names the
/// file and says what is wrong.
enum FuzzConfiguration {
    static func check(_ bytes: UnsafeRawBufferPointer) {
        let yaml = String(decoding: bytes, as: UTF8.self)
        do {
            let configuration = try ConfigurationLoader.parse(
                yaml: yaml,
                file: "fuzz.yaml",
                baseDirectory: "/nonexistent",
                environment: [:]
            )
            _ = configuration.warnings
        } catch {
            require(error.file == "fuzz.yaml", "the error names \(error.file)")
            require(!error.message.isEmpty, "the error says nothing")
        }
    }
}

@main
enum Entry {
    static func main() { FuzzEntry.main(FuzzConfiguration.check) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzConfiguration.check(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
#endif
