//! dns checks: one query to the chosen (or the system's) DNS server, over UDP, and over TCP
//! when the answer is truncated. No cache: every check asks the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tocsin_config::{DnsCheck, DnsRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::CheckResult;

/// The largest UDP answer read.
const MAX_UDP_ANSWER: usize = 4096;

/// The first `nameserver` of `/etc/resolv.conf`, else 127.0.0.1:53.
pub fn system_resolver() -> SocketAddr {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    first_nameserver(&text).unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53))
}

fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            // A scoped IPv6 address (fe80::1%eth0) is not usable without its scope.
            .and_then(|address| address.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub(super) async fn check(check: &DnsCheck, started: Instant) -> CheckResult {
    let server = check.resolver.unwrap_or_else(system_resolver);
    match query(check, server).await {
        Ok(answers) => {
            let latency = started.elapsed();
            let record = check.record.as_str();
            if answers.is_empty() {
                return CheckResult::down(
                    latency,
                    format!("{server} has no {record} record for {}", check.name),
                );
            }
            let missing: Vec<&String> = check
                .expect
                .iter()
                .filter(|expected| !answers.iter().any(|answer| same(answer, expected)))
                .collect();
            if missing.is_empty() {
                CheckResult::up(latency)
            } else {
                CheckResult::down(
                    latency,
                    format!(
                        "{record} {} is {}, expected {}",
                        check.name,
                        answers.join(", "),
                        missing
                            .iter()
                            .map(|value| value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }
        }
        Err(error) => CheckResult::down(started.elapsed(), error),
    }
}

/// Names compare without case and trailing dot; other values as written.
fn same(answer: &str, expected: &str) -> bool {
    let trim = |text: &str| text.trim().trim_end_matches('.').to_ascii_lowercase();
    trim(answer) == trim(expected)
}

fn record_type(record: DnsRecord) -> RecordType {
    match record {
        DnsRecord::A => RecordType::A,
        DnsRecord::Aaaa => RecordType::AAAA,
        DnsRecord::Cname => RecordType::CNAME,
        DnsRecord::Mx => RecordType::MX,
        DnsRecord::Ns => RecordType::NS,
        DnsRecord::Txt => RecordType::TXT,
    }
}

/// The answers of the wanted type, as text.
async fn query(check: &DnsCheck, server: SocketAddr) -> Result<Vec<String>, String> {
    let name = Name::from_ascii(&check.name)
        .map_err(|error| format!("`{}` is not a DNS name: {error}", check.name))?;
    let wanted = record_type(check.record);
    let id = u16::from_be_bytes({
        let bytes = uuid::Uuid::new_v4().into_bytes();
        [bytes[0], bytes[1]]
    });
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    message.add_query(Query::query(name, wanted));
    let request = message
        .to_vec()
        .map_err(|error| format!("cannot encode the DNS query: {error}"))?;
    let mut answer = udp_exchange(&request, id, server).await?;
    if answer.truncated() {
        answer = tcp_exchange(&request, id, server).await?;
    }
    match answer.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            return Err(format!(
                "{server} says {} does not exist (NXDOMAIN)",
                check.name
            ))
        }
        code => return Err(format!("{server} answered {code} for {}", check.name)),
    }
    Ok(answer
        .answers()
        .iter()
        .filter(|record| record.record_type() == wanted)
        .filter_map(|record| text_of(record.data()))
        .collect())
}

fn text_of(data: &RData) -> Option<String> {
    let name = |name: &Name| name.to_ascii().trim_end_matches('.').to_owned();
    Some(match data {
        RData::A(address) => address.0.to_string(),
        RData::AAAA(address) => address.0.to_string(),
        RData::CNAME(target) => name(&target.0),
        RData::NS(target) => name(&target.0),
        RData::MX(mx) => name(mx.exchange()),
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<String>(),
        _ => return None,
    })
}

async fn udp_exchange(request: &[u8], id: u16, server: SocketAddr) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|error| format!("cannot open a UDP socket: {error}"))?;
    socket
        .connect(server)
        .await
        .map_err(|error| format!("cannot reach {server}: {error}"))?;
    socket
        .send(request)
        .await
        .map_err(|error| format!("cannot send the query to {server}: {error}"))?;
    let mut buffer = vec![0; MAX_UDP_ANSWER];
    loop {
        let read = socket
            .recv(&mut buffer)
            .await
            .map_err(|error| format!("no answer from {server}: {error}"))?;
        // Stray datagrams (late answers to an earlier query) are skipped.
        if let Ok(message) = Message::from_vec(&buffer[..read]) {
            if message.id() == id && message.message_type() == MessageType::Response {
                return Ok(message);
            }
        }
    }
}

async fn tcp_exchange(request: &[u8], id: u16, server: SocketAddr) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|error| format!("cannot connect to {server} over TCP: {error}"))?;
    let length = u16::try_from(request.len()).map_err(|_| "the DNS query is too long")?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream
        .write_all(&framed)
        .await
        .map_err(|error| format!("cannot send the query to {server}: {error}"))?;
    let mut length = [0; 2];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|error| format!("no answer from {server} over TCP: {error}"))?;
    let mut answer = vec![0; usize::from(u16::from_be_bytes(length))];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|error| format!("incomplete answer from {server} over TCP: {error}"))?;
    let message = Message::from_vec(&answer)
        .map_err(|error| format!("{server} sent an answer that is not DNS: {error}"))?;
    if message.id() != id {
        return Err(format!("{server} answered another query over TCP"));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_nameserver() {
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(first_nameserver(conf), Some("10.0.0.2:53".parse().unwrap()));
        assert_eq!(first_nameserver("nameserver fe80::1%eth0\n"), None);
        assert_eq!(first_nameserver(""), None);
    }

    #[test]
    fn names_compare_without_case_or_trailing_dot() {
        assert!(same("Mail.Example.com.", "mail.example.com"));
        assert!(!same("10.0.0.1", "10.0.0.2"));
    }
}
