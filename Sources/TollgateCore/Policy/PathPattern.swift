/// How a route matches a normalised path.
public enum PathPattern: Sendable, Equatable, CustomStringConvertible {
    /// The whole path, byte for byte.
    case exact(String)
    /// The path or anything below it, by whole segments: `/admin` covers `/admin` and `/admin/x`,
    /// never `/administrator`.
    case prefix(String)
    /// Segments that are literals or `{name}` (one non-empty segment each).
    case template([TemplateSegment])
    /// `*` matches within one segment, a `**` segment matches any number of segments.
    case glob([GlobSegment])

    public enum TemplateSegment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    public enum GlobSegment: Sendable, Equatable {
        case anySegments
        case pattern(String)
    }

    /// Builds a template pattern when `path` has `{…}` segments, otherwise an exact one.
    public static func path(_ path: String) -> PathPattern {
        guard path.contains("{") else { return .exact(path) }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { segment -> TemplateSegment in
            if segment.hasPrefix("{") && segment.hasSuffix("}") && segment.count > 2 {
                return .parameter(String(segment.dropFirst().dropLast()))
            }
            return .literal(String(segment))
        }
        return .template(segments)
    }

    public static func globPattern(_ pattern: String) -> PathPattern {
        .glob(
            pattern.split(separator: "/", omittingEmptySubsequences: true).map {
                $0 == "**" ? .anySegments : .pattern(String($0))
            }
        )
    }

    public var description: String {
        switch self {
        case .exact(let path): "path \(path)"
        case .prefix(let prefix): "prefix \(prefix)"
        case .template(let segments):
            "path /"
                + segments.map {
                    switch $0 {
                    case .literal(let text): text
                    case .parameter(let name): "{\(name)}"
                    }
                }.joined(separator: "/")
        case .glob(let segments):
            "glob /"
                + segments.map {
                    switch $0 {
                    case .anySegments: "**"
                    case .pattern(let text): text
                    }
                }.joined(separator: "/")
        }
    }

    /// Whether `path` (already normalised) matches. `segments` is computed on demand, once.
    func matches(_ path: String, segments: inout [Substring]?) -> Bool {
        switch self {
        case .exact(let exact):
            return path == exact
        case .prefix(let prefix):
            if prefix == "/" { return true }
            guard path.hasPrefix(prefix) else { return false }
            if path.utf8.count == prefix.utf8.count { return true }
            if prefix.hasSuffix("/") { return true }
            let next = path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: prefix.utf8.count)]
            return next == UInt8(ascii: "/")
        case .template(let template):
            let parts = splitOnce(path, into: &segments)
            guard parts.count == template.count else { return false }
            for (segment, part) in zip(template, parts) {
                if case .literal(let literal) = segment, literal != part { return false }
            }
            return true
        case .glob(let glob):
            let parts = splitOnce(path, into: &segments)
            return Self.globMatch(glob[...], parts[...])
        }
    }

    private func splitOnce(_ path: String, into segments: inout [Substring]?) -> [Substring] {
        if let segments { return segments }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        segments = parts
        return parts
    }

    private static func globMatch(_ pattern: ArraySlice<GlobSegment>, _ parts: ArraySlice<Substring>) -> Bool {
        guard let first = pattern.first else { return parts.isEmpty }
        switch first {
        case .anySegments:
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var remaining = parts
            while true {
                if globMatch(rest, remaining) { return true }
                if remaining.isEmpty { return false }
                remaining = remaining.dropFirst()
            }
        case .pattern(let text):
            guard let part = parts.first, wildcardMatch(Array(text.utf8)[...], Array(part.utf8)[...]) else {
                return false
            }
            return globMatch(pattern.dropFirst(), parts.dropFirst())
        }
    }

    private static func wildcardMatch(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            var remaining = text
            while true {
                if wildcardMatch(pattern.dropFirst(), remaining) { return true }
                if remaining.isEmpty { return false }
                remaining = remaining.dropFirst()
            }
        }
        guard let head = text.first, head == first else { return false }
        return wildcardMatch(pattern.dropFirst(), text.dropFirst())
    }
}
