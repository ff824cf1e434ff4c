//! A minimal HTTP/1.1 client over one keep-alive connection, on hyper's connection API: no
//! pool, no redirects, no TLS, so the load generator spends as little CPU per request as it can
//! on a machine it shares with the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the load goes: a loopback address only, so a mistyped URL cannot turn the tool against
/// another machine.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: SocketAddr,
    host: HeaderValue,
    base: String,
}

impl Target {
    /// Parses `http://127.0.0.1:18080` (a path prefix is kept). Refuses anything that is not
    /// plain HTTP to a loopback address.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("`{url}` is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("`{url}`: only plain http:// URLs are supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("`{url}` has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .with_context(|| format!("`{url}`: the host must be an IP address or localhost"))?
        };
        if !ip.is_loopback() {
            anyhow::bail!("`{url}`: load goes to loopback addresses (127.0.0.1) only");
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            address: SocketAddr::new(ip, port),
            host: HeaderValue::from_str(authority.as_str())?,
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    pub fn from_address(address: SocketAddr) -> Target {
        Target::parse(&format!("http://{address}")).expect("a socket address is a valid URL")
    }

    /// The request target for `path` (which starts with `/`).
    pub fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        format!("{}{path}", self.base)
            .parse()
            .with_context(|| format!("`{path}` is not a valid path"))
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.address, self.base)
    }
}

/// One keep-alive HTTP/1.1 connection; requests go one at a time.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    pub async fn open(target: &Target) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(target.address)
            .await
            .with_context(|| format!("cannot connect to {}", target.address))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The error, if any, surfaces on the next request through the sender.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: target.host.clone(),
        })
    }

    /// POSTs a JSON body and reads the whole response, keeping only its status.
    pub async fn post_json(&mut self, uri: &Uri, body: Bytes) -> Result<StatusCode, hyper::Error> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(status)
    }

    /// GETs a resource and returns its status and body.
    pub async fn get(
        &mut self,
        uri: &Uri,
        bearer: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        if let Some(token) = bearer {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the API token is not a valid header value")?,
            );
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// GETs `path` on a fresh connection, giving up after `timeout`.
pub async fn get_once(
    target: &Target,
    path: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let uri = target.uri(path)?;
    tokio::time::timeout(timeout, async {
        let mut connection = Connection::open(target).await?;
        connection.get(&uri, bearer).await
    })
    .await
    .with_context(|| format!("GET {path} did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted() {
        let target = Target::parse("http://127.0.0.1:18080").unwrap();
        assert_eq!(target.address, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(target.uri("/v2/enqueue").unwrap(), "/v2/enqueue");
        let target = Target::parse("http://localhost:9000/prefix/").unwrap();
        assert_eq!(target.uri("/readyz").unwrap(), "/prefix/readyz");
        assert!(Target::parse("http://[::1]:8080").is_ok());
    }

    #[test]
    fn other_hosts_and_schemes_are_refused() {
        assert!(Target::parse("http://10.0.0.1:8080").is_err());
        assert!(Target::parse("http://example.com").is_err());
        assert!(Target::parse("https://127.0.0.1:8443").is_err());
    }
}
