//! HTTPS served by Tocsin itself (rustls), as the official PagerDuty clients require.

use std::time::Duration;

use serde_json::json;

use crate::support::{temp_dir, test_config, API_KEY};

#[tokio::test]
async fn serves_https_when_the_config_names_a_certificate() {
    let dir = temp_dir();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("write key");
    let source = test_config(&format!(
        "[server.tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    ));
    // The TLS section must belong to [server]: put it right after it.
    let source = source.replacen("[server]\nlisten = \"127.0.0.1:0\"\n", "", 1);
    let source = format!("[server]\nlisten = \"127.0.0.1:0\"\n{source}");
    let config = tocsin_config::parse(&source, "tls.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let settings = tocsin::Settings {
        config,
        data_dir: dir.join("data"),
        database: None,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(tocsin::launch(settings, listener, async move {
        stop.cancelled().await;
    }));
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("pem"),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut answer = None;
    for _ in 0..100 {
        match client
            .post(format!("https://localhost:{port}/v2/enqueue"))
            .json(&json!({"routing_key": API_KEY, "event_action": "trigger",
                          "payload": {"summary": "over TLS", "source": "s", "severity": "info"}}))
            .send()
            .await
        {
            Ok(response) => {
                answer = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let answer = answer.expect("an HTTPS answer");
    assert_eq!(answer.status().as_u16(), 202);
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    shutdown.cancel();
    server.await.expect("task").expect("server");
}
