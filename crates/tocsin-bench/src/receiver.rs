//! Local peers the server under test talks to, inside the benchmark process: an HTTP/1.1
//! server on loopback (hyper, one task per connection) for monitor targets, a webhook
//! receiver, and the [`Inbox`] where the receivers (and the SMTP sink of `crate::smtp`) note
//! what arrived when.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Listens on `ip` (a free port) and answers every request with `handler`, until the process
/// ends. Returns the address it listens on.
pub async fn serve_http<H, F>(ip: IpAddr, handler: H) -> anyhow::Result<SocketAddr>
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    accept_loop(ip, move |stream| {
        let handler = handler.clone();
        async move {
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// Listens on `ip` (a free port) and runs `serve` in a task of its own for every connection
/// (with `TCP_NODELAY`), until the process ends. Returns the address it listens on.
pub async fn accept_loop<S, F>(ip: IpAddr, serve: S) -> anyhow::Result<SocketAddr>
where
    S: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((ip, 0))
        .await
        .with_context(|| format!("cannot listen on {ip}"))?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
    Ok(address)
}

/// Messages at most an [`Inbox`] keeps; more are counted and dropped.
pub const INBOX_CAPACITY: usize = 10_000_000;

/// One message a peer received.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When the peer had it whole (an HTTP request handed to the handler, the end of an SMTP
    /// `DATA`), before it answered.
    pub at: Instant,
    /// Where it went: the request path, or the mail's recipients.
    pub to: String,
    /// What it is about: the incident title of a webhook body, the subject of a mail.
    pub text: String,
    /// Its idempotency key: the `Idempotency-Key` header, the mail's `Message-ID`.
    pub key: String,
}

/// What the local peers received, in arrival order.
#[derive(Debug, Default)]
pub struct Inbox {
    arrivals: Mutex<Vec<Arrival>>,
    dropped: AtomicU64,
}

impl Inbox {
    pub fn record(&self, arrival: Arrival) {
        let mut arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        if arrivals.len() < INBOX_CAPACITY {
            arrivals.push(arrival);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages that did not fit.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A webhook receiver on 127.0.0.1: records every request's path, idempotency key and the
/// `incident.title` of its JSON body in `inbox`, and answers `200`.
pub async fn serve_webhooks(inbox: Arc<Inbox>) -> anyhow::Result<SocketAddr> {
    serve_http(Ipv4Addr::LOCALHOST.into(), move |request| {
        let inbox = Arc::clone(&inbox);
        async move {
            let headers_at = Instant::now();
            let to = request.uri().path().to_owned();
            let key = request
                .headers()
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = request
                .into_body()
                .collect()
                .await
                .map(|body| body.to_bytes());
            let text = body
                .ok()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .and_then(|value| value["incident"]["title"].as_str().map(str::to_owned))
                .unwrap_or_default();
            inbox.record(Arrival {
                at: headers_at,
                to,
                text,
                key,
            });
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await
}
