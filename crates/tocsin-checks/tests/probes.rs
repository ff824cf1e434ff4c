//! The probes against real servers on loopback: an axum HTTP server the test controls, a TLS
//! server with certificates made for the test, closed and open TCP ports, and a DNS server.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::Router;
use tocsin_checks::{CheckStatus, Prober};
use tocsin_config::Monitor;
use tocsin_core::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One monitor from a TOML fragment (`kind = ...` and its fields).
fn monitor(fields: &str) -> Monitor {
    let source = format!(
        "[[services]]\nid = \"s\"\n\n[[monitors]]\nid = \"m\"\nservice = \"s\"\n{fields}\n"
    );
    let config = tocsin_config::parse(&source, "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid test monitor:\n{errors}"));
    config.monitors.into_iter().next().expect("one monitor")
}

fn now() -> Timestamp {
    Timestamp::now()
}

#[derive(Clone)]
struct Control {
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

async fn spawn_http() -> (SocketAddr, Control) {
    let control = Control {
        status: Arc::new(AtomicU16::new(200)),
        delay_ms: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route(
            "/health",
            get({
                let control = control.clone();
                move || async move {
                    let delay = control.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = StatusCode::from_u16(control.status.load(Ordering::SeqCst))
                        .expect("status");
                    (status, "all ok")
                }
            }),
        )
        .route(
            "/json",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"checks":[{"name":"db","ok":true,"lag":3}],"status":"green"}"#,
                )
            }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/health") }))
        .route(
            "/echo",
            any(
                |headers: HeaderMap, method: axum::http::Method, body: String| async move {
                    let key = headers
                        .get("x-api-key")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    format!("{method} key={key} body={body}").into_response()
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, control)
}

#[tokio::test]
async fn http_status_body_and_latency() {
    let (address, control) = spawn_http().await;
    let prober = Prober::new();
    let health = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/health\"\nexpect_body = \"ok\"\ndegraded_above_ms = 300"
    ));
    let result = prober.check(&health, now()).await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    assert_eq!(result.http_status, Some(200));
    assert_eq!(result.error, None);

    control.status.store(500, Ordering::SeqCst);
    let result = prober.check(&health, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(result.http_status, Some(500));
    assert_eq!(result.error.as_deref(), Some("HTTP 500, expected 2xx"));

    control.status.store(200, Ordering::SeqCst);
    control.delay_ms.store(400, Ordering::SeqCst);
    let result = prober.check(&health, now()).await;
    assert_eq!(result.status, CheckStatus::Degraded, "{result:?}");
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .contains("above the 300 ms threshold"),
        "{result:?}"
    );

    let wrong_body = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/health\"\nexpect_body = \"database up\""
    ));
    control.delay_ms.store(0, Ordering::SeqCst);
    let result = prober.check(&wrong_body, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(
        result.error.as_deref(),
        Some("HTTP 200, but the body does not contain \"database up\"")
    );
    let absent = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/health\"\nexpect_body_absent = \"all ok\""
    ));
    let result = prober.check(&absent, now()).await;
    assert_eq!(
        result.error.as_deref(),
        Some("HTTP 200, but the body contains \"all ok\"")
    );
}

#[tokio::test]
async fn http_timeout_is_down() {
    let (address, control) = spawn_http().await;
    control.delay_ms.store(2_000, Ordering::SeqCst);
    let slow = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/health\"\ntimeout = \"300ms\"\ninterval = \"1s\""
    ));
    let started = std::time::Instant::now();
    let result = Prober::new().check(&slow, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert!(
        result.error.as_deref().unwrap().contains("timed out")
            || result.error.as_deref().unwrap().contains("timeout"),
        "{result:?}"
    );
}

#[tokio::test]
async fn http_json_redirects_methods_and_headers() {
    let (address, _control) = spawn_http().await;
    let prober = Prober::new();
    let json = |path: &str, equals: &str| {
        monitor(&format!(
            "kind = \"http\"\nurl = \"http://{address}/json\"\nexpect_json = {{ path = \"{path}\", equals = {equals} }}"
        ))
    };
    assert_eq!(
        prober
            .check(&json("status", "\"green\""), now())
            .await
            .status,
        CheckStatus::Up
    );
    assert_eq!(
        prober
            .check(&json("checks.0.ok", "true"), now())
            .await
            .status,
        CheckStatus::Up
    );
    assert_eq!(
        prober.check(&json("checks.0.lag", "3"), now()).await.status,
        CheckStatus::Up
    );
    let result = prober.check(&json("status", "\"red\""), now()).await;
    assert_eq!(
        result.error.as_deref(),
        Some("HTTP 200, but `status` is \"green\", expected \"red\"")
    );
    let result = prober.check(&json("checks.4.ok", "true"), now()).await;
    assert_eq!(
        result.error.as_deref(),
        Some("HTTP 200, but the JSON body has nothing at `checks.4.ok`")
    );

    let followed = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/moved\""
    ));
    assert_eq!(prober.check(&followed, now()).await.http_status, Some(200));
    let not_followed = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/moved\"\nfollow_redirects = false"
    ));
    let result = prober.check(&not_followed, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(result.http_status, Some(307));
    let redirect_expected = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/moved\"\nfollow_redirects = false\nexpect_status = [\"3xx\"]"
    ));
    assert_eq!(
        prober.check(&redirect_expected, now()).await.status,
        CheckStatus::Up
    );

    let echo = monitor(&format!(
        "kind = \"http\"\nurl = \"http://{address}/echo\"\nmethod = \"POST\"\nheaders = {{ \"X-Api-Key\" = \"k-42\" }}\nbody = \"hello\"\nexpect_body = \"POST key=k-42 body=hello\""
    ));
    let result = prober.check(&echo, now()).await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
}

#[tokio::test]
async fn refused_connections_are_down() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let prober = Prober::new();
    let http = monitor(&format!(
        "kind = \"http\"\nurl = \"http://127.0.0.1:{port}/\""
    ));
    let result = prober.check(&http, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(result.http_status, None);
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{result:?}"
    );
    let tcp = monitor(&format!("kind = \"tcp\"\naddress = \"127.0.0.1:{port}\""));
    let result = prober.check(&tcp, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{result:?}"
    );
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = monitor(&format!(
        "kind = \"tcp\"\naddress = \"{}\"",
        open.local_addr().unwrap()
    ));
    assert_eq!(prober.check(&tcp, now()).await.status, CheckStatus::Up);
}

struct Certificates {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A CA and a certificate for 127.0.0.1 signed by it, valid until `not_after`.
fn certificates(not_after: (i32, u8, u8)) -> Certificates {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Tocsin probe test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = rcgen::date_time_ymd(2020, 1, 1);
    server.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Certificates {
        ca_pem: ca_cert.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// A TLS server on loopback answering every request with `HTTP/1.1 200` and `ok`.
async fn spawn_tls(certificates: &Certificates) -> SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificates.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificates.key_der.clone())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    address
}

fn write_ca(dir: &Path, certificates: &Certificates) -> String {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &certificates.ca_pem).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn https_with_a_custom_ca_skip_verify_and_expiry_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates((2099, 1, 1));
    let address = spawn_tls(&certificates).await;
    let ca = write_ca(dir.path(), &certificates);
    let prober = Prober::new();

    let trusted = monitor(&format!(
        "kind = \"http\"\nurl = \"https://{address}/\"\nca_file = \"{ca}\"\ntls_expiry_warn_days = 30"
    ));
    let result = prober.check(&trusted, now()).await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    assert_eq!(
        result.certificate_expires_at.map(|at| at.to_string()),
        Some("2099-01-01T00:00:00Z".to_owned())
    );

    // Without the CA, the certificate is not trusted.
    let untrusted = monitor(&format!("kind = \"http\"\nurl = \"https://{address}/\""));
    let result = prober.check(&untrusted, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert!(
        result.error.as_deref().unwrap().contains("certificate"),
        "{result:?}"
    );
    let skip = monitor(&format!(
        "kind = \"http\"\nurl = \"https://{address}/\"\nskip_tls_verify = true"
    ));
    assert_eq!(prober.check(&skip, now()).await.status, CheckStatus::Up);

    // Seen from a day 10 days before the certificate ends: degraded, with the date.
    let late = Timestamp::from_second(4_070_908_800 - 10 * 86_400).unwrap();
    let result = prober.check(&trusted, late).await;
    assert_eq!(result.status, CheckStatus::Degraded, "{result:?}");
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .contains("the certificate expires at 2099-01-01T00:00:00Z, in 10 days"),
        "{result:?}"
    );
}

#[tokio::test]
async fn tls_and_tcp_with_tls_checks() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates((2099, 1, 1));
    let address = spawn_tls(&certificates).await;
    let ca = write_ca(dir.path(), &certificates);
    let prober = Prober::new();
    let tls = monitor(&format!(
        "kind = \"tls\"\naddress = \"{address}\"\nca_file = \"{ca}\"\ntls_expiry_warn_days = 20"
    ));
    let result = prober.check(&tls, now()).await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    let late = Timestamp::from_second(4_070_908_800 - 5 * 86_400).unwrap();
    assert_eq!(prober.check(&tls, late).await.status, CheckStatus::Degraded);
    let after = Timestamp::from_second(4_070_908_800 + 86_400).unwrap();
    let result = prober.check(&tls, after).await;
    assert_eq!(result.status, CheckStatus::Down, "{result:?}");

    let tcp_tls = monitor(&format!(
        "kind = \"tcp\"\naddress = \"{address}\"\ntls = true\nca_file = \"{ca}\""
    ));
    assert_eq!(prober.check(&tcp_tls, now()).await.status, CheckStatus::Up);
    let tcp_untrusted = monitor(&format!(
        "kind = \"tcp\"\naddress = \"{address}\"\ntls = true"
    ));
    let result = prober.check(&tcp_untrusted, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .starts_with("TLS handshake with"),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_down() {
    let certificates = certificates((2021, 1, 1));
    let address = spawn_tls(&certificates).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(dir.path(), &certificates);
    let https = monitor(&format!(
        "kind = \"http\"\nurl = \"https://{address}/\"\nca_file = \"{ca}\""
    ));
    let result = Prober::new().check(&https, now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert!(
        result
            .error
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("expired"),
        "{result:?}"
    );
}

/// A DNS server on loopback: `web.test` has A 10.1.2.3, `mail.test` MX 10 mx.test, `txt.test`
/// a TXT record; other names do not exist.
async fn spawn_dns() -> SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, MX, TXT};
    use hickory_proto::rr::{Name, RData, Record};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0; 1500];
        loop {
            let Ok((read, from)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buffer[..read]) else {
                continue;
            };
            let query = request.queries()[0].clone();
            let name = query.name().clone();
            let mut response = Message::new();
            response
                .set_id(request.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true);
            response.add_query(query);
            let data = match name.to_ascii().as_str() {
                "web.test." => Some(RData::A(A(Ipv4Addr::new(10, 1, 2, 3)))),
                "mail.test." => Some(RData::MX(MX::new(
                    10,
                    Name::from_ascii("mx.test.").unwrap(),
                ))),
                "txt.test." => Some(RData::TXT(TXT::new(vec!["v=spf1 -all".to_owned()]))),
                _ => None,
            };
            match data {
                Some(data) => {
                    response.add_answer(Record::from_rdata(name, 60, data));
                }
                None => {
                    response.set_response_code(ResponseCode::NXDomain);
                }
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
        }
    });
    address
}

#[tokio::test]
async fn dns_records_from_a_chosen_resolver() {
    let server = spawn_dns().await;
    let prober = Prober::new();
    let dns = |fields: &str| {
        monitor(&format!(
            "kind = \"dns\"\nresolver = \"{server}\"\n{fields}"
        ))
    };
    let result = prober
        .check(&dns("name = \"web.test\"\nexpect = [\"10.1.2.3\"]"), now())
        .await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    let result = prober
        .check(&dns("name = \"web.test\"\nexpect = [\"10.9.9.9\"]"), now())
        .await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(
        result.error.as_deref(),
        Some("A web.test is 10.1.2.3, expected 10.9.9.9")
    );
    let result = prober
        .check(
            &dns("name = \"mail.test\"\nrecord = \"MX\"\nexpect = [\"MX.test.\"]"),
            now(),
        )
        .await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    let result = prober
        .check(
            &dns("name = \"txt.test\"\nrecord = \"TXT\"\nexpect = [\"v=spf1 -all\"]"),
            now(),
        )
        .await;
    assert_eq!(result.status, CheckStatus::Up, "{result:?}");
    let result = prober.check(&dns("name = \"gone.test\""), now()).await;
    assert_eq!(result.status, CheckStatus::Down);
    assert_eq!(
        result.error.as_deref(),
        Some(format!("{server} says gone.test does not exist (NXDOMAIN)").as_str())
    );
}
