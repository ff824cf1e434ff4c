//! tcp checks (connect, optionally a TLS handshake) and tls-expiry checks.

use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use tocsin_config::{TcpCheck, TlsCheck};
use tokio::net::TcpStream;

use super::tls::{certificate_not_after, TlsConfigs};
use super::{error_chain, CheckResult};

pub(super) async fn check_tcp(
    check: &TcpCheck,
    configs: &TlsConfigs,
    started: Instant,
) -> CheckResult {
    let stream = match connect(&check.address).await {
        Ok(stream) => stream,
        Err(error) => return CheckResult::down(started.elapsed(), error),
    };
    if !check.tls {
        return CheckResult::up(started.elapsed());
    }
    handshake(
        stream,
        &check.address,
        configs.get(&check.tls_trust),
        started,
    )
    .await
}

pub(super) async fn check_tls(
    check: &TlsCheck,
    configs: &TlsConfigs,
    started: Instant,
) -> CheckResult {
    let stream = match connect(&check.address).await {
        Ok(stream) => stream,
        Err(error) => return CheckResult::down(started.elapsed(), error),
    };
    handshake(
        stream,
        &check.address,
        configs.get(&check.tls_trust),
        started,
    )
    .await
}

async fn connect(address: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("cannot connect to {address}: {error}"))?;
    // Checks are small: do not wait to fill packets.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn handshake(
    stream: TcpStream,
    address: &str,
    config: Result<Arc<rustls::ClientConfig>, String>,
    started: Instant,
) -> CheckResult {
    let config = match config {
        Ok(config) => config,
        Err(error) => return CheckResult::down(started.elapsed(), error),
    };
    let host = host_of(address);
    let name = match ServerName::try_from(host.to_owned()) {
        Ok(name) => name,
        Err(error) => {
            return CheckResult::down(
                started.elapsed(),
                format!("`{host}` is not a TLS server name: {error}"),
            )
        }
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match connector.connect(name, stream).await {
        Ok(tls) => {
            let (_, connection) = tls.get_ref();
            let expires = connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| certificate_not_after(leaf));
            let mut result = CheckResult::up(started.elapsed());
            result.certificate_expires_at = expires;
            result
        }
        Err(error) => CheckResult::down(
            started.elapsed(),
            format!(
                "TLS handshake with {address} failed: {}",
                error_chain(&error)
            ),
        ),
    }
}

/// The host of `host:port` or `[ipv6]:port`.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_of_addresses() {
        assert_eq!(super::host_of("db.internal:5432"), "db.internal");
        assert_eq!(super::host_of("[::1]:443"), "::1");
        assert_eq!(super::host_of("127.0.0.1:443"), "127.0.0.1");
    }
}
