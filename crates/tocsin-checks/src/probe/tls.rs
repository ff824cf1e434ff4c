//! TLS for the probes: client configurations for each kind of trust, and the expiry date of a
//! certificate.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tocsin_config::TlsTrust;
use tocsin_core::Timestamp;

/// Client configurations by trust, built once each (a CA file that cannot be read is tried
/// again at the next check).
#[derive(Debug, Default)]
pub(crate) struct TlsConfigs {
    configs: Mutex<HashMap<TlsTrust, Arc<ClientConfig>>>,
}

impl TlsConfigs {
    pub(crate) fn get(&self, trust: &TlsTrust) -> Result<Arc<ClientConfig>, String> {
        let mut configs = self
            .configs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(config) = configs.get(trust) {
            return Ok(Arc::clone(config));
        }
        let config = client_config(trust)?;
        configs.insert(trust.clone(), Arc::clone(&config));
        Ok(config)
    }

    /// Forgets configurations no monitor uses any more.
    pub(crate) fn retain(&self, in_use: impl Fn(&TlsTrust) -> bool) {
        self.configs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|trust, _| in_use(trust));
    }
}

/// A rustls client configuration that trusts what `trust` says.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS protocol versions: {error}"))?;
    let config = match trust {
        TlsTrust::PublicRoots => builder
            .with_root_certificates(public_roots())
            .with_no_client_auth(),
        TlsTrust::CaFile(path) => builder
            .with_root_certificates(roots_from_file(path)?)
            .with_no_client_auth(),
        TlsTrust::SkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The CA certificates of a PEM file.
pub(crate) fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| format!("cannot read the CA file {}: {error}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("the CA file {} is not PEM: {error}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!(
            "the CA file {} holds no usable certificate (expected PEM `-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(roots)
}

/// `skip_tls_verify = true`: any certificate is accepted (handshake signatures are still
/// checked, so the connection is encrypted to whoever holds the key the certificate names).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The end of a DER certificate's validity (`notAfter`), or `None` when the bytes are not a
/// certificate this parser understands.
///
/// Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... } and TBSCertificate ::=
/// SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, signature AlgorithmIdentifier,
/// issuer Name, validity SEQUENCE { notBefore Time, notAfter Time }, ... } (RFC 5280).
pub fn certificate_not_after(der: &[u8]) -> Option<Timestamp> {
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = element(rest, 0xA0)?.1;
    }
    rest = element(rest, 0x02)?.1; // serial number
    rest = element(rest, 0x30)?.1; // signature algorithm
    rest = element(rest, 0x30)?.1; // issuer
    let (validity, _) = element(rest, 0x30)?;
    let (_, after_not_before) = any_element(validity)?;
    let (tag, value, _) = tagged(after_not_before)?;
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    let full = match tag {
        // UTCTime: YYMMDDHHMMSS; years 50-99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 if digits.len() == 12 => {
            let century = if digits[..2].parse::<u8>().ok()? >= 50 {
                "19"
            } else {
                "20"
            };
            format!("{century}{digits}")
        }
        // GeneralizedTime: YYYYMMDDHHMMSS.
        0x18 if digits.len() == 14 => digits.to_owned(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| full[range].parse::<i16>().ok();
    let date = jiff::civil::date(field(0..4)?, field(4..6)? as i8, field(6..8)? as i8);
    let time = jiff::civil::Time::new(
        field(8..10)? as i8,
        field(10..12)? as i8,
        field(12..14)? as i8,
        0,
    )
    .ok()?;
    date.to_datetime(time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp())
}

/// The contents of the element at the start of `input` if its tag is `tag`, and what follows.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, value, rest) = tagged(input)?;
    (found == tag).then_some((value, rest))
}

fn any_element(input: &[u8]) -> Option<(&[u8], &[u8])> {
    tagged(input).map(|(_, value, rest)| (value, rest))
}

/// (tag, contents, rest) of the DER element at the start of `input`.
fn tagged(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for byte in input.get(2..2 + count)? {
            length = (length << 8) | usize::from(*byte);
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    let value = input.get(header..end)?;
    Some((tag, value, &input[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.clone().self_signed(&key).unwrap();
        let not_after = certificate_not_after(certificate.der()).expect("parsed");
        assert_eq!(not_after.to_string(), "2031-07-09T00:00:00Z");
        // A GeneralizedTime (years from 2050 on).
        params.not_after = rcgen::date_time_ymd(2061, 1, 2);
        let certificate = params.self_signed(&key).unwrap();
        let not_after = certificate_not_after(certificate.der()).expect("parsed");
        assert_eq!(not_after.to_string(), "2061-01-02T00:00:00Z");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(certificate_not_after(b""), None);
        assert_eq!(certificate_not_after(&[0x30, 0x82, 0xFF]), None);
        assert_eq!(certificate_not_after(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
    }
}
