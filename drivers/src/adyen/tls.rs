//! TLS for the Terminal API: TLS 1.2 only (terminal software removed 1.0 and 1.1; the
//! terminal speaks 1.2), rustls with the ring provider.
//!
//! The POS checks the terminal's certificate chain against the configured root (Adyen's
//! terminal root in a store; the simulator's own CA in the demo and the tests) and that the
//! certificate names the terminal's POIID — the address dialled is an IP on the store LAN
//! and proves nothing. Adyen's terminal certificates name `POIID.test.terminal.adyen.com`
//! or `POIID.live.terminal.adyen.com` ([`accepted_names`]); a name is checked in the
//! certificate's subject alternative names, as webpki does (a legacy certificate that
//! names its terminal in the common name only is refused). There is no way to switch the
//! check off.
//!
//! The simulator's CA ([`SimCa`]) is made once and kept in its state directory
//! (`adyen-ca.pem`, and its key in `adyen-ca.key`, 0600), so a demo started later trusts
//! a simulator started earlier.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The names a terminal's certificate may carry for POIID `poi_id`.
pub fn accepted_names(poi_id: &str) -> Vec<String> {
    let p = poi_id.to_ascii_lowercase();
    vec![format!("{p}.test.terminal.adyen.com"), format!("{p}.live.terminal.adyen.com"), p]
}

/// The roots in a PEM file (at least one certificate).
pub fn roots(root_pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(root_pem) {
        let c = c.map_err(|e| format!("the terminal root certificate is not PEM ({e})"))?;
        roots.add(c).map_err(|e| format!("the terminal root certificate is not usable ({e})"))?;
        n += 1;
    }
    if n == 0 {
        return Err("the terminal root certificate file holds no certificate".into());
    }
    Ok(roots)
}

/// The POS's TLS for terminal `poi_id`: TLS 1.2, the chain to `root_pem`'s certificates
/// only, and one of [`accepted_names`] in the certificate.
pub fn client_config(root_pem: &[u8], poi_id: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = Arc::new(roots(root_pem)?);
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| e.to_string())?;
    let names = accepted_names(poi_id)
        .into_iter()
        .map(|n| ServerName::try_from(n).map_err(|_| format!("POIID {poi_id:?} cannot be a certificate name")))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PoiVerifier { inner, names }))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// webpki's chain and name check, against the terminal's names rather than the address
/// dialled. Signatures are webpki's.
#[derive(Debug)]
struct PoiVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for PoiVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut first_error = None;
        for name in &self.names {
            match self.inner.verify_server_cert(end_entity, intermediates, name, ocsp_response, now) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| rustls::Error::General("no terminal name to check".into())))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name the terminal's certificate must carry: its POIID.
pub fn server_name(poi_id: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(poi_id.to_ascii_lowercase())
        .map_err(|_| format!("POIID {poi_id:?} cannot be a certificate name (letters, digits and '-' only)"))
}

/// The simulator's certificate authority, kept in its state directory.
pub struct SimCa {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl SimCa {
    /// Loads the CA from `dir`, or makes and stores one.
    pub fn load_or_make(dir: &Path) -> Result<SimCa, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ca_path = dir.join("adyen-ca.pem");
        let key_path = dir.join("adyen-ca.key");
        if let (Ok(ca_pem), Ok(key_pem)) = (std::fs::read_to_string(&ca_path), std::fs::read_to_string(&key_path)) {
            let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
            // The issuer is its name and its key: the same parameters rebuild it.
            let issuer = rcgen::Issuer::new(ca_params()?, key);
            return Ok(SimCa { ca_pem, ca_path, issuer });
        }
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let ca_pem = cert.pem();
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_path, &ca_pem).map_err(|e| format!("{}: {e}", ca_path.display()))?;
        let issuer = rcgen::Issuer::new(params, key);
        Ok(SimCa { ca_pem, ca_path, issuer })
    }

    /// A server configuration for a terminal named `poi_id` (a fresh leaf certificate
    /// naming it as Adyen's test terminals are named).
    pub fn server_config(&self, poi_id: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let name = format!("{}.test.terminal.adyen.com", poi_id.to_ascii_lowercase());
        let mut params = rcgen::CertificateParams::new(vec![name.clone()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let chain = vec![cert.der().clone()];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(cfg))
    }
}

fn ca_params() -> Result<rcgen::CertificateParams, String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Edge lab simulated terminal root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}
