//! Commands that talk to a running server over HTTP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tocsin_web::api::{
    CommandResult, ErrorBody, Incident, IncidentPage, TimelineItem, TimelinePage,
};
use tocsin_web::{EventAccepted, IngestErrorBody};

use super::out;

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the Tocsin server.
    #[arg(long, env = "TOCSIN_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A PEM CA certificate to trust (for a server with a private certificate).
    #[arg(long, env = "TOCSIN_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EventArgs {
    /// The service's integration key.
    #[arg(long, env = "TOCSIN_ROUTING_KEY", hide_env_values = true)]
    routing_key: String,
    /// Events with the same key fold into one alert (generated for a trigger when absent).
    #[arg(long)]
    dedup_key: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventCommand {
    /// Open (or add to) an alert.
    Trigger {
        #[command(flatten)]
        event: EventArgs,
        /// What is wrong.
        #[arg(long)]
        summary: String,
        /// critical, error, warning or info.
        #[arg(long, default_value = "error")]
        severity: String,
        /// Where it happens (host name, job...).
        #[arg(long, default_value = "tocsin-cli")]
        source: String,
        /// Extra details, `key=value`, repeatable.
        #[arg(long = "detail", value_name = "KEY=VALUE")]
        details: Vec<String>,
    },
    /// Acknowledge the alert with this dedup key.
    #[command(alias = "acknowledge")]
    Ack {
        #[command(flatten)]
        event: EventArgs,
    },
    /// Resolve the alert with this dedup key.
    Resolve {
        #[command(flatten)]
        event: EventArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    #[command(flatten)]
    pub(super) server: ServerArgs,
    /// API token (create one with `tocsin token create`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub(super) token: String,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IncidentCommand {
    /// List incidents, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// triggered, acknowledged, resolved, open (comma-separated).
        #[arg(long)]
        state: Option<String>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an incident and its timeline.
    Show {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Acknowledge an incident.
    #[command(alias = "acknowledge")]
    Ack {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resolve an incident.
    Resolve {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a note to an incident's timeline.
    Note {
        number: i64,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an incident's priority (P1 to P5).
    Priority {
        number: i64,
        priority: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub(super) fn http_client(server: &ServerArgs) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("tocsin-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &server.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().context("cannot build the HTTP client")
}

pub(super) fn url(server: &ServerArgs, path: &str) -> String {
    format!("{}{path}", server.server.trim_end_matches('/'))
}

/// Sends a request and decodes the body of a 2xx answer into the API's wire type, or returns an
/// error with the server's message (either error shape: the API's or the ingestion endpoints').
pub(super) async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<T> {
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the server to {what}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("cannot read the server's answer to {what}"))?;
    if status.is_success() {
        return serde_json::from_str(&body).with_context(|| {
            format!("cannot {what}: the server's answer is not what this version of tocsin expects")
        });
    }
    anyhow::bail!("cannot {what}: HTTP {status}: {}", error_message(&body))
}

/// The message of an error answer, with the problems an ingestion endpoint lists.
fn error_message(body: &str) -> String {
    if let Ok(error) = serde_json::from_str::<ErrorBody>(body) {
        return match error.field {
            Some(field) => format!("{} (field `{field}`)", error.message),
            None => error.message,
        };
    }
    if let Ok(error) = serde_json::from_str::<IngestErrorBody>(body) {
        return if error.errors.is_empty() {
            error.message
        } else {
            format!("{}: {}", error.message, error.errors.join("; "))
        };
    }
    body.trim().to_owned()
}

pub(crate) async fn event(command: EventCommand) -> anyhow::Result<ExitCode> {
    let (event, body) = match command {
        EventCommand::Trigger {
            event,
            summary,
            severity,
            source,
            details,
        } => {
            let mut custom = serde_json::Map::new();
            for detail in details {
                let (key, value) = detail
                    .split_once('=')
                    .with_context(|| format!("--detail {detail:?} must be KEY=VALUE"))?;
                custom.insert(key.to_owned(), Value::String(value.to_owned()));
            }
            let mut body = json!({
                "routing_key": event.routing_key,
                "event_action": "trigger",
                "payload": {
                    "summary": summary,
                    "source": source,
                    "severity": severity,
                    "custom_details": custom,
                },
                "client": "tocsin-cli",
            });
            if let Some(key) = &event.dedup_key {
                body["dedup_key"] = json!(key);
            }
            (event, body)
        }
        EventCommand::Ack { event } | EventCommand::Resolve { event }
            if event.dedup_key.is_none() =>
        {
            anyhow::bail!("--dedup-key is required to acknowledge or resolve");
        }
        EventCommand::Ack { event } => {
            let body = json!({ "routing_key": event.routing_key, "event_action": "acknowledge",
                               "dedup_key": event.dedup_key });
            (event, body)
        }
        EventCommand::Resolve { event } => {
            let body = json!({ "routing_key": event.routing_key, "event_action": "resolve",
                               "dedup_key": event.dedup_key });
            (event, body)
        }
    };
    let client = http_client(&event.server)?;
    let answer: EventAccepted = send(
        client.post(url(&event.server, "/v2/enqueue")).json(&body),
        "send the event",
    )
    .await?;
    out(format!("accepted; dedup key {}", answer.dedup_key))?;
    Ok(ExitCode::SUCCESS)
}

fn incident_line(incident: &Incident) -> String {
    format!(
        "#{:<5} {:<13} {:<3} {:<20} {}",
        incident.number,
        incident.state.as_str(),
        incident.priority.as_str(),
        incident.service,
        incident.title,
    )
}

pub(super) fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

pub(crate) async fn incidents(command: IncidentCommand) -> anyhow::Result<ExitCode> {
    match command {
        IncidentCommand::List {
            api,
            state,
            service,
            limit,
        } => {
            let client = http_client(&api.server)?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(state) = state {
                query.push(("state", state));
            }
            if let Some(service) = service {
                query.push(("service", service));
            }
            let page: IncidentPage = send(
                client
                    .get(url(&api.server, "/api/v1/incidents"))
                    .bearer_auth(&api.token)
                    .query(&query),
                "list incidents",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<6} {:<13} {:<3} {:<20} TITLE",
                "NUMBER", "STATE", "PRI", "SERVICE"
            ))?;
            for incident in &page.items {
                out(incident_line(incident))?;
            }
            if let Some(cursor) = &page.next_cursor {
                out(format!("(more: cursor {cursor})"))?;
            }
        }
        IncidentCommand::Show { number, api } => {
            let client = http_client(&api.server)?;
            let incident: Incident = send(
                client
                    .get(url(&api.server, &format!("/api/v1/incidents/{number}")))
                    .bearer_auth(&api.token),
                "show the incident",
            )
            .await?;
            let timeline: TimelinePage = send(
                client
                    .get(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/timeline"),
                    ))
                    .bearer_auth(&api.token)
                    .query(&[("limit", "500")]),
                "read the timeline",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(
                    &json!({ "incident": incident, "timeline": timeline }),
                )?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "Incident #{number}: {}\n  state      {}\n  priority   {}\n  service    {}\n  dedup key  {}\n  impact     {}\n  created    {}\n  acked      {}\n  resolved   {}\n\nTimeline:",
                incident.title,
                incident.state,
                incident.priority,
                incident.service,
                incident.dedup_key,
                incident.impact_started_at,
                incident.created_at,
                or_dash(incident.acknowledged_at.as_deref()),
                or_dash(incident.resolved_at.as_deref()),
            ))?;
            for entry in &timeline.items {
                // The wire form of the entry's `kind` and `data`, as the API sends them.
                let what = serde_json::to_value(&entry.what).unwrap_or_default();
                let kind = what
                    .get("kind")
                    .and_then(|kind| kind.as_str())
                    .unwrap_or("?");
                let data = what.get("data").cloned().unwrap_or_default();
                out(format!(
                    "  {}  {:<28} {:<26} {}",
                    entry.at, kind, entry.actor, data
                ))?;
            }
        }
        IncidentCommand::Ack { number, api } => {
            command_result(&api, number, "acknowledge", None).await?;
        }
        IncidentCommand::Resolve { number, api } => {
            command_result(&api, number, "resolve", None).await?;
        }
        IncidentCommand::Priority {
            number,
            priority,
            api,
        } => {
            command_result(
                &api,
                number,
                "priority",
                Some(json!({ "priority": priority })),
            )
            .await?;
        }
        IncidentCommand::Note { number, text, api } => {
            let client = http_client(&api.server)?;
            let entry: TimelineItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/notes"),
                    ))
                    .bearer_auth(&api.token)
                    .json(&json!({ "text": text })),
                "add the note",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&entry)?)?;
            } else {
                out(format!("note added to incident #{number}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn command_result(
    api: &ApiArgs,
    number: i64,
    action: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let client = http_client(&api.server)?;
    let path = url(&api.server, &format!("/api/v1/incidents/{number}/{action}"));
    let request = match body {
        Some(body) => client.put(path).json(&body),
        None => client.post(path),
    };
    let result: CommandResult = send(request.bearer_auth(&api.token), action).await?;
    if api.json {
        return out(serde_json::to_string_pretty(&result)?);
    }
    out(format!(
        "{}{}",
        incident_line(&result.incident),
        if result.changed { "" } else { "  (unchanged)" }
    ))
}
