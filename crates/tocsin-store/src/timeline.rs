//! Timeline data as stored: a JSON object per entry in `timeline_entries.data`, its shape
//! given by the entry's `kind` column. The field names are those every version has written,
//! so old rows read back; fields a newer version adds are ignored, and fields an older one did
//! not write are optional.

use serde::{Deserialize, Serialize};
use tocsin_core::{DedupKey, Priority, Severity, TimelineData, TimelineKind, Timestamp};

use crate::decode::parse_stored;
use crate::StoreError;

#[derive(Serialize, Deserialize)]
struct Opened {
    dedup_key: String,
    severity: String,
    summary: String,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impact_started_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Folded {
    dedup_key: String,
    events: i64,
    count: i64,
    last_summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Key {
    dedup_key: String,
}

#[derive(Serialize, Deserialize)]
struct Acknowledged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerts_acknowledged: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Resolved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerts_resolved: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Empty {}

#[derive(Serialize, Deserialize)]
struct PriorityChange {
    from: String,
    to: String,
}

#[derive(Serialize, Deserialize)]
struct Note {
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Reassigned {
    to: String,
}

#[derive(Serialize, Deserialize)]
struct AckTimeout {
    timeout_minutes: u64,
}

#[derive(Serialize, Deserialize)]
struct Notified {
    pass: u32,
    level: u32,
    recipients: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Skipped {
    pass: u32,
    level: u32,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct Attempted {
    recipient: String,
    method: String,
    contact: String,
    result: String,
    attempt: i64,
    latency_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Rerouted {
    recipient: String,
    failed_contact: String,
    failed_method: String,
    next_contact: Option<String>,
    next_method: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StatusUpdated {
    status: String,
    message: String,
    affected: Vec<AffectedComponent>,
    published: bool,
}

#[derive(Serialize, Deserialize)]
struct AffectedComponent {
    component: String,
    status: String,
}

/// The `data` column of an entry.
pub(crate) fn encode(data: &TimelineData) -> String {
    let key = |key: &DedupKey| key.as_str().to_owned();
    let encoded = match data {
        TimelineData::IncidentTriggered {
            dedup_key,
            severity,
            summary,
            source,
            impact_started_at,
        } => serde_json::to_string(&Opened {
            dedup_key: key(dedup_key),
            severity: severity.as_str().to_owned(),
            summary: summary.clone(),
            source: source.clone(),
            impact_started_at: Some(impact_started_at.to_string()),
        }),
        TimelineData::AlertOpened {
            dedup_key,
            severity,
            summary,
            source,
        } => serde_json::to_string(&Opened {
            dedup_key: key(dedup_key),
            severity: severity.as_str().to_owned(),
            summary: summary.clone(),
            source: source.clone(),
            impact_started_at: None,
        }),
        TimelineData::AlertFolded {
            dedup_key,
            events,
            count,
            last_summary,
            last_seen,
        } => serde_json::to_string(&Folded {
            dedup_key: key(dedup_key),
            events: *events,
            count: *count,
            last_summary: last_summary.clone(),
            last_seen: last_seen.map(|at| at.to_string()),
        }),
        TimelineData::AlertAcknowledged { dedup_key }
        | TimelineData::AlertResolved { dedup_key } => serde_json::to_string(&Key {
            dedup_key: key(dedup_key),
        }),
        TimelineData::IncidentAcknowledged {
            alerts_acknowledged,
        } => serde_json::to_string(&Acknowledged {
            alerts_acknowledged: *alerts_acknowledged,
        }),
        TimelineData::IncidentResolved { alerts_resolved } => serde_json::to_string(&Resolved {
            alerts_resolved: *alerts_resolved,
        }),
        TimelineData::AllAlertsResolved => serde_json::to_string(&Empty {}),
        TimelineData::PriorityChanged { from, to } => serde_json::to_string(&PriorityChange {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
        }),
        TimelineData::NoteAdded { text } => serde_json::to_string(&Note { text: text.clone() }),
        TimelineData::EscalationNotified {
            pass,
            level,
            recipients,
        } => serde_json::to_string(&Notified {
            pass: *pass,
            level: *level,
            recipients: recipients.clone(),
        }),
        TimelineData::EscalationSkipped {
            pass,
            level,
            reason,
        } => serde_json::to_string(&Skipped {
            pass: *pass,
            level: *level,
            reason: reason.clone(),
        }),
        TimelineData::IncidentEscalated => serde_json::to_string(&Empty {}),
        TimelineData::IncidentReassigned { to } => {
            serde_json::to_string(&Reassigned { to: to.clone() })
        }
        TimelineData::IncidentAckTimeout { timeout_minutes } => {
            serde_json::to_string(&AckTimeout {
                timeout_minutes: *timeout_minutes,
            })
        }
        TimelineData::NotificationAttempted {
            recipient,
            method,
            contact,
            result,
            attempt,
            latency_ms,
            error,
        } => serde_json::to_string(&Attempted {
            recipient: recipient.clone(),
            method: method.clone(),
            contact: contact.clone(),
            result: result.clone(),
            attempt: *attempt,
            latency_ms: *latency_ms,
            error: error.clone(),
        }),
        TimelineData::NotificationRerouted {
            recipient,
            failed_contact,
            failed_method,
            next_contact,
            next_method,
        } => serde_json::to_string(&Rerouted {
            recipient: recipient.clone(),
            failed_contact: failed_contact.clone(),
            failed_method: failed_method.clone(),
            next_contact: next_contact.clone(),
            next_method: next_method.clone(),
        }),
        TimelineData::StatusUpdated {
            status,
            message,
            affected,
            published,
        } => serde_json::to_string(&StatusUpdated {
            status: status.clone(),
            message: message.clone(),
            affected: affected
                .iter()
                .map(|(component, status)| AffectedComponent {
                    component: component.clone(),
                    status: status.clone(),
                })
                .collect(),
            published: *published,
        }),
    };
    // Plain structs of strings and integers always serialize.
    encoded.unwrap_or_else(|_| "{}".to_owned())
}

/// Reads the `data` column of an entry of `kind` back.
pub(crate) fn decode(kind: TimelineKind, text: &str) -> Result<TimelineData, StoreError> {
    fn parse<'a, T: Deserialize<'a>>(kind: TimelineKind, text: &'a str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|error| {
            StoreError::Corrupt(format!("timeline data of a {kind} entry: {error}"))
        })
    }
    fn key(value: &str) -> Result<DedupKey, StoreError> {
        crate::decode::dedup_key(value)
    }
    fn time(column: &str, value: &str) -> Result<Timestamp, StoreError> {
        parse_stored(column, value)
    }
    Ok(match kind {
        TimelineKind::IncidentTriggered | TimelineKind::AlertOpened => {
            let opened: Opened = parse(kind, text)?;
            let dedup_key = key(&opened.dedup_key)?;
            let severity: Severity = parse_stored("severity", &opened.severity)?;
            match (kind, opened.impact_started_at) {
                (TimelineKind::IncidentTriggered, Some(impact_started_at)) => {
                    TimelineData::IncidentTriggered {
                        dedup_key,
                        severity,
                        summary: opened.summary,
                        source: opened.source,
                        impact_started_at: time("impact_started_at", &impact_started_at)?,
                    }
                }
                (TimelineKind::IncidentTriggered, None) => {
                    return Err(StoreError::Corrupt(format!(
                        "timeline data of a {kind} entry lacks impact_started_at"
                    )))
                }
                _ => TimelineData::AlertOpened {
                    dedup_key,
                    severity,
                    summary: opened.summary,
                    source: opened.source,
                },
            }
        }
        TimelineKind::AlertFolded => {
            let folded: Folded = parse(kind, text)?;
            TimelineData::AlertFolded {
                dedup_key: key(&folded.dedup_key)?,
                events: folded.events,
                count: folded.count,
                last_summary: folded.last_summary,
                last_seen: folded
                    .last_seen
                    .map(|at| time("last_seen", &at))
                    .transpose()?,
            }
        }
        TimelineKind::AlertAcknowledged => TimelineData::AlertAcknowledged {
            dedup_key: key(&parse::<Key>(kind, text)?.dedup_key)?,
        },
        TimelineKind::AlertResolved => TimelineData::AlertResolved {
            dedup_key: key(&parse::<Key>(kind, text)?.dedup_key)?,
        },
        TimelineKind::IncidentAcknowledged => TimelineData::IncidentAcknowledged {
            alerts_acknowledged: parse::<Acknowledged>(kind, text)?.alerts_acknowledged,
        },
        TimelineKind::IncidentResolved => TimelineData::IncidentResolved {
            alerts_resolved: parse::<Resolved>(kind, text)?.alerts_resolved,
        },
        TimelineKind::AllAlertsResolved => {
            parse::<Empty>(kind, text)?;
            TimelineData::AllAlertsResolved
        }
        TimelineKind::PriorityChanged => {
            let change: PriorityChange = parse(kind, text)?;
            TimelineData::PriorityChanged {
                from: parse_stored::<Priority>("from", &change.from)?,
                to: parse_stored::<Priority>("to", &change.to)?,
            }
        }
        TimelineKind::NoteAdded => TimelineData::NoteAdded {
            text: parse::<Note>(kind, text)?.text,
        },
        TimelineKind::EscalationNotified => {
            let notified: Notified = parse(kind, text)?;
            TimelineData::EscalationNotified {
                pass: notified.pass,
                level: notified.level,
                recipients: notified.recipients,
            }
        }
        TimelineKind::EscalationSkipped => {
            let skipped: Skipped = parse(kind, text)?;
            TimelineData::EscalationSkipped {
                pass: skipped.pass,
                level: skipped.level,
                reason: skipped.reason,
            }
        }
        TimelineKind::IncidentEscalated => {
            parse::<Empty>(kind, text)?;
            TimelineData::IncidentEscalated
        }
        TimelineKind::IncidentReassigned => TimelineData::IncidentReassigned {
            to: parse::<Reassigned>(kind, text)?.to,
        },
        TimelineKind::IncidentAckTimeout => TimelineData::IncidentAckTimeout {
            timeout_minutes: parse::<AckTimeout>(kind, text)?.timeout_minutes,
        },
        TimelineKind::NotificationAttempted => {
            let attempted: Attempted = parse(kind, text)?;
            TimelineData::NotificationAttempted {
                recipient: attempted.recipient,
                method: attempted.method,
                contact: attempted.contact,
                result: attempted.result,
                attempt: attempted.attempt,
                latency_ms: attempted.latency_ms,
                error: attempted.error,
            }
        }
        TimelineKind::NotificationRerouted => {
            let rerouted: Rerouted = parse(kind, text)?;
            TimelineData::NotificationRerouted {
                recipient: rerouted.recipient,
                failed_contact: rerouted.failed_contact,
                failed_method: rerouted.failed_method,
                next_contact: rerouted.next_contact,
                next_method: rerouted.next_method,
            }
        }
        TimelineKind::StatusUpdated => {
            let update: StatusUpdated = parse(kind, text)?;
            TimelineData::StatusUpdated {
                status: update.status,
                message: update.message,
                affected: update
                    .affected
                    .into_iter()
                    .map(|affected| (affected.component, affected.status))
                    .collect(),
                published: update.published,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
    }

    fn key() -> DedupKey {
        DedupKey::parse("disk").expect("key")
    }

    /// The JSON each kind was written as before the data was typed, and must still read as.
    #[test]
    fn keeps_the_stored_format_of_every_kind() {
        let cases = [
            (
                TimelineData::IncidentTriggered {
                    dedup_key: key(),
                    severity: Severity::Error,
                    summary: "disk full".to_owned(),
                    source: "db-1".to_owned(),
                    impact_started_at: at(0),
                },
                r#"{"dedup_key":"disk","severity":"error","summary":"disk full","source":"db-1","impact_started_at":"2027-01-15T08:00:00Z"}"#,
            ),
            (
                TimelineData::AlertOpened {
                    dedup_key: key(),
                    severity: Severity::Warning,
                    summary: "disk full".to_owned(),
                    source: "db-1".to_owned(),
                },
                r#"{"dedup_key":"disk","severity":"warning","summary":"disk full","source":"db-1"}"#,
            ),
            (
                TimelineData::AlertFolded {
                    dedup_key: key(),
                    events: 3,
                    count: 4,
                    last_summary: "disk full".to_owned(),
                    last_seen: Some(at(5)),
                },
                r#"{"dedup_key":"disk","events":3,"count":4,"last_summary":"disk full","last_seen":"2027-01-15T08:00:05Z"}"#,
            ),
            (
                TimelineData::AlertAcknowledged { dedup_key: key() },
                r#"{"dedup_key":"disk"}"#,
            ),
            (
                TimelineData::AlertResolved { dedup_key: key() },
                r#"{"dedup_key":"disk"}"#,
            ),
            (
                TimelineData::IncidentAcknowledged {
                    alerts_acknowledged: None,
                },
                "{}",
            ),
            (
                TimelineData::IncidentAcknowledged {
                    alerts_acknowledged: Some(2),
                },
                r#"{"alerts_acknowledged":2}"#,
            ),
            (
                TimelineData::IncidentResolved {
                    alerts_resolved: Some(0),
                },
                r#"{"alerts_resolved":0}"#,
            ),
            (TimelineData::AllAlertsResolved, "{}"),
            (
                TimelineData::PriorityChanged {
                    from: Priority::P2,
                    to: Priority::P1,
                },
                r#"{"from":"P2","to":"P1"}"#,
            ),
            (
                TimelineData::NoteAdded {
                    text: "rolled back ✅ \"v41\"".to_owned(),
                },
                r#"{"text":"rolled back ✅ \"v41\""}"#,
            ),
            (
                TimelineData::StatusUpdated {
                    status: "identified".to_owned(),
                    message: "A bad deploy; rolling back".to_owned(),
                    affected: vec![("checkout".to_owned(), "partial_outage".to_owned())],
                    published: true,
                },
                r#"{"status":"identified","message":"A bad deploy; rolling back","affected":[{"component":"checkout","status":"partial_outage"}],"published":true}"#,
            ),
        ];
        for (data, stored) in cases {
            assert_eq!(encode(&data), stored);
            assert_eq!(decode(data.kind(), stored).expect("decodes"), data);
        }
    }

    #[test]
    fn reads_old_rows_and_reports_broken_ones() {
        // Fold entries written before `last_seen` was recorded, and unknown extra fields.
        let data = decode(
            TimelineKind::AlertFolded,
            r#"{"dedup_key":"disk","events":1,"count":2,"last_summary":"x","later":true}"#,
        )
        .expect("decodes");
        assert_eq!(data.folded_events(), Some(1));
        let error = decode(TimelineKind::PriorityChanged, r#"{"from":"P9","to":"P1"}"#)
            .expect_err("P9 is no priority");
        assert!(matches!(error, StoreError::Corrupt(message) if message.contains("P9")));
        let error = decode(TimelineKind::NoteAdded, "[]").expect_err("not an object");
        assert!(
            matches!(&error, StoreError::Corrupt(message) if message.starts_with("timeline data of a note.added entry")),
            "{error}"
        );
    }
}
