// swift-tools-version: 6.1
import PackageDescription

let swiftCrypto: Package.Dependency = .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0")
let swiftNIO: Package.Dependency = .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
let asyncHTTPClient: Package.Dependency = .package(
    url: "https://github.com/swift-server/async-http-client.git",
    from: "1.37.0"
)
let yams: Package.Dependency = .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2")
let swiftLog: Package.Dependency = .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2")
let argumentParser: Package.Dependency = .package(
    url: "https://github.com/apple/swift-argument-parser.git",
    from: "1.8.2"
)

let nioHTTP2: Package.Dependency = .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0")
let nioSSL: Package.Dependency = .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6")
let serviceLifecycle: Package.Dependency = .package(
    url: "https://github.com/swift-server/swift-service-lifecycle.git",
    from: "2.13.0"
)
let prometheus: Package.Dependency = .package(
    url: "https://github.com/swift-server/swift-prometheus.git",
    from: "2.4.1"
)
let nioExtras: Package.Dependency = .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2")
let httpTypes: Package.Dependency = .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0")
let sqliteNIO: Package.Dependency = .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2")
let atomics: Package.Dependency = .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0")
let postgresNIO: Package.Dependency = .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2")

let sharedSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Tollgate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TollgateCore", targets: ["TollgateCore"]),
        .library(name: "TollgateProxy", targets: ["TollgateProxy"]),
        .library(name: "TollgateIssuer", targets: ["TollgateIssuer"]),
        .executable(name: "tollgate", targets: ["tollgate"]),
        .library(name: "TollgateTestSupport", targets: ["TollgateTestSupport"]),
    ],
    dependencies: [
        swiftCrypto, swiftNIO, asyncHTTPClient, yams, swiftLog, argumentParser, nioHTTP2, nioSSL, serviceLifecycle,
        prometheus, atomics, nioExtras, httpTypes, sqliteNIO, postgresNIO,
    ],
    targets: [
        .target(
            name: "TollgateCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "TollgateProxy",
            dependencies: [
                "TollgateCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "TollgateIssuer",
            dependencies: [
                "TollgateCore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateCore",
                "TollgateProxy",
                "TollgateIssuer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "TollgateTestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Tests/TollgateTestSupport",
            swiftSettings: sharedSettings
        ),
        // Fuzz targets: `scripts/fuzz.sh` builds them with libFuzzer; the ordinary build makes
        // them corpus replayers.
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport", swiftSettings: sharedSettings),
        .executableTarget(
            name: "FuzzJWS",
            dependencies: ["FuzzSupport", "TollgateCore", "TollgateProxy"],
            path: "Fuzz/FuzzJWS",
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "FuzzPath",
            dependencies: ["FuzzSupport", "TollgateCore"],
            path: "Fuzz/FuzzPath",
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "FuzzConfiguration",
            dependencies: ["FuzzSupport", "TollgateCore"],
            path: "Fuzz/FuzzConfiguration",
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "FuzzRequestHead",
            dependencies: [
                "FuzzSupport", "TollgateCore", "TollgateProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz/FuzzRequestHead",
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "FuzzResponseHead",
            dependencies: [
                "FuzzSupport", "TollgateProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz/FuzzResponseHead",
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "TollgateCoreTests",
            dependencies: [
                "TollgateCore",
                "TollgateTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "TollgateProxyTests",
            dependencies: [
                "TollgateProxy",
                "TollgateCore",
                "TollgateTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "TollgateIssuerTests",
            dependencies: [
                "TollgateIssuer",
                "TollgateCore",
                "TollgateTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: sharedSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
