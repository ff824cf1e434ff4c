//! Commands that talk to a running server over HTTP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tocsin_web::api::{
    AlertPage, CommandResult, ErrorBody, Incident, IncidentPage, ServicePage, TimelineItem,
    TimelinePage,
};
use tocsin_web::{EventAccepted, IngestErrorBody};

use super::{out, render};

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the Tocsin server.
    #[arg(long, env = "TOCSIN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// A PEM CA certificate to trust (for a server with a private certificate).
    #[arg(long, env = "TOCSIN_CA_CERT")]
    pub(crate) ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EventArgs {
    /// The service's integration key.
    #[arg(long, env = "TOCSIN_ROUTING_KEY", hide_env_values = true)]
    routing_key: String,
    /// Events with the same key fold into one alert (generated for a trigger when absent).
    #[arg(long)]
    dedup_key: Option<String>,
    /// Print the server's JSON answer instead of a sentence.
    #[arg(long)]
    json: bool,
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
    pub(crate) server: ServerArgs,
    /// API token (create one with `tocsin token create`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
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
        /// Only this service (its id; `tocsin services list` shows them).
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
    /// Page the next escalation level of a triggered incident now.
    Escalate {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Hand an open incident to a user and page them at once by each of their notify rules.
    ///
    /// Notifications of the incident still pending are withdrawn; the incident keeps its state
    /// and its escalation. USER is a user id from the config (not a bot, with notify rules).
    Reassign {
        number: i64,
        user: String,
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

pub(crate) fn http_client(server: &ServerArgs) -> anyhow::Result<reqwest::Client> {
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

pub(crate) fn url(server: &ServerArgs, path: &str) -> String {
    format!("{}{path}", server.server.trim_end_matches('/'))
}

/// Sends a request and decodes the body of a 2xx answer into the API's wire type, or returns an
/// error with the server's message (either error shape: the API's or the ingestion endpoints').
pub(crate) async fn send<T: DeserializeOwned>(
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
    if event.json {
        out(serde_json::to_string_pretty(&answer)?)?;
    } else {
        out(format!("accepted; dedup key {}", answer.dedup_key))?;
    }
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

pub(crate) fn or_dash(value: Option<&str>) -> &str {
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
            if let Some(service) = &service {
                query.push(("service", service.clone()));
            }
            let page: IncidentPage = send(
                client
                    .get(url(&api.server, "/api/v1/incidents"))
                    .bearer_auth(&api.token)
                    .query(&query),
                "list incidents",
            )
            .await?;
            if page.items.is_empty() {
                if let Some(service) = &service {
                    require_service(&client, &api, service).await?;
                }
            }
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
                &format!("show incident #{number}"),
            )
            .await?;
            let timeline = all_pages::<TimelinePage, _>(
                &client,
                &api,
                &format!("/api/v1/incidents/{number}/timeline"),
                "read the timeline",
                |page| page.next_cursor.clone(),
            )
            .await?;
            if api.json {
                let items: Vec<&TimelineItem> =
                    timeline.iter().flat_map(|page| &page.items).collect();
                out(serde_json::to_string_pretty(
                    &json!({ "incident": incident, "timeline": { "items": items, "next_cursor": null } }),
                )?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let alerts: usize = all_pages::<AlertPage, _>(
                &client,
                &api,
                &format!("/api/v1/incidents/{number}/alerts"),
                "count the incident's alerts",
                |page| page.next_cursor.clone(),
            )
            .await?
            .iter()
            .map(|page| page.items.len())
            .sum();
            out(render::incident_details(&incident, alerts))?;
            let entries: Vec<&TimelineItem> =
                timeline.iter().flat_map(|page| &page.items).collect();
            let actor_width = entries
                .iter()
                .map(|entry| entry.actor.chars().count())
                .max()
                .unwrap_or(0)
                .max(5);
            out(format!(
                "\nTimeline ({}, oldest first, times in UTC):\n  {:<19}  {:<actor_width$}  WHAT",
                entries.len(),
                "WHEN",
                "WHO"
            ))?;
            for entry in entries {
                out(render::timeline_row(entry, actor_width))?;
            }
        }
        IncidentCommand::Ack { number, api } => {
            command_result(
                &api,
                number,
                "acknowledge",
                None,
                &format!("acknowledge incident #{number}"),
            )
            .await?;
        }
        IncidentCommand::Resolve { number, api } => {
            command_result(
                &api,
                number,
                "resolve",
                None,
                &format!("resolve incident #{number}"),
            )
            .await?;
        }
        IncidentCommand::Escalate { number, api } => {
            command_result(
                &api,
                number,
                "escalate",
                None,
                &format!("escalate incident #{number}"),
            )
            .await?;
        }
        IncidentCommand::Reassign { number, user, api } => {
            command_result(
                &api,
                number,
                "reassign",
                Some(json!({ "user": user })),
                &format!("reassign incident #{number}"),
            )
            .await?;
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
                &format!("change the priority of incident #{number}"),
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
                &format!("add the note to incident #{number}"),
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

/// Every page of a list, following `next_cursor` (at most [`MAX_PAGES`] pages of 500).
pub(crate) async fn all_pages<P: DeserializeOwned, F: Fn(&P) -> Option<String>>(
    client: &reqwest::Client,
    api: &ApiArgs,
    path: &str,
    what: &str,
    next_cursor: F,
) -> anyhow::Result<Vec<P>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![("limit", "500".to_owned())];
        if let Some(cursor) = cursor.take() {
            query.push(("cursor", cursor));
        }
        let page: P = send(
            client
                .get(url(&api.server, path))
                .bearer_auth(&api.token)
                .query(&query),
            what,
        )
        .await?;
        let next = next_cursor(&page);
        pages.push(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(pages),
        }
    }
    anyhow::bail!(
        "cannot {what}: the list has more than {} items; use the API's cursors",
        MAX_PAGES * 500
    )
}

/// The most pages [`all_pages`] reads.
const MAX_PAGES: usize = 200;

/// The ids of the services the server knows, in config order.
pub(crate) async fn service_ids(
    client: &reqwest::Client,
    api: &ApiArgs,
) -> anyhow::Result<Vec<String>> {
    Ok(
        all_pages::<ServicePage, _>(client, api, "/api/v1/services", "list services", |page| {
            page.next_cursor.clone()
        })
        .await?
        .into_iter()
        .flat_map(|page| page.items)
        .map(|service| service.id)
        .collect(),
    )
}

/// An error when the server has no service `id`, naming the ones it has.
pub(crate) async fn require_service(
    client: &reqwest::Client,
    api: &ApiArgs,
    id: &str,
) -> anyhow::Result<()> {
    let known = service_ids(client, api).await?;
    if known.iter().any(|known| known == id) {
        return Ok(());
    }
    anyhow::bail!("{}", no_such_service(id, &known))
}

fn no_such_service(id: &str, known: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut names = known
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        names.push_str(&format!(" and {} more", known.len() - SHOWN));
    }
    if known.is_empty() {
        format!("there is no service `{id}`: the server's config declares no services")
    } else {
        format!(
            "there is no service `{id}`; known services: {names} (`tocsin services list` shows them all)"
        )
    }
}

async fn command_result(
    api: &ApiArgs,
    number: i64,
    action: &str,
    body: Option<Value>,
    what: &str,
) -> anyhow::Result<()> {
    let client = http_client(&api.server)?;
    let path = url(&api.server, &format!("/api/v1/incidents/{number}/{action}"));
    let request = match body {
        // Changing the priority is a PUT of the new value; every other command is a POST.
        Some(body) if action == "priority" => client.put(path).json(&body),
        Some(body) => client.post(path).json(&body),
        None => client.post(path),
    };
    let result: CommandResult = send(request.bearer_auth(&api.token), what).await?;
    if api.json {
        return out(serde_json::to_string_pretty(&result)?);
    }
    out(format!(
        "{}{}",
        incident_line(&result.incident),
        if result.changed { "" } else { "  (unchanged)" }
    ))
}
