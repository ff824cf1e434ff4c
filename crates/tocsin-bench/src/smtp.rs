//! A minimal SMTP sink on 127.0.0.1 for the paging benchmarks: it accepts every mail (no TLS,
//! no authentication), notes in an [`Inbox`] when the end of each `DATA` arrived, with the
//! mail's recipients, `Subject` and `Message-ID`, and keeps nothing else. Enough of RFC 5321
//! for an SMTP client such as the server's: `EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA`, `RSET`,
//! `NOOP`, `QUIT`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

use crate::receiver::{self, Arrival, Inbox};

/// The longest command or text line read (RFC 5321 allows 512 and 1000 octets).
const MAX_LINE: usize = 4096;
/// The largest mail accepted, in bytes.
const MAX_MESSAGE: usize = 1 << 20;

/// Listens on a free port of 127.0.0.1 until the process ends; returns the address.
pub async fn serve_smtp(inbox: Arc<Inbox>) -> anyhow::Result<SocketAddr> {
    receiver::accept_loop(Ipv4Addr::LOCALHOST.into(), move |stream| {
        let inbox = Arc::clone(&inbox);
        async move {
            let (read, write) = stream.into_split();
            // A client that goes away mid-session is no concern of the benchmark.
            let _ = session(BufReader::new(read), write, &inbox).await;
        }
    })
    .await
    .context("cannot listen for SMTP")
}

/// One SMTP session, until `QUIT` or the end of the connection.
async fn session(
    mut read: impl AsyncBufRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
    inbox: &Inbox,
) -> std::io::Result<()> {
    write.write_all(b"220 tocsin-bench ESMTP\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        if !read_line(&mut read, &mut line).await? {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-tocsin-bench\r\n250-8BITMIME\r\n250 SIZE 1048576\r\n",
            "HELO" => b"250 tocsin-bench\r\n",
            "MAIL" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                let address = command
                    .split_once(':')
                    .map_or("", |(_, rest)| rest)
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>');
                recipients.push(address.to_owned());
                b"250 OK\r\n"
            }
            "DATA" if recipients.is_empty() => b"503 RCPT first\r\n",
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let Some(headers) = read_data(&mut read, &mut line).await? else {
                    return Ok(());
                };
                match headers {
                    Some(headers) => {
                        inbox.record(Arrival {
                            at: Instant::now(),
                            to: recipients.join(","),
                            text: header(&headers, "subject").unwrap_or_default(),
                            key: header(&headers, "message-id")
                                .unwrap_or_default()
                                .trim_start_matches('<')
                                .trim_end_matches('>')
                                .to_owned(),
                        });
                        recipients.clear();
                        b"250 OK queued\r\n"
                    }
                    None => b"552 message too large\r\n",
                }
            }
            "RSET" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Reads one line (with its CRLF) into `line`; false at the end of the stream. A line longer
/// than [`MAX_LINE`] is cut there (the rest comes as the next line).
async fn read_line(
    read: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let mut limited = read.take(MAX_LINE as u64);
    Ok(limited.read_until(b'\n', line).await? > 0)
}

/// Reads a mail's text up to the line holding a single dot. `None` at the end of the stream;
/// `Some(None)` when it was larger than [`MAX_MESSAGE`] (read to its end all the same);
/// otherwise its header section, folded lines joined.
async fn read_data(
    read: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Option<Vec<String>>>> {
    let mut headers: Vec<String> = Vec::new();
    let mut in_headers = true;
    let mut size = 0;
    loop {
        if !read_line(read, line).await? {
            return Ok(None);
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            return Ok(Some((size <= MAX_MESSAGE).then_some(headers)));
        }
        size += line.len();
        if !in_headers {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            in_headers = false;
        } else if text.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push(' ');
                last.push_str(text.trim_start());
            }
        } else {
            headers.push(text.to_owned());
        }
    }
}

/// The value of header `name` (lowercase), if present.
fn header(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field
            .trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_records_the_mail_and_answers_each_command() {
        let inbox = Inbox::default();
        let client = b"EHLO client\r\nMAIL FROM:<tocsin@bench.example>\r\n\
            RCPT TO:<ana@bench.example>\r\nDATA\r\n\
            Subject: [P1] Bench: disk full\r\n on db1 (#7)\r\nMessage-ID: <page-7@tocsin>\r\n\
            \r\nbody line\r\n..dot-stuffed\r\n.\r\nQUIT\r\n";
        let mut answers = Vec::new();
        session(&client[..], &mut answers, &inbox).await.unwrap();
        let answers = String::from_utf8(answers).unwrap();
        let codes: Vec<&str> = answers
            .lines()
            .filter(|line| line.as_bytes().get(3) == Some(&b' '))
            .map(|line| &line[..3])
            .collect();
        assert_eq!(codes, ["220", "250", "250", "250", "354", "250", "221"]);
        let arrivals = inbox.take();
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals[0].to, "ana@bench.example");
        assert_eq!(arrivals[0].text, "[P1] Bench: disk full on db1 (#7)");
        assert_eq!(arrivals[0].key, "page-7@tocsin");
    }

    #[tokio::test]
    async fn data_before_a_recipient_is_refused_and_nothing_is_recorded() {
        let inbox = Inbox::default();
        let mut answers = Vec::new();
        session(&b"HELO x\r\nDATA\r\nQUIT\r\n"[..], &mut answers, &inbox)
            .await
            .unwrap();
        assert!(String::from_utf8(answers).unwrap().contains("503 "));
        assert!(inbox.is_empty());
    }
}
