import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address block in CIDR notation (`10.0.0.0/8`, `::1`, `fd00::/8`); a bare
/// address is a block of one.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let prefixLength: Int
    public let description: String

    public init?(_ text: String) {
        var addressText = Substring(text)
        var prefix: Int?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            guard let value = Int(text[text.index(after: slash)...]), value >= 0 else { return nil }
            prefix = value
        }
        guard let bytes = Self.parseAddress(String(addressText)) else { return nil }
        let bits = bytes.count * 8
        if let prefix, prefix > bits { return nil }
        self.bytes = bytes
        self.prefixLength = prefix ?? bits
        self.description = text
    }

    /// The 4 or 16 bytes of a textual address, or `nil`.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// Whether `address` (4 or 16 bytes) lies in this block. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is compared as IPv4.
    public func contains(_ address: [UInt8]) -> Bool {
        var candidate = address
        if candidate.count == 16, bytes.count == 4, candidate[0..<10].allSatisfy({ $0 == 0 }),
            candidate[10] == 0xFF, candidate[11] == 0xFF
        {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == bytes.count else { return false }
        var remaining = prefixLength
        var index = 0
        while remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if candidate[index] & mask != bytes[index] & mask { return false }
            remaining -= 8
            index += 1
        }
        return true
    }
}

extension SocketAddress {
    /// The raw 4 or 16 address bytes of an IP address.
    public var addressBytes: [UInt8]? {
        switch self {
        // sockaddr_in: family (2), port (2), address (4); sockaddr_in6: family (2), port (2),
        // flow info (4), address (16).
        case .v4(let address):
            return withUnsafeBytes(of: address.address) { Array($0[4..<8]) }
        case .v6(let address):
            return withUnsafeBytes(of: address.address) { Array($0[8..<24]) }
        case .unixDomainSocket:
            return nil
        }
    }
}
