import Foundation

/// Runs a fuzz target's check on files, outside libFuzzer: `FuzzJWS FILE_OR_DIRECTORY…`. Built
/// by the ordinary build, so a crash the fuzzer found can be replayed under a debugger.
public enum CorpusReplay {
    public static func run(_ check: (UnsafeRawBufferPointer) -> Void) {
        var files: [String] = []
        for argument in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().map { argument + "/" + $0 }
            } else {
                files.append(argument)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            data.withUnsafeBytes { check($0) }
        }
        print("replayed \(files.count) inputs")
    }
}

/// Stops the fuzzer with a message when a property does not hold.
public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
