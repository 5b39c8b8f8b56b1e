/// The settings of client ID metadata documents (`client_id_metadata_documents`); see
/// `ClientMetadataDocuments` for what is fetched and how it is held.
public struct ClientMetadataDocumentOptions: Sendable, Equatable {
    public var enabled = false
    /// `http://127.0.0.1…`, `http://localhost…` and `http://[::1]…` documents (development and
    /// tests), and loopback addresses.
    public var allowLoopbackHTTP = false
    /// Documents on private, link-local and other non-public addresses.
    public var allowPrivateAddresses = false
    public var maximumBytes = 5120
    /// Seconds for the whole fetch.
    public var timeout = 5
    /// How long a document is kept when its answer says nothing (`Cache-Control`), and the bounds
    /// on what it may say.
    public var defaultCacheSeconds = 300
    public var minimumCacheSeconds = 30
    public var maximumCacheSeconds = 86_400

    public init() {}
}
