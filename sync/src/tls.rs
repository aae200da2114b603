//! TLS for the remotes: rustls with the ring provider, for reqwest and the cloud's
//! WebSocket alike. Trust comes from the system's store (rustls-platform-verifier for
//! reqwest, rustls-native-certs for the stream).

/// Installs the process-wide crypto provider; call once before the first remote request.
/// A second call is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
