//! How the CLI shows the API's answers to people: times, durations and timeline entries in
//! words. `--json` prints the answers themselves, for scripts.

use tocsin_web::api::{Incident, TimelineData, TimelineItem};

/// A wire timestamp (RFC 3339) as `2026-11-02 09:00:05` in UTC; anything else as it came.
pub(crate) fn time(wire: &str) -> String {
    match wire.parse::<jiff::Timestamp>() {
        Ok(at) => at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => wire.to_owned(),
    }
}

/// A duration in seconds for people: `45s`, `2m 13s`, `1h 05m`, `3d 4h`.
pub(crate) fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    if seconds < 1.0 {
        return "under 1s".to_owned();
    }
    // Whole seconds: the fraction does not matter to a person.
    let total = seconds as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs:02}s")
    } else {
        format!("{secs}s")
    }
}

fn plural(count: i64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

/// What a timeline entry says happened, in one line.
pub(crate) fn what(data: &TimelineData) -> String {
    match data {
        TimelineData::IncidentTriggered {
            dedup_key,
            severity,
            summary,
            source,
            ..
        } => format!("opened by alert `{dedup_key}` ({severity}, from {source}): {summary}"),
        TimelineData::AlertOpened {
            dedup_key,
            severity,
            summary,
            source,
        } => format!("alert `{dedup_key}` joined ({severity}, from {source}): {summary}"),
        TimelineData::AlertFolded {
            dedup_key,
            events,
            count,
            last_summary,
            ..
        } => format!(
            "{} folded into alert `{dedup_key}` ({} in all); latest: {last_summary}",
            plural(*events, "more event", "more events"),
            plural(*count, "event", "events"),
        ),
        TimelineData::AlertAcknowledged { dedup_key } => {
            format!("alert `{dedup_key}` acknowledged")
        }
        TimelineData::AlertResolved { dedup_key } => format!("alert `{dedup_key}` resolved"),
        TimelineData::IncidentAcknowledged {
            alerts_acknowledged,
        } => match alerts_acknowledged {
            Some(count) => format!(
                "incident acknowledged ({} acknowledged with it)",
                plural(*count, "alert", "alerts")
            ),
            None => "incident acknowledged".to_owned(),
        },
        TimelineData::IncidentResolved { alerts_resolved } => match alerts_resolved {
            Some(count) => format!(
                "incident resolved ({} resolved with it)",
                plural(*count, "alert", "alerts")
            ),
            None => "incident resolved".to_owned(),
        },
        TimelineData::AllAlertsResolved {} => {
            "every alert resolved; the service resolves incidents by hand".to_owned()
        }
        TimelineData::PriorityChanged { from, to } => {
            format!("priority changed from {from} to {to}")
        }
        TimelineData::NoteAdded { text } => format!("note: {text}"),
        TimelineData::StatusUpdated {
            status,
            message,
            affected,
            published,
        } => {
            let what = if *published {
                "published on the status page"
            } else {
                "status page update"
            };
            let components = affected
                .iter()
                .map(|affected| format!("{} {}", affected.component, affected.status))
                .collect::<Vec<_>>()
                .join(", ");
            if components.is_empty() {
                format!("{what} ({status}): {message}")
            } else {
                format!("{what} ({status}; {components}): {message}")
            }
        }
        TimelineData::EscalationNotified {
            pass,
            level,
            recipients,
        } => format!(
            "escalation level {level} (pass {pass}) paged {}",
            if recipients.is_empty() {
                "nobody".to_owned()
            } else {
                recipients.join(", ")
            }
        ),
        TimelineData::EscalationSkipped {
            pass,
            level,
            reason,
        } => format!("escalation level {level} (pass {pass}) skipped: {reason}"),
        TimelineData::IncidentEscalated {} => "escalated to the next level by hand".to_owned(),
        TimelineData::IncidentReassigned { to } => format!("reassigned to {to}, paged at once"),
        TimelineData::IncidentAckTimeout { timeout_minutes } => format!(
            "acknowledged but unresolved for {timeout_minutes} min: triggered again, escalation restarts at level 1"
        ),
        TimelineData::NotificationRerouted {
            recipient,
            failed_contact,
            failed_method,
            next_contact,
            next_method,
        } => match (next_contact, next_method) {
            (Some(contact), Some(method)) => format!(
                "{recipient}: failed via {failed_contact} ({failed_method}); trying {contact} ({method})"
            ),
            _ => format!(
                "{recipient}: failed via {failed_contact} ({failed_method}); no other contact method left to try"
            ),
        },
        TimelineData::NotificationAttempted {
            recipient,
            method,
            contact,
            result,
            attempt,
            latency_ms,
            error,
        } => format!(
            "{method} to {recipient} ({contact}), attempt {attempt}: {result} in {latency_ms} ms{}",
            error
                .as_deref()
                .map(|error| format!(" ({error})"))
                .unwrap_or_default()
        ),
    }
}

/// One timeline row: when, who, what.
pub(crate) fn timeline_row(entry: &TimelineItem, actor_width: usize) -> String {
    format!(
        "  {}  {:<actor_width$}  {}",
        time(&entry.at),
        entry.actor,
        what(&entry.what)
    )
}

/// A time, and how long after `since` it came, when both are known.
fn time_after(at: Option<&str>, seconds: Option<f64>) -> String {
    match (at, seconds) {
        (Some(at), Some(seconds)) => format!("{} ({} later)", time(at), duration(seconds)),
        (Some(at), None) => time(at),
        (None, _) => "-".to_owned(),
    }
}

/// The incident's details; `alerts` is how many alerts it has in all.
pub(crate) fn incident_details(incident: &Incident, alerts: usize) -> String {
    let ack = time_after(
        incident.acknowledged_at.as_deref(),
        incident.time_to_acknowledge_seconds,
    );
    let time_to =
        |seconds: Option<f64>, not_yet: &str| seconds.map_or_else(|| not_yet.to_owned(), duration);
    format!(
        "Incident #{number}: {title}\n\
         \x20 state              {state}\n\
         \x20 priority           {priority}\n\
         \x20 severity           {severity}\n\
         \x20 service            {service}\n\
         \x20 alerts             {alerts} ({open} open)\n\
         \x20 dedup key          {dedup_key}\n\
         \x20 impact started     {impact} UTC\n\
         \x20 created            {created} UTC\n\
         \x20 acknowledged       {ack}\n\
         \x20 resolved           {resolved}\n\
         \x20 time to ack        {tta}\n\
         \x20 time to resolve    {ttr}",
        number = incident.number,
        title = incident.title,
        state = incident.state,
        priority = incident.priority,
        severity = incident.severity.as_str(),
        service = incident.service,
        open = incident.open_alerts,
        dedup_key = incident.dedup_key,
        impact = time(&incident.impact_started_at),
        created = time(&incident.created_at),
        resolved = incident
            .resolved_at
            .as_deref()
            .map_or_else(|| "-".to_owned(), time),
        tta = time_to(incident.time_to_acknowledge_seconds, "not acknowledged yet"),
        ttr = time_to(incident.time_to_resolve_seconds, "not resolved yet"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        assert_eq!(time("2026-11-02T09:00:05.123456Z"), "2026-11-02 09:00:05");
        assert_eq!(time("2026-11-02T10:00:05+01:00"), "2026-11-02 09:00:05");
        assert_eq!(time("yesterday"), "yesterday");
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(duration(0.2), "under 1s");
        assert_eq!(duration(45.9), "45s");
        assert_eq!(duration(133.0), "2m 13s");
        assert_eq!(duration(3_900.0), "1h 05m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3_600.0 + 59.0), "3d 4h");
        assert_eq!(duration(-1.0), "-");
        assert_eq!(duration(f64::NAN), "-");
    }

    #[test]
    fn timeline_entries_read_as_sentences() {
        assert_eq!(
            what(&TimelineData::AlertFolded {
                dedup_key: "disk".to_owned(),
                events: 1,
                count: 2,
                last_summary: "Disk 91%".to_owned(),
                last_seen: None,
            }),
            "1 more event folded into alert `disk` (2 events in all); latest: Disk 91%"
        );
        assert_eq!(
            what(&TimelineData::IncidentResolved {
                alerts_resolved: Some(3)
            }),
            "incident resolved (3 alerts resolved with it)"
        );
        assert_eq!(
            what(&TimelineData::PriorityChanged {
                from: "P3".to_owned(),
                to: "P1".to_owned()
            }),
            "priority changed from P3 to P1"
        );
        assert_eq!(
            what(&TimelineData::NoteAdded {
                text: "rolled back".to_owned()
            }),
            "note: rolled back"
        );
        let row = timeline_row(
            &TimelineItem {
                id: 1,
                incident: 1,
                at: "2026-11-02T09:00:05Z".to_owned(),
                actor: "token:ana".to_owned(),
                what: TimelineData::IncidentAcknowledged {
                    alerts_acknowledged: Some(1),
                },
            },
            12,
        );
        assert_eq!(
            row,
            "  2026-11-02 09:00:05  token:ana     incident acknowledged (1 alert acknowledged with it)"
        );
        assert!(!row.contains('{'), "no JSON in {row}");
    }
}
