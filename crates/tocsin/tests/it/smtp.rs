//! The email sender against a real SMTP server process (Python's aiosmtpd,
//! `tests/interop/smtp_sink.py`): STARTTLS and TLS from the first byte with a certificate of
//! the `ca_file`'s CA, AUTH, one connection kept for consecutive mails, a relay that went away
//! between mails, and the errors a wrong setting gives.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tocsin_config::{Secret, Smtp, SmtpSecurity};
use tocsin_notify::{Destination, Message, SendError, Senders};

use crate::interop::python_ready;
use crate::paging::{next_line, smtp_sink as sink, SmtpSink as Sink};
use crate::support::temp_dir;

/// A CA, and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("certificate");
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

fn smtp(port: u16, security: SmtpSecurity, ca_file: Option<&Path>) -> Smtp {
    Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        from: "Tocsin <tocsin@example.test>".to_owned(),
        username: None,
        password: None,
        security,
        ca_file: ca_file.map(Path::to_path_buf),
    }
}

fn with_login(mut smtp: Smtp, user: &str, password: &str) -> Smtp {
    smtp.username = Some(user.to_owned());
    smtp.password = Some(Secret::new(password));
    smtp
}

fn message(subject: &str) -> Message {
    Message {
        incident: 7,
        priority: tocsin_core::Priority::P1,
        subject: subject.to_owned(),
        text: format!("{subject}\n\nDisk 99% on db1"),
        facts: Vec::new(),
        links: tocsin_notify::message::Links {
            acknowledge: None,
            resolve: None,
            incident: "http://127.0.0.1/api/v1/incidents/7".to_owned(),
        },
        also: Vec::new(),
        json: Value::Null,
    }
}

fn to_ana() -> Destination {
    Destination::Email {
        address: "ana@example.test".to_owned(),
    }
}

/// Sends three mails one after the other and returns what the server saw of each.
async fn three_mails(senders: &Senders, sink: &mut Sink) -> Vec<Value> {
    let mut seen = Vec::new();
    for n in 1..=3 {
        let key = format!("mail-{n}");
        senders
            .send(&to_ana(), &message(&format!("[P1] mail {n}")), &key)
            .await
            .unwrap_or_else(|error| panic!("mail {n}: {error}"));
        let line = next_line(&mut sink.lines, "a mail").await;
        assert_eq!(line["message_id"], format!("<{key}@tocsin>"));
        assert_eq!(line["rcpt_tos"][0], "ana@example.test");
        seen.push(line);
    }
    seen
}

fn one_connection(seen: &[Value]) -> bool {
    seen.iter()
        .all(|line| line["peer_port"] == seen[0]["peer_port"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_and_the_ca_file_keeps_one_connection_for_consecutive_mails() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let dir = temp_dir();
    let (ca, cert, key) = certificates(&dir, "relay");
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let mut sink = sink(&["--starttls", &cert, &key, "--auth", "tocsin:s3cret"]).await;
    let senders = Senders::new(Some(with_login(
        smtp(sink.port, SmtpSecurity::StartTls, Some(&ca)),
        "tocsin",
        "s3cret",
    )));
    let seen = three_mails(&senders, &mut sink).await;
    for line in &seen {
        assert_eq!(line["encrypted"], true, "{line}");
        assert_eq!(line["login"], "tocsin", "{line}");
    }
    assert!(one_connection(&seen), "a new connection per mail: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_the_first_byte_with_the_ca_file() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let dir = temp_dir();
    let (ca, cert, key) = certificates(&dir, "relay");
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let mut sink = sink(&["--tls", &cert, &key, "--auth", "tocsin:s3cret"]).await;
    let senders = Senders::new(Some(with_login(
        smtp(sink.port, SmtpSecurity::Tls, Some(&ca)),
        "tocsin",
        "s3cret",
    )));
    let seen = three_mails(&senders, &mut sink).await;
    assert!(seen
        .iter()
        .all(|line| line["encrypted"] == true && line["login"] == "tocsin"));
    assert!(one_connection(&seen), "a new connection per mail: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_client_does_not_trust_is_refused_and_nothing_is_sent() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let dir = temp_dir();
    let (_, cert, key) = certificates(&dir, "relay");
    let (other_ca, _, _) = certificates(&dir, "other");
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let mut tls = sink(&["--tls", &cert, &key]).await;
    let mut starttls = sink(&["--starttls", &cert, &key]).await;
    for (port, security, ca) in [
        // The public roots do not know the test CA, nor does another CA.
        (tls.port, SmtpSecurity::Tls, None),
        (tls.port, SmtpSecurity::Tls, Some(other_ca.as_path())),
        (
            starttls.port,
            SmtpSecurity::StartTls,
            Some(other_ca.as_path()),
        ),
    ] {
        let senders = Senders::new(Some(smtp(port, security, ca)));
        let error = senders
            .send(&to_ana(), &message("[P1] refused"), "refused")
            .await
            .expect_err("an untrusted certificate");
        let text = error.to_string();
        assert!(
            text.contains("certificate") || text.contains("UnknownIssuer"),
            "{security:?} with {ca:?}: {text}"
        );
    }
    for sink in [&mut tls, &mut starttls] {
        let nothing = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            sink.lines.next_line(),
        )
        .await;
        assert!(nothing.is_err(), "a mail was delivered: {nothing:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_settings_are_permanent_errors_that_say_what_to_fix() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let dir = temp_dir();
    let (ca, cert, key) = certificates(&dir, "relay");
    let plain = sink(&[]).await;
    let senders = Senders::new(Some(smtp(plain.port, SmtpSecurity::StartTls, Some(&ca))));
    match senders.send(&to_ana(), &message("[P1] x"), "x").await {
        Err(SendError::Permanent(text)) => assert!(text.contains("STARTTLS"), "{text}"),
        other => panic!("a relay without STARTTLS: {other:?}"),
    }

    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let guarded = sink(&["--starttls", &cert, &key, "--auth", "tocsin:s3cret"]).await;
    let senders = Senders::new(Some(with_login(
        smtp(guarded.port, SmtpSecurity::StartTls, Some(&ca)),
        "tocsin",
        "wrong",
    )));
    match senders.send(&to_ana(), &message("[P1] x"), "x").await {
        Err(SendError::Permanent(text)) => assert!(text.contains("535"), "{text}"),
        other => panic!("a wrong password: {other:?}"),
    }

    let senders = Senders::new(Some(smtp(
        guarded.port,
        SmtpSecurity::StartTls,
        Some(&dir.join("missing.pem")),
    )));
    match senders.send(&to_ana(), &message("[P1] x"), "x").await {
        Err(SendError::Permanent(text)) => {
            assert!(
                text.contains("smtp.ca_file") && text.contains("missing.pem"),
                "{text}"
            );
        }
        other => panic!("a missing ca_file: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_restarted_between_mails_gets_the_next_one_on_a_new_connection() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let mut first = sink(&[]).await;
    let port = first.port;
    let senders = Senders::new(Some(smtp(port, SmtpSecurity::None, None)));
    senders
        .send(&to_ana(), &message("[P1] before"), "before")
        .await
        .expect("the first mail");
    let before = next_line(&mut first.lines, "the first mail").await;
    assert_eq!(before["message_id"], "<before@tocsin>");
    // The relay stops (closing its connections) and comes back on the same port.
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut second = sink(&["--port", &port.to_string()]).await;
    senders
        .send(&to_ana(), &message("[P1] after"), "after")
        .await
        .expect("the mail after the restart");
    let after = next_line(&mut second.lines, "the mail after the restart").await;
    assert_eq!(after["message_id"], "<after@tocsin>");
    assert_ne!(after["peer_port"], before["peer_port"]);
}
