//! The SMTP client: connections to the relay, kept open for the next mail.
//!
//! lettre speaks SMTP over a stream made here: a TCP connection with `TCP_NODELAY` (lettre
//! writes a message and its closing `.` in two writes; with Nagle's algorithm the second waits
//! for the relay's delayed acknowledgement, some 40 ms a mail), wrapped in TLS from the first
//! byte for `security = "tls"`, upgraded by lettre for `"starttls"`. A connection that sent a
//! mail is kept for the next one (up to [`MAX_IDLE`], for [`IDLE_FOR`]) and checked with a
//! `NOOP` before it is used again.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tocsin_config::{Smtp, SmtpSecurity};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{SendError, SEND_TIMEOUT};

/// Connections kept open between mails, at most.
pub(super) const MAX_IDLE: usize = 4;

/// How long an open connection is kept unused; relays close idle ones after a few minutes.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(60);

/// Sends mail through the `[smtp]` relay.
pub(super) struct Mailer {
    smtp: Smtp,
    hello: ClientId,
    /// How the server's certificate is checked; an error (an unreadable `ca_file`) fails
    /// every mail with it.
    trust: Result<Trust, String>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

struct Trust {
    /// For `security = "tls"`.
    config: Arc<ClientConfig>,
    /// For `security = "starttls"`: the `ca_file`'s certificates.
    ca_certificates: Option<Vec<CertificateDer<'static>>>,
}

impl Mailer {
    pub(super) fn new(smtp: Smtp) -> Mailer {
        let trust = trust(&smtp);
        if let Err(error) = &trust {
            tracing::error!(error, "email cannot be sent");
        }
        Mailer {
            smtp,
            hello: ClientId::default(),
            trust,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn from(&self) -> &str {
        &self.smtp.from
    }

    /// One attempt to deliver `email` (formatted) to the envelope's recipients.
    pub(super) async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SendError> {
        let mut connection = match self.reuse().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match connection.send(envelope, email).await {
            Ok(_) => {
                self.keep(connection);
                Ok(())
            }
            Err(error) => {
                connection.abort().await;
                if error.is_permanent() {
                    Err(SendError::Permanent(format!("smtp: {error}")))
                } else {
                    Err(SendError::Transient(format!("smtp: {error}")))
                }
            }
        }
    }

    /// An open connection that answers a `NOOP`, if one is kept.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut connection, since) = self.lock_idle().pop()?;
            if since.elapsed() < IDLE_FOR
                && tokio::time::timeout(Duration::from_secs(5), connection.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    fn keep(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.lock_idle();
        idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
        if idle.len() < MAX_IDLE {
            idle.push((connection, Instant::now()));
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection: TCP, TLS as configured, `EHLO`, `AUTH` when credentials are set.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let trust = self
            .trust
            .as_ref()
            .map_err(|error| SendError::Permanent(format!("email cannot be sent: {error}")))?;
        let smtp = &self.smtp;
        let relay = format!("{}:{}", smtp.host, smtp.port);
        let transient = |what: &str, error: &dyn std::fmt::Display| {
            SendError::Transient(format!("smtp: {what} {relay}: {error}"))
        };
        let tcp = tokio::time::timeout(
            SEND_TIMEOUT,
            TcpStream::connect((smtp.host.as_str(), smtp.port)),
        )
        .await
        .map_err(|_| transient("connecting to", &"timed out"))?
        .map_err(|error| transient("connecting to", &error))?;
        tcp.set_nodelay(true)
            .map_err(|error| transient("connecting to", &error))?;
        let stream = match smtp.security {
            SmtpSecurity::Tls => {
                let name = ServerName::try_from(smtp.host.clone()).map_err(|error| {
                    SendError::Permanent(format!("smtp host {:?}: {error}", smtp.host))
                })?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(&trust.config))
                    .connect(name, tcp)
                    .await
                    .map_err(|error| transient("TLS with", &error))?;
                Stream::Tls(Box::new(tls))
            }
            SmtpSecurity::None | SmtpSecurity::StartTls => Stream::Plain(tcp),
        };
        let smtp_error = |error: lettre::transport::smtp::Error| {
            if error.is_permanent() {
                SendError::Permanent(format!("smtp: {relay}: {error}"))
            } else {
                SendError::Transient(format!("smtp: {relay}: {error}"))
            }
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(smtp_error)?;
        if smtp.security == SmtpSecurity::StartTls {
            if !connection.can_starttls() {
                connection.abort().await;
                return Err(SendError::Permanent(format!(
                    "smtp: {relay} does not offer STARTTLS, which `security = \"starttls\"` requires"
                )));
            }
            let parameters = starttls_parameters(&smtp.host, trust.ca_certificates.as_deref())
                .map_err(|error| SendError::Permanent(format!("smtp: {error}")))?;
            connection
                .starttls(parameters, &self.hello)
                .await
                .map_err(smtp_error)?;
        }
        if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
            let credentials = Credentials::new(username.clone(), password.expose().to_owned());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(smtp_error)?;
        }
        Ok(connection)
    }
}

fn trust(smtp: &Smtp) -> Result<Trust, String> {
    let (roots, ca_certificates) = match &smtp.ca_file {
        None => (
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            None,
        ),
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| format!("cannot read smtp.ca_file {}: {error}", path.display()))?;
            let mut roots = RootCertStore::empty();
            let mut certificates = Vec::new();
            for certificate in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let certificate: CertificateDer<'static> = certificate.map_err(|error| {
                    format!("smtp.ca_file {} is not PEM: {error}", path.display())
                })?;
                roots
                    .add(certificate.clone())
                    .map_err(|error| format!("smtp.ca_file {}: {error}", path.display()))?;
                certificates.push(certificate);
            }
            if roots.is_empty() {
                return Err(format!(
                    "smtp.ca_file {} holds no certificate",
                    path.display()
                ));
            }
            (roots, Some(certificates))
        }
    };
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS protocol versions: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Trust {
        config: Arc::new(config),
        ca_certificates,
    })
}

/// lettre's TLS settings for `STARTTLS`: the public roots, or only the `ca_file`'s.
fn starttls_parameters(
    host: &str,
    ca_certificates: Option<&[CertificateDer<'static>]>,
) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(certificates) = ca_certificates {
        builder = builder.certificate_store(CertificateStore::None);
        for certificate in certificates {
            let certificate = Certificate::from_der(certificate.to_vec())
                .map_err(|error| format!("smtp.ca_file: {error}"))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build_rustls()
        .map_err(|error| format!("TLS settings for {host}: {error}"))
}

/// What lettre reads and writes: TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Plain(_) => f.write_str("Stream::Plain"),
            Stream::Tls(_) => f.write_str("Stream::Tls"),
        }
    }
}

impl AsyncTokioStream for Stream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(tcp) => tcp.peer_addr(),
            Stream::Tls(tls) => tls.get_ref().0.peer_addr(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_ca_file_is_named_in_the_error() {
        let smtp = Smtp {
            host: "relay.acme.example".to_owned(),
            port: 465,
            from: "tocsin@acme.example".to_owned(),
            username: None,
            password: None,
            security: SmtpSecurity::Tls,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let error = trust(&smtp).err().unwrap();
        assert!(
            error.contains("smtp.ca_file /nonexistent/ca.pem"),
            "{error}"
        );
    }
}
