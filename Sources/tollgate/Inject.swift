import ArgumentParser
import Foundation
import Yams

/// `tollgate inject`: adds the Tollgate sidecar to a workload's pod template — a native sidecar
/// (an init container with `restartPolicy: Always`, Kubernetes 1.29+), its ConfigMap volume,
/// probes on the admin port and scrape annotations — and points the Services in the same input
/// at the sidecar's port instead of the application's. Idempotent: injecting twice changes
/// nothing. Refuses, with the reason, what it cannot handle.
struct Inject: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inject",
        abstract:
            "Add the Tollgate sidecar to Kubernetes workloads (YAML on stdin or from a file), like linkerd inject."
    )

    @Argument(help: "The manifest file (default: standard input).")
    var file: String?

    @Option(help: "The Tollgate image.")
    var image = "ghcr.io/tollgate/tollgate:0.1.0"

    @Option(help: "The ConfigMap holding tollgate.yaml.")
    var configMap = "tollgate-config"

    @Option(help: "The application's port, when its container declares several.")
    var appPort: Int?

    func run() throws {
        let text: String
        if let file {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } else {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        do {
            var injector = SidecarInjector(image: image, configMap: configMap, appPort: appPort)
            print(try injector.inject(text), terminator: "")
        } catch let error as SidecarInjector.Refusal {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }
}

struct SidecarInjector {
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

    static let name = "tollgate"
    static let proxyPort = 8080
    static let adminPort = 9901
    static let workloads: Set<String> = [
        "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod",
    ]

    let image: String
    let configMap: String
    let appPort: Int?
    /// Each injected pod template's labels and the application ports its Services must stop
    /// targeting, by number and by name.
    var injected: [(labels: [String: String], ports: [(number: Int, name: String?)])] = []

    init(image: String, configMap: String, appPort: Int?) {
        self.image = image
        self.configMap = configMap
        self.appPort = appPort
    }

    mutating func inject(_ text: String) throws -> String {
        var documents: [Node] = []
        do {
            // The parser reports a malformed stream as it reaches it, document by document.
            let parser = try Parser(yaml: text)
            while let document = try parser.nextRoot() { documents.append(document) }
        } catch {
            throw Refusal(description: "the input is not YAML: \(error)")
        }
        guard !documents.isEmpty else { throw Refusal(description: "the input holds no document") }
        var injected = 0
        for index in documents.indices {
            guard let kind = documents[index].mapping?["kind"]?.string else {
                throw Refusal(description: "document \(index + 1) has no kind")
            }
            if kind == "List" { throw Refusal(description: "a List: inject its items as separate documents") }
            if Self.workloads.contains(kind) {
                documents[index] = try injectWorkload(documents[index], kind: kind, index: index)
                injected += 1
            }
        }
        guard injected > 0 else {
            throw Refusal(
                description:
                    "no workload with a pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod)"
            )
        }
        for index in documents.indices where documents[index].mapping?["kind"]?.string == "Service" {
            documents[index] = try retarget(documents[index])
        }
        return try documents.map { try Yams.serialize(node: $0) }.joined(separator: "---\n")
    }

    /// The path to the pod spec of each workload kind.
    static func podSpecPath(_ kind: String) -> [String] {
        switch kind {
        case "Pod": ["spec"]
        case "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"]
        default: ["spec", "template", "spec"]
        }
    }

    mutating func injectWorkload(_ document: Node, kind: String, index: Int) throws -> Node {
        let path = Self.podSpecPath(kind)
        let name = document.mapping?["metadata"]?.mapping?["name"]?.string ?? "document \(index + 1)"
        guard var spec = Self.get(document, path)?.mapping else {
            throw Refusal(description: "\(kind) \(name) has no \(path.joined(separator: "."))")
        }
        if spec["hostNetwork"]?.bool == true {
            throw Refusal(description: "\(kind) \(name) uses hostNetwork: the sidecar's ports would be the node's")
        }
        guard let containers = spec["containers"]?.sequence, !containers.isEmpty else {
            throw Refusal(description: "\(kind) \(name) has no containers")
        }
        let initContainers = spec["initContainers"]?.sequence.map(Array.init) ?? []
        let alreadyInjected = initContainers.contains { $0.mapping?["name"]?.string == Self.name }
        // The application's port: what the Services targeted until now.
        var declared: [(Int, String?)] = []
        for container in containers {
            if container.mapping?["name"]?.string == Self.name {
                throw Refusal(description: "\(kind) \(name) has an ordinary container named tollgate")
            }
            for port in container.mapping?["ports"]?.sequence.map(Array.init) ?? [] {
                guard let number = port.mapping?["containerPort"]?.int else { continue }
                if !alreadyInjected && (number == Self.proxyPort || number == Self.adminPort) {
                    throw Refusal(
                        description:
                            "\(kind) \(name): a container already uses port \(number), which the sidecar needs"
                    )
                }
                declared.append((number, port.mapping?["name"]?.string))
            }
        }
        if let appPort {
            declared = declared.filter { $0.0 == appPort }
            if declared.isEmpty { declared = [(appPort, nil)] }
        } else if declared.count > 1 {
            throw Refusal(
                description: "\(kind) \(name) declares several ports: say which is the application's with --app-port"
            )
        }
        let labelsPath = kind == "Pod" ? ["metadata", "labels"] : Array(path.dropLast()) + ["metadata", "labels"]
        var labels: [String: String] = [:]
        for (key, value) in Self.get(document, labelsPath)?.mapping ?? Node.Mapping([]) {
            if let key = key.string, let value = value.string { labels[key] = value }
        }
        injected.append((labels, declared.map { (number: $0.0, name: $0.1) }))
        if alreadyInjected { return document }

        var updatedInit = initContainers
        updatedInit.append(try sidecar())
        spec["initContainers"] = Node(updatedInit)
        var volumes = spec["volumes"]?.sequence.map(Array.init) ?? []
        if !volumes.contains(where: { $0.mapping?["name"]?.string == "tollgate-config" }) {
            volumes.append(try Self.node("name: tollgate-config\nconfigMap:\n  name: \(configMap)\n"))
            spec["volumes"] = Node(volumes)
        }
        if (spec["terminationGracePeriodSeconds"]?.int ?? 30) < 30 {
            spec["terminationGracePeriodSeconds"] = Node("30", Tag(.int))
        }
        var updated = Self.set(document, path, to: .mapping(spec))
        // Scrape annotations on the pod template (not for a bare Pod, whose metadata is its own).
        let metadataPath = kind == "Pod" ? ["metadata"] : Array(path.dropLast()) + ["metadata"]
        var metadata = Self.get(updated, metadataPath)?.mapping ?? Node.Mapping([])
        var annotations = metadata["annotations"]?.mapping ?? Node.Mapping([])
        for (key, value) in [
            ("prometheus.io/scrape", "true"), ("prometheus.io/port", "\(Self.adminPort)"),
            ("prometheus.io/path", "/metrics"),
        ] where annotations[key] == nil {
            annotations[key] = Node(value, Tag(.str), .doubleQuoted)
        }
        metadata["annotations"] = .mapping(annotations)
        updated = Self.set(updated, metadataPath, to: .mapping(metadata))
        return updated
    }

    /// Services that select an injected pod template and targeted the application's port target
    /// the sidecar's instead; other Services are left alone.
    func retarget(_ service: Node) throws -> Node {
        var selector: [String: String] = [:]
        for (key, value) in Self.get(service, ["spec", "selector"])?.mapping ?? Node.Mapping([]) {
            if let key = key.string, let value = value.string { selector[key] = value }
        }
        let selected = injected.filter { workload in
            !selector.isEmpty && selector.allSatisfy { workload.labels[$0.key] == $0.value }
        }
        let appPorts = selected.flatMap(\.ports)
        guard !appPorts.isEmpty, var ports = Self.get(service, ["spec", "ports"])?.sequence.map(Array.init) else {
            return service
        }
        var changed = false
        for index in ports.indices {
            guard var port = ports[index].mapping else { continue }
            let target = port["targetPort"] ?? port["port"]
            let matches = appPorts.contains { app in
                if let number = target?.int { return number == app.number }
                return target?.string != nil && target?.string == app.name
            }
            if matches && target?.string != Self.name {
                port["targetPort"] = Node(Self.name)
                ports[index] = .mapping(port)
                changed = true
            }
        }
        return changed ? Self.set(service, ["spec", "ports"], to: Node(ports)) : service
    }

    func sidecar() throws -> Node {
        try Self.node(
            """
            name: \(Self.name)
            image: \(image)
            imagePullPolicy: Always
            restartPolicy: Always
            args: [serve, --config, /etc/tollgate/tollgate.yaml]
            ports:
              - { name: tollgate, containerPort: \(Self.proxyPort) }
              - { name: tollgate-admin, containerPort: \(Self.adminPort) }
            startupProbe:
              httpGet: { path: /readyz, port: tollgate-admin }
              periodSeconds: 1
              failureThreshold: 30
            readinessProbe:
              httpGet: { path: /readyz, port: tollgate-admin }
              periodSeconds: 5
            livenessProbe:
              httpGet: { path: /healthz, port: tollgate-admin }
              periodSeconds: 10
            resources:
              requests: { cpu: 100m, memory: 64Mi }
              limits: { cpu: "1", memory: 256Mi }
            securityContext:
              runAsNonRoot: true
              runAsUser: 10001
              runAsGroup: 10001
              allowPrivilegeEscalation: false
              readOnlyRootFilesystem: true
              capabilities: { drop: [ALL] }
              seccompProfile: { type: RuntimeDefault }
            volumeMounts:
              - { name: tollgate-config, mountPath: /etc/tollgate, readOnly: true }

            """
        )
    }

    static func node(_ yaml: String) throws -> Node {
        guard let node = try Yams.compose(yaml: yaml) else { throw Refusal(description: "internal template") }
        return node
    }

    static func get(_ node: Node, _ path: [String]) -> Node? {
        var current: Node? = node
        for key in path { current = current?.mapping?[key] }
        return current
    }

    static func set(_ node: Node, _ path: [String], to value: Node) -> Node {
        guard let key = path.first else { return value }
        var mapping = node.mapping ?? Node.Mapping([])
        mapping[key] = set(mapping[key] ?? .mapping(Node.Mapping([])), Array(path.dropFirst()), to: value)
        return .mapping(mapping)
    }
}
