import TollgateCore

/// Where the values of a JSON text are, as byte ranges, so a document can be edited without
/// being re-encoded: numbers, member order and escapes stay as the upstream wrote them.
///
/// Only for text `JSONParser` has already accepted: the scanner trusts its syntax and checks
/// nothing but its own bounds.
struct JSONSpans {
    let bytes: [UInt8]

    func skipWhitespace(_ index: Int) -> Int {
        var index = index
        while index < bytes.count,
            bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A
                || bytes[index] == 0x0D
        {
            index += 1
        }
        return index
    }

    /// The end (exclusive) of the value starting at `start`.
    func valueEnd(_ start: Int) -> Int {
        guard start < bytes.count else { return start }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return stringEnd(start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    index = stringEnd(index)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default:
                    break
                }
                index += 1
            }
            return index
        default:
            var index = start
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return index
                default: index += 1
                }
            }
            return index
        }
    }

    private func stringEnd(_ start: Int) -> Int {
        var index = start + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return index
    }

    /// The members of the object starting at `start`: each name (unescaped) and its value's range.
    func members(ofObjectAt start: Int) -> [(name: String, value: Range<Int>)] {
        var members: [(name: String, value: Range<Int>)] = []
        var index = skipWhitespace(start + 1)
        while index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
            let nameEnd = stringEnd(index)
            let name = (try? JSONParser.parse(bytes[index..<nameEnd]))?.stringValue ?? ""
            index = skipWhitespace(nameEnd)
            index = skipWhitespace(index + 1)  // the colon
            let end = valueEnd(index)
            members.append((name, index..<end))
            index = skipWhitespace(end)
            if index < bytes.count, bytes[index] == UInt8(ascii: ",") { index = skipWhitespace(index + 1) }
        }
        return members
    }

    /// The ranges of the elements of the array starting at `start`.
    func elements(ofArrayAt start: Int) -> [Range<Int>] {
        var elements: [Range<Int>] = []
        var index = skipWhitespace(start + 1)
        while index < bytes.count, bytes[index] != UInt8(ascii: "]") {
            let end = valueEnd(index)
            if end == index { break }
            elements.append(index..<end)
            index = skipWhitespace(end)
            if index < bytes.count, bytes[index] == UInt8(ascii: ",") { index = skipWhitespace(index + 1) }
        }
        return elements
    }
}
