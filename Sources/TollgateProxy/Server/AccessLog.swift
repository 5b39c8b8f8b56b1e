#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One JSON line per request on standard output (DESIGN step 8). Never the token: only ids,
/// the normalised path, the route, the verdict and the time taken.
enum AccessLog {
    static func write(
        requestID: String,
        method: String,
        path: String,
        route: String,
        status: Int,
        outcome: String,
        reason: String?,
        milliseconds: Double,
        peer: String?
    ) {
        var line = "{\"ts\":"
        line.reserveCapacity(256)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        line += String(now.tv_sec) + "." + pad(Int(now.tv_nsec / 1_000_000), 3)
        line += ",\"request_id\":"
        appendQuoted(requestID, to: &line)
        line += ",\"method\":"
        appendQuoted(method, to: &line)
        line += ",\"path\":"
        appendQuoted(path, to: &line)
        line += ",\"route\":"
        appendQuoted(route, to: &line)
        line += ",\"status\":" + String(status)
        line += ",\"outcome\":\"" + outcome + "\""
        if let reason {
            line += ",\"reason\":"
            appendQuoted(reason, to: &line)
        }
        let micros = Int((milliseconds * 1000).rounded())
        line += ",\"latency_ms\":" + String(micros / 1000) + "." + pad(micros % 1000, 3)
        if let peer {
            line += ",\"peer\":"
            appendQuoted(peer, to: &line)
        }
        line += "}\n"
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(1, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    static func appendQuoted(_ value: String, to line: inout String) {
        line += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case _ where scalar.value < 0x20:
                let digits = Array("0123456789abcdef")
                line += "\\u00" + String([digits[Int(scalar.value >> 4)], digits[Int(scalar.value & 0xF)]])
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}
