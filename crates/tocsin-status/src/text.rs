//! Small pieces of text shared by the page, the feed and the JSON: times, percentages and the
//! paths of pages.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use tocsin_core::Timestamp;

/// The page's time zone; an unknown name falls back to UTC rather than failing the whole page,
/// since config validation is where a wrong name is reported.
pub(crate) fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// RFC 3339 with an offset (`Z`), as both Atom and Statuspage's JSON want.
pub(crate) fn rfc3339(timestamp: Timestamp) -> String {
    timestamp.to_string()
}

/// A time as readers of the page see it, e.g. "5 Dec 2026, 12:00 UTC".
pub(crate) fn human_time(timestamp: Timestamp, zone: &TimeZone) -> String {
    timestamp
        .to_zoned(zone.clone())
        .strftime("%-d %b %Y, %H:%M %Z")
        .to_string()
}

/// A day as readers of the page see it, e.g. "5 Dec 2026".
pub(crate) fn human_date(date: Date) -> String {
    date.strftime("%-d %b %Y").to_string()
}

/// The day a time falls on in the page's zone.
pub(crate) fn local_date(timestamp: Timestamp, zone: &TimeZone) -> Date {
    timestamp.to_zoned(zone.clone()).date()
}

/// A percentage with two decimals, rounded down so that a day with a single failed check never
/// reads "100.00%".
pub(crate) fn percent(value: f64) -> String {
    if value >= 100.0 {
        return "100%".to_owned();
    }
    let truncated = (value * 100.0).floor() / 100.0;
    format!("{truncated:.2}%")
}

/// The path of an incident's page. Ids are opaque, so they are percent-encoded rather than
/// trusted to be URL-safe.
pub(crate) fn incident_path(id: &str) -> String {
    let mut path = String::from("/status/incidents/");
    push_segment(&mut path, id);
    path
}

/// The path of a maintenance window's page.
pub(crate) fn maintenance_path(id: &str) -> String {
    let mut path = String::from("/status/maintenance/");
    push_segment(&mut path, id);
    path
}

/// The fragment that points at one update on its incident's page.
pub(crate) fn update_anchor(update_id: &str) -> String {
    let mut anchor = String::from("update-");
    push_segment(&mut anchor, update_id);
    anchor
}

/// Appends `text` percent-encoded, keeping only RFC 3986's unreserved characters as they are.
fn push_segment(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_never_rounds_up_to_a_perfect_day() {
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(99.5), "99.50%");
        assert_eq!(percent(0.0), "0.00%");
    }

    #[test]
    fn ids_are_percent_encoded_in_paths() {
        assert_eq!(
            incident_path("inc_01-a.b~"),
            "/status/incidents/inc_01-a.b~"
        );
        assert_eq!(incident_path("a/b c"), "/status/incidents/a%2Fb%20c");
        assert_eq!(maintenance_path("é"), "/status/maintenance/%C3%A9");
        assert_eq!(update_anchor("u#1"), "update-u%231");
    }

    #[test]
    fn unknown_zone_falls_back_to_utc() {
        let timestamp: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        assert_eq!(
            human_time(timestamp, &zone("Not/AZone")),
            "5 Dec 2026, 12:00 UTC"
        );
        assert_eq!(human_time(timestamp, &zone("UTC")), "5 Dec 2026, 12:00 UTC");
    }
}
