import FuzzSupport
import TollgateCore

/// The path normaliser on any request target. Properties: no crash, no hang, and an accepted
/// path is absolute, has no empty, `.` or `..` segment, and normalises to itself.
enum FuzzPath {
    static func check(_ bytes: UnsafeRawBufferPointer) {
        let target = String(decoding: bytes, as: UTF8.self)
        guard case .success(let normalized) = PathNormalizer.normalize(target) else { return }
        let path = normalized.path
        require(path.hasPrefix("/"), "\(path.debugDescription) is not absolute")
        require(!path.contains("//"), "\(path.debugDescription) has an empty segment")
        for segment in path.split(separator: "/") {
            require(segment != "." && segment != "..", "\(path.debugDescription) has a dot segment")
        }
        guard case .success(let again) = PathNormalizer.normalize(normalized.requestTarget) else {
            fatalError("\(normalized.requestTarget.debugDescription) is refused when normalised again")
        }
        require(again == normalized, "normalising \(target.debugDescription) twice differs")
    }
}

@main
enum Entry {
    static func main() { FuzzEntry.main(FuzzPath.check) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzPath.check(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
#endif
