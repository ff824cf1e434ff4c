//! The public status page: `/status…`, `/api/v2/…` (Statuspage's public API) and `/` on the
//! status page's own host, served from the in-memory snapshot the server keeps current.
//!
//! A request never reaches the store and needs no credentials: it is a lookup in the snapshot
//! and a copy of bytes compressed ahead of time. When the store cannot be read, the last
//! snapshot goes on being served; the page shows the time its data was read.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tocsin_status::{Encoding, Snapshot};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::AppState;

/// How long browsers and caches may reuse a response without asking again. Short, since an
/// outage moves fast; `stale-if-error` lets a CDN in front keep serving when Tocsin is away.
const CACHE_CONTROL: &str = "public, max-age=10, stale-while-revalidate=30, stale-if-error=86400";

/// What the status page serves, shared by the handlers and the task that rebuilds it.
#[derive(Debug, Default)]
pub struct PublicStatus {
    snapshot: ArcSwapOption<Snapshot>,
    /// `Some` while the config has a `[status_page]`.
    settings: ArcSwap<Option<StatusSettings>>,
    changed: Notify,
}

/// What the handlers need of `[status_page]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSettings {
    /// The host (lower case, without a port) of `public_url`, whose `/` is the page.
    pub public_host: Option<String>,
    /// The ids of `[[components]]`, in order: what status updates, maintenance and overrides
    /// may name.
    pub components: Vec<String>,
}

impl PublicStatus {
    pub fn new() -> PublicStatus {
        PublicStatus::default()
    }

    /// The snapshot being served, once one was built.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// Serves `snapshot` from now on.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// Sets what the config says; `None` when it has no `[status_page]` (the routes then
    /// answer 404 and the snapshot is dropped).
    pub fn configure(&self, settings: Option<StatusSettings>) {
        if settings.is_none() {
            self.snapshot.store(None);
        }
        self.settings.store(Arc::new(settings));
    }

    pub fn settings(&self) -> Option<StatusSettings> {
        self.settings.load().as_ref().clone()
    }

    /// Asks the task that keeps the snapshot current to rebuild it now (something public
    /// changed), rather than at its next round.
    pub fn request_rebuild(&self) {
        self.changed.notify_one();
    }

    /// Completes when [`PublicStatus::request_rebuild`] was called (since the last time it
    /// completed).
    pub async fn rebuild_requested(&self) {
        self.changed.notified().await;
    }
}

/// The host part of an `http(s)://` URL, lower case, without a port or user info.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/status", get(serve))
        .route("/status/{*rest}", get(serve))
        .route("/api/v2/{*rest}", get(serve))
}

/// `/` is the page on the status page's own host (`public_url`), and nothing elsewhere.
async fn root(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|host| host_of(&format!("http://{host}")));
    let public_host = state.status.settings().and_then(|s| s.public_host);
    match (host, public_host) {
        (Some(host), Some(public)) if host == public => respond(&state.status, "/status", &headers),
        _ => crate::error::not_found(uri).await.into_response(),
    }
}

async fn serve(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    respond(&state.status, uri.path(), &headers)
}

fn respond(status: &PublicStatus, path: &str, headers: &HeaderMap) -> Response {
    if status.settings().is_none() {
        return ApiError::not_found(
            "no status page is configured: add a [status_page] section to the config".to_owned(),
        )
        .into_response();
    }
    let Some(snapshot) = status.snapshot() else {
        let mut response =
            ApiError::unavailable("the status page is being built; try again in a few seconds")
                .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let Some(asset) = snapshot.get(path) else {
        return ApiError::not_found(format!("the status page has nothing at {path}"))
            .into_response();
    };
    let encoding = preferred_encoding(headers);
    let etag = asset.etag_for(encoding);
    let mut response = if matches_etag(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = axum::body::Body::from(bytes_of(asset.body(encoding)));
        let mut response = Response::new(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(coding) = content_coding(encoding) {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        response
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.starts_with("/api/v2/") {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The body as `Bytes` without copying it: the snapshot's `Arc` keeps it alive.
fn bytes_of(body: &Arc<[u8]>) -> bytes::Bytes {
    bytes::Bytes::from_owner(ArcBytes(Arc::clone(body)))
}

struct ArcBytes(Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn content_coding(encoding: Encoding) -> Option<&'static str> {
    match encoding {
        Encoding::Identity => None,
        Encoding::Gzip => Some("gzip"),
        Encoding::Brotli => Some("br"),
    }
}

/// Brotli when the client takes it, else gzip, else the bytes as they are. A coding with
/// `q=0` is refused; `*` stands for codings not named.
fn preferred_encoding(headers: &HeaderMap) -> Encoding {
    let mut brotli = None;
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let accepted = parts
                .filter_map(|param| {
                    let (name, value) = param.split_once('=')?;
                    (name.trim().eq_ignore_ascii_case("q")).then(|| value.trim().to_owned())
                })
                .next()
                .is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0));
            match coding.as_str() {
                "br" => brotli = Some(accepted),
                "gzip" | "x-gzip" => gzip = Some(accepted),
                "*" => any = Some(accepted),
                _ => {}
            }
        }
    }
    if brotli.or(any).unwrap_or(false) {
        Encoding::Brotli
    } else if gzip.or(any).unwrap_or(false) {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Whether `If-None-Match` names the ETag (weak comparison, as RFC 9110 asks for it) or is
/// `*`.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || bare(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_encoding_follows_accept_encoding() {
        let pick =
            |value: &'static str| preferred_encoding(&headers(&[("accept-encoding", value)]));
        assert_eq!(pick("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(pick("*"), Encoding::Brotli);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(pick("gzip;q=0"), Encoding::Identity);
        assert_eq!(preferred_encoding(&HeaderMap::new()), Encoding::Identity);
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let tag = "\"00ff-gz\"";
        assert!(matches_etag(
            &headers(&[("if-none-match", "\"00ff-gz\"")]),
            tag
        ));
        assert!(matches_etag(
            &headers(&[("if-none-match", "W/\"00ff-gz\"")]),
            tag
        ));
        assert!(matches_etag(
            &headers(&[("if-none-match", "\"a\", \"00ff-gz\"")]),
            tag
        ));
        assert!(matches_etag(&headers(&[("if-none-match", "*")]), tag));
        assert!(!matches_etag(
            &headers(&[("if-none-match", "\"00ff\"")]),
            tag
        ));
        assert!(!matches_etag(&HeaderMap::new(), tag));
    }

    #[test]
    fn hosts_are_read_from_urls_and_host_headers() {
        assert_eq!(
            host_of("https://Status.Acme.example/x").as_deref(),
            Some("status.acme.example")
        );
        assert_eq!(
            host_of("http://status.acme.example:8443").as_deref(),
            Some("status.acme.example")
        );
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("ftp://x"), None);
        assert_eq!(host_of("http://"), None);
    }
}
