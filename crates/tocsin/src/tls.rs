use std::path::Path;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A rustls server configuration from PEM files (certificate chain, private key), offering
/// HTTP/2 and HTTP/1.1.
pub(crate) fn server_config(
    certificate: &Path,
    private_key: &Path,
) -> anyhow::Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .with_context(|| format!("cannot read the TLS certificate {}", certificate.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "the TLS certificate {} is not a PEM certificate chain",
                certificate.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "the TLS certificate {} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----`)",
            certificate.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(private_key).with_context(|| {
        format!(
            "cannot read a PEM private key from {}",
            private_key.display()
        )
    })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and private key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
