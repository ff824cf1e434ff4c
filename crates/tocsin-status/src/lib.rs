//! The public status page, rendered ahead of time.
//!
//! [`render`] turns a [`StatusView`] (what is public, read by the server) into a [`Snapshot`]:
//! every page, JSON document and feed the status page serves, each already compressed and with
//! its ETag, so a request is a lookup and a copy, never a store query.
//!
//! Paths in a snapshot:
//!
//! - `/status`: the page (the public host serves it at `/` too);
//! - `/status/incidents/<id>`: one page per incident of the view;
//! - `/status/maintenance/<id>`: one page per maintenance window of the view;
//! - `/status/history`: incidents and maintenance by month, over `history_days`;
//! - `/status/feed.atom`: an Atom feed of incident updates and maintenance notices;
//! - `/api/v2/…`: Statuspage's public API v2 (summary, status, components, incidents,
//!   unresolved incidents, scheduled maintenances, upcoming and active ones).
//!
//! Ids in paths are percent-encoded (RFC 3986 unreserved characters stay as they are), so a
//! request path can be looked up as it arrives.

mod asset;
mod feed;
mod html;
mod json;
mod layout;
pub mod model;
mod status;
mod text;

#[cfg(test)]
mod fixture;

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::tz::TimeZone;
use tocsin_core::Timestamp;

pub use asset::{Asset, Encoding};
pub use model::*;
pub use status::{derive_component_status, MonitorHealth};

use crate::layout::Entry;
use crate::status::Overall;

/// Everything the status page serves at one moment, immutable once built: the server swaps a
/// whole snapshot in when a newer one is ready, so readers never see half of a rebuild.
#[derive(Debug, Clone)]
pub struct Snapshot {
    built_at: Timestamp,
    files: BTreeMap<String, Asset>,
}

impl Snapshot {
    /// The asset at a request path, e.g. `/status` or `/api/v2/summary.json`.
    pub fn get(&self, path: &str) -> Option<&Asset> {
        self.files.get(path)
    }

    /// Every path the snapshot holds, in sorted order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// When the data it shows was read (the view's `data_as_of`), so the server can tell how
    /// stale the page it serves is.
    pub fn built_at(&self) -> Timestamp {
        self.built_at
    }

    /// The memory the snapshot holds in bodies, ETags and paths, for a metric.
    pub fn total_bytes(&self) -> usize {
        self.files
            .iter()
            .map(|(path, asset)| path.len() + asset.total_bytes())
            .sum()
    }
}

/// Renders every page, document and feed of the view, each compressed once.
pub fn render(view: &StatusView) -> Snapshot {
    render_reusing(view, None)
}

/// As [`render`], but an asset whose bytes are the same as in `previous` keeps its compressed
/// bodies instead of compressing them again: most documents do not change between two rebuilds,
/// and compression is most of a rebuild's cost.
pub fn render_reusing(view: &StatusView, previous: Option<&Snapshot>) -> Snapshot {
    let context = Context::new(view);
    let mut sources: Vec<(String, &'static str, Vec<u8>)> = Vec::new();
    for (path, markup) in html::pages(&context) {
        sources.push((path, asset::HTML, markup.into_string().into_bytes()));
    }
    sources.push((
        "/status/feed.atom".to_owned(),
        asset::ATOM,
        feed::feed(&context).into_bytes(),
    ));
    for (path, bytes) in json::documents(&context) {
        sources.push((path.to_owned(), asset::JSON, bytes));
    }
    let files = sources
        .into_iter()
        .map(|(path, content_type, bytes)| {
            let reusable = previous.and_then(|snapshot| snapshot.get(&path));
            let asset = Asset::build(content_type, bytes, reusable);
            (path, asset)
        })
        .collect();
    Snapshot {
        built_at: view.data_as_of,
        files,
    }
}

/// What every renderer needs besides the view, worked out once per render.
pub(crate) struct Context<'a> {
    pub(crate) view: &'a StatusView,
    pub(crate) zone: TimeZone,
    pub(crate) layout: Vec<Entry<'a>>,
    pub(crate) overall: Overall,
    /// The newest change the view records. The JSON's `page.updated_at` uses it rather than
    /// `data_as_of`, so that documents (and their ETags) stay the same between rebuilds while
    /// nothing changes.
    pub(crate) updated_at: Timestamp,
    components: HashMap<&'a str, &'a ComponentView>,
    incidents: HashSet<&'a str>,
}

impl<'a> Context<'a> {
    fn new(view: &'a StatusView) -> Context<'a> {
        let updated_at = view
            .components
            .iter()
            .map(|component| component.updated_at)
            .chain(view.incidents.iter().map(|incident| incident.updated_at))
            .chain(
                view.incidents
                    .iter()
                    .flat_map(|incident| incident.updates.iter().map(|update| update.created_at)),
            )
            .chain(
                view.maintenances
                    .iter()
                    .map(|maintenance| maintenance.updated_at),
            )
            .max()
            .unwrap_or(view.data_as_of);
        Context {
            view,
            zone: text::zone(&view.page.time_zone),
            layout: layout::entries(&view.components),
            overall: Overall::of(view),
            updated_at,
            components: view
                .components
                .iter()
                .map(|component| (component.id.as_str(), component))
                .collect(),
            incidents: view
                .incidents
                .iter()
                .map(|incident| incident.id.as_str())
                .collect(),
        }
    }

    /// Whether the incident has a page in this snapshot, so that links never lead nowhere.
    pub(crate) fn has_incident(&self, id: &str) -> bool {
        self.incidents.contains(id)
    }

    /// A path made absolute under the page's public URL, for the feed and the JSON, which are
    /// read away from the page.
    pub(crate) fn url(&self, path: &str) -> String {
        let mut url = self.view.page.url.trim_end_matches('/').to_owned();
        url.push_str(path);
        url
    }

    /// A component's name by id; an id that is no longer configured shows as itself.
    pub(crate) fn component_name<'b>(&'b self, id: &'b str) -> &'b str {
        self.components
            .get(id)
            .map_or(id, |component| component.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_holds_every_path() {
        let view = fixture::view(3, 5, 2, 2);
        let snapshot = render(&view);
        let paths: Vec<&str> = snapshot.paths().collect();
        for expected in [
            "/status",
            "/status/history",
            "/status/feed.atom",
            "/status/incidents/inc0",
            "/status/incidents/inc1",
            "/status/maintenance/m0",
            "/status/maintenance/m1",
            "/status/maintenance/m2",
            "/api/v2/summary.json",
            "/api/v2/status.json",
            "/api/v2/components.json",
            "/api/v2/incidents.json",
            "/api/v2/incidents/unresolved.json",
            "/api/v2/scheduled-maintenances.json",
            "/api/v2/scheduled-maintenances/upcoming.json",
            "/api/v2/scheduled-maintenances/active.json",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        assert_eq!(paths.len(), 16);
        assert_eq!(snapshot.built_at(), view.data_as_of);
        assert!(snapshot.get("/nope").is_none());
        let bodies: usize = paths
            .iter()
            .map(|path| {
                let asset = snapshot.get(path).unwrap();
                asset.identity.len() + asset.gzip.len() + asset.brotli.len()
            })
            .sum();
        assert!(snapshot.total_bytes() > bodies);
    }

    #[test]
    fn content_types() {
        let snapshot = render(&fixture::view(2, 3, 1, 1));
        assert_eq!(
            snapshot.get("/status").unwrap().content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            snapshot.get("/status/feed.atom").unwrap().content_type,
            "application/atom+xml; charset=utf-8"
        );
        assert_eq!(
            snapshot.get("/api/v2/status.json").unwrap().content_type,
            "application/json"
        );
    }

    #[test]
    fn etags_are_equal_for_equal_views_and_change_with_content() {
        let view = fixture::view(3, 10, 2, 2);
        let first = render(&view);
        let second = render(&view.clone());
        for path in first.paths() {
            assert_eq!(
                first.get(path).unwrap().etag,
                second.get(path).unwrap().etag,
                "{path}"
            );
        }
        let mut changed = view.clone();
        changed.components[1].name = "Renamed".to_owned();
        let third = render(&changed);
        for path in ["/status", "/api/v2/components.json", "/api/v2/summary.json"] {
            assert_ne!(
                first.get(path).unwrap().etag,
                third.get(path).unwrap().etag,
                "{path}"
            );
        }
        // Documents that do not show the name are untouched.
        assert_eq!(
            first.get("/api/v2/status.json").unwrap().etag,
            third.get("/api/v2/status.json").unwrap().etag
        );
        let etag = &first.get("/status").unwrap().etag;
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
            "{etag}"
        );
    }

    #[test]
    fn json_documents_do_not_change_with_the_read_time_alone() {
        let view = fixture::view(3, 10, 2, 2);
        let mut later = view.clone();
        later.data_as_of += jiff::SignedDuration::from_secs(30);
        let (first, second) = (render(&view), render(&later));
        assert_eq!(
            first.get("/api/v2/summary.json").unwrap().etag,
            second.get("/api/v2/summary.json").unwrap().etag
        );
        assert_ne!(
            first.get("/status").unwrap().etag,
            second.get("/status").unwrap().etag
        );
    }

    #[test]
    fn reusing_keeps_compressed_bodies_of_unchanged_assets() {
        let view = fixture::view(3, 10, 2, 2);
        let first = render(&view);
        let mut later = view.clone();
        later.data_as_of += jiff::SignedDuration::from_secs(30);
        let second = render_reusing(&later, Some(&first));
        let summary = "/api/v2/summary.json";
        assert!(std::sync::Arc::ptr_eq(
            &first.get(summary).unwrap().gzip,
            &second.get(summary).unwrap().gzip
        ));
        let fresh = render(&later);
        for path in second.paths() {
            assert_eq!(
                second.get(path).unwrap().identity,
                fresh.get(path).unwrap().identity
            );
            assert_eq!(
                second.get(path).unwrap().etag,
                fresh.get(path).unwrap().etag
            );
        }
    }
}
