//! Parsers and checks for the small formats inside string values. Each returns a message that
//! completes "invalid value for `field`: ..." and never repeats a secret value.

use jiff::civil;

use crate::model::{Restriction, StatusPattern};

pub(crate) const RESTRICTION_HELP: &str = "write days then a time range in the schedule's time \
     zone: \"mon-fri 09:00-17:00\", \"sat,sun\" (whole days), \"18:00-02:00\" (every day; an end \
     at or before the start is on the next day)";

pub(crate) const KEY_HELP: &str =
    "generate one with `tocsin config gen-key` or `openssl rand -hex 16`";

const WEEKDAYS: [(&str, civil::Weekday); 7] = [
    ("mon", civil::Weekday::Monday),
    ("tue", civil::Weekday::Tuesday),
    ("wed", civil::Weekday::Wednesday),
    ("thu", civil::Weekday::Thursday),
    ("fri", civil::Weekday::Friday),
    ("sat", civil::Weekday::Saturday),
    ("sun", civil::Weekday::Sunday),
];

/// `mon-fri 18:00-02:00`, `sat,sun`, `09:00-17:00`.
pub(crate) fn parse_restriction(text: &str) -> Result<Restriction, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (days, times) = match parts.as_slice() {
        [one] if one.starts_with(|c: char| c.is_ascii_digit()) => (None, Some(*one)),
        [one] => (Some(*one), None),
        [days, times] => (Some(*days), Some(*times)),
        [] => return Err("the restriction is empty".to_owned()),
        _ => return Err("expected days, a time range, or days then a time range".to_owned()),
    };
    let days = match days {
        Some(days) => parse_days(days)?,
        None => WEEKDAYS.iter().map(|(_, day)| *day).collect(),
    };
    let (start, end) = match times {
        Some(times) => {
            let (start, end) = times
                .split_once('-')
                .ok_or_else(|| format!("`{times}` is not a time range like 09:00-17:00"))?;
            (parse_clock(start, false)?, parse_clock(end, true)?)
        }
        None => (civil::Time::midnight(), civil::Time::midnight()),
    };
    Ok(Restriction { days, start, end })
}

fn parse_days(text: &str) -> Result<Vec<civil::Weekday>, String> {
    let mut selected = [false; 7];
    for item in text.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (weekday_index(first)?, weekday_index(last)?),
            None => {
                let day = weekday_index(item)?;
                (day, day)
            }
        };
        // A range may wrap around the week: fri-mon is Friday to Monday.
        let mut day = first;
        loop {
            selected[day] = true;
            if day == last {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(WEEKDAYS
        .iter()
        .zip(selected)
        .filter(|(_, selected)| *selected)
        .map(|((_, day), _)| *day)
        .collect())
}

fn weekday_index(text: &str) -> Result<usize, String> {
    let lower = text.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|(short, day)| lower == *short || lower == weekday_name(*day))
        .ok_or_else(|| format!("`{text}` is not a day; use mon, tue, wed, thu, fri, sat, sun"))
}

fn weekday_name(day: civil::Weekday) -> &'static str {
    match day {
        civil::Weekday::Monday => "monday",
        civil::Weekday::Tuesday => "tuesday",
        civil::Weekday::Wednesday => "wednesday",
        civil::Weekday::Thursday => "thursday",
        civil::Weekday::Friday => "friday",
        civil::Weekday::Saturday => "saturday",
        civil::Weekday::Sunday => "sunday",
    }
}

/// `HH:MM`; `24:00` is accepted as an end and means midnight.
fn parse_clock(text: &str, is_end: bool) -> Result<civil::Time, String> {
    let invalid = || format!("`{text}` is not a time like 09:00");
    let (hour, minute) = text.split_once(':').ok_or_else(invalid)?;
    if hour.is_empty() || hour.len() > 2 || minute.len() != 2 {
        return Err(invalid());
    }
    let hour: i8 = hour.parse().map_err(|_| invalid())?;
    let minute: i8 = minute.parse().map_err(|_| invalid())?;
    if is_end && hour == 24 && minute == 0 {
        return Ok(civil::Time::midnight());
    }
    civil::Time::new(hour, minute, 0, 0).map_err(|_| invalid())
}

/// `"200"` or `"2xx"`.
pub(crate) fn parse_status_pattern(text: &str) -> Result<StatusPattern, String> {
    let invalid = || format!("`{text}` is not a status code (\"200\") or class (\"2xx\")");
    let lower = text.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        return match class.parse::<u8>() {
            Ok(digit) if (1..=5).contains(&digit) && class.len() == 1 => {
                Ok(StatusPattern::Class(digit))
            }
            _ => Err(invalid()),
        };
    }
    match text.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) && text.len() == 3 => {
            Ok(StatusPattern::Exact(code))
        }
        _ => Err(invalid()),
    }
}

/// `http://` or `https://` followed by a host.
pub(crate) fn check_http_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| "the URL must start with http:// or https://".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host".to_owned());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains spaces or control characters".to_owned());
    }
    Ok(())
}

/// `host:port` or `[ipv6]:port`.
pub(crate) fn check_host_port(text: &str) -> Result<(), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` has no port; write host:port, e.g. db.internal:5432"))?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 => {}
        _ => return Err(format!("`{port}` is not a port number (1-65535)")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("`{inner}` is not an IPv6 address"));
    }
    if host.contains(':') {
        return Err("put an IPv6 address in brackets: [2001:db8::1]:443".to_owned());
    }
    check_hostname(host)
}

/// A DNS name or an IPv4 address; a trailing dot is allowed.
pub(crate) fn check_hostname(text: &str) -> Result<(), String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err("the host name is empty".to_owned());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".to_owned());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!("`{text}` is not a valid host name"));
        }
    }
    Ok(())
}

/// Loosely: something@something, without spaces. Also accepts `Name <address>`.
pub(crate) fn check_email(text: &str, allow_display_name: bool) -> Result<(), String> {
    let address = match (allow_display_name, text.rsplit_once('<')) {
        (true, Some((_, rest))) => rest
            .strip_suffix('>')
            .ok_or_else(|| format!("`{text}` has `<` without a closing `>`"))?,
        _ => text,
    };
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(format!("`{text}` is not an email address")),
    }
}

/// Exactly 32 ASCII letters and digits, like a PagerDuty `routing_key`.
pub(crate) fn check_integration_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            "an integration key must be exactly 32 ASCII letters and digits (the format of a \
             PagerDuty routing_key); this one contains other characters"
                .to_owned(),
        );
    }
    if length != 32 {
        return Err(format!(
            "an integration key must be exactly 32 ASCII letters and digits (the format of a \
             PagerDuty routing_key); this one has {length} characters"
        ));
    }
    Ok(())
}

/// 16 to 64 characters of `A-Z a-z 0-9 - _`, so a UUID or a generated key fits in a URL.
pub(crate) fn check_ping_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    let allowed = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !allowed {
        return Err(
            "a ping key must be 16 to 64 letters, digits, `-` and `_` (a UUID works); this one \
             contains other characters"
                .to_owned(),
        );
    }
    if !(16..=64).contains(&length) {
        return Err(format!(
            "a ping key must be 16 to 64 letters, digits, `-` and `_` (a UUID works); this one \
             has {length} characters"
        ));
    }
    Ok(())
}

/// A civil date and time: `2026-11-02T09:00`, `2026-11-02T09:00:00` or `2026-11-02 09:00`.
pub(crate) fn parse_civil_datetime(text: &str) -> Result<civil::DateTime, String> {
    let time_part = text.get(10..).unwrap_or_default();
    if time_part.contains(['Z', 'z', '+']) || time_part.get(1..).unwrap_or_default().contains('-') {
        return Err(format!(
            "`{text}` has a UTC offset; write the local time in the schedule's time zone, e.g. \
             2026-11-02T09:00"
        ));
    }
    if text.len() <= 10 {
        return Err(format!(
            "`{text}` has no time of day; write e.g. {text}T09:00"
        ));
    }
    text.parse::<civil::DateTime>()
        .map_err(|_| format!("`{text}` is not a date and time like 2026-11-02T09:00"))
}

/// An HTTP header name (an RFC 9110 token).
pub(crate) fn check_header_name(text: &str) -> Result<(), String> {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    {
        Ok(())
    } else {
        Err(format!("`{text}` is not an HTTP header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civil::Weekday::*;

    #[test]
    fn restrictions() {
        let r = parse_restriction("mon-fri 18:00-02:00").unwrap();
        assert_eq!(r.days, [Monday, Tuesday, Wednesday, Thursday, Friday]);
        assert_eq!(r.start, civil::time(18, 0, 0, 0));
        assert_eq!(r.end, civil::time(2, 0, 0, 0));
        assert_eq!(r.length(), std::time::Duration::from_secs(8 * 3600));

        let r = parse_restriction("sat,sun").unwrap();
        assert_eq!(r.days, [Saturday, Sunday]);
        assert_eq!(r.length(), std::time::Duration::from_secs(24 * 3600));

        let r = parse_restriction("fri-mon 09:00-24:00").unwrap();
        assert_eq!(r.days, [Monday, Friday, Saturday, Sunday]);
        assert_eq!(r.length(), std::time::Duration::from_secs(15 * 3600));

        let r = parse_restriction("09:30-17:00").unwrap();
        assert_eq!(r.days.len(), 7);
        assert_eq!(
            parse_restriction("Monday 09:00-10:00").unwrap().days,
            [Monday]
        );

        for bad in [
            "",
            "mon-fry 09:00-17:00",
            "mon 9-17",
            "mon 25:00-26:00",
            "mon 09:00",
            "a b c",
            "monkey",
        ] {
            assert!(parse_restriction(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_patterns() {
        assert_eq!(parse_status_pattern("2xx"), Ok(StatusPattern::Class(2)));
        assert_eq!(parse_status_pattern("5XX"), Ok(StatusPattern::Class(5)));
        assert_eq!(parse_status_pattern("204"), Ok(StatusPattern::Exact(204)));
        for bad in ["6xx", "0xx", "99", "600", "20x", "+200", "02xx"] {
            assert!(parse_status_pattern(bad).is_err(), "{bad}");
        }
        assert!(StatusPattern::Class(2).matches(299));
        assert!(!StatusPattern::Class(2).matches(300));
    }

    #[test]
    fn urls_and_addresses() {
        assert!(check_http_url("https://checkout.acme.example/healthz").is_ok());
        assert!(check_http_url("http://127.0.0.1:8080").is_ok());
        assert!(check_http_url("ftp://x").is_err());
        assert!(check_http_url("https:///path").is_err());
        assert!(check_http_url("https://a b").is_err());

        assert!(check_host_port("db.internal:5432").is_ok());
        assert!(check_host_port("[::1]:443").is_ok());
        assert!(check_host_port("db.internal").is_err());
        assert!(check_host_port("db.internal:0").is_err());
        assert!(check_host_port("::1:443").is_err());
        assert!(check_host_port("bad host:80").is_err());
    }

    #[test]
    fn emails() {
        assert!(check_email("ana@acme.example", false).is_ok());
        assert!(check_email("Tocsin <tocsin@acme.example>", true).is_ok());
        assert!(check_email("Tocsin <tocsin@acme.example>", false).is_err());
        assert!(check_email("ana", false).is_err());
        assert!(check_email("Tocsin <tocsin@acme.example", true).is_err());
    }

    #[test]
    fn keys() {
        assert!(check_integration_key("0123456789abcdefABCDEF0123456789").is_ok());
        assert!(check_integration_key("short")
            .unwrap_err()
            .contains("has 5 characters"));
        assert!(check_integration_key("0123456789abcdef-BCDEF0123456789")
            .unwrap_err()
            .contains("other characters"));
        assert!(check_ping_key("6f1c3a52-8d1e-4b7a-9f0e-2c4d5e6f7a8b").is_ok());
        assert!(check_ping_key("short").is_err());
        assert!(check_ping_key("has spaces in it, sadly").is_err());
    }

    #[test]
    fn civil_datetimes() {
        assert_eq!(
            parse_civil_datetime("2026-11-02T09:00"),
            Ok(civil::date(2026, 11, 2).at(9, 0, 0, 0))
        );
        assert!(parse_civil_datetime("2026-11-02T09:00:30").is_ok());
        assert!(parse_civil_datetime("2026-11-02T09:00Z")
            .unwrap_err()
            .contains("offset"));
        assert!(parse_civil_datetime("2026-11-02T09:00-08:00")
            .unwrap_err()
            .contains("offset"));
        assert!(parse_civil_datetime("2026-11-02")
            .unwrap_err()
            .contains("no time"));
        assert!(parse_civil_datetime("2026-13-02T09:00").is_err());
        assert!(parse_civil_datetime("next monday").is_err());
    }
}
