//! `tocsin status`: what the public status page says — public incident updates, maintenance
//! windows and component overrides — on a running server.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use tocsin_web::api::AffectedComponent;
use tocsin_web::status_admin::{
    ComponentItem, ComponentList, MaintenanceCreate, MaintenanceItem, MaintenanceList, OverrideSet,
    PublicIncidentItem, SnapshotFiles, StatusUpdateCreate,
};

use super::client::{http_client, send, url, ApiArgs};
use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum StatusCommand {
    /// Post a public update on an incident; the first one publishes it (give --title and
    /// --impact then). Readers see only the title, the message, the impact and the components.
    Update {
        /// The incident's number.
        number: i64,
        /// What readers are told.
        message: String,
        /// investigating, identified, monitoring or resolved.
        #[arg(long)]
        status: String,
        /// The public title (required to publish; the internal title is never shown).
        #[arg(long)]
        title: Option<String>,
        /// none, minor, major or critical (required to publish).
        #[arg(long)]
        impact: Option<String>,
        /// A component the incident affects and its status, as ID=STATUS (e.g.
        /// checkout=partial_outage); repeat for several.
        #[arg(long = "component", value_name = "ID=STATUS")]
        components: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an incident as the status page shows it, with its public updates.
    Show {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The status page's components and their overrides.
    Components {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Override a component's status (operational, degraded_performance, partial_outage,
    /// major_outage, under_maintenance), or clear the override with --clear.
    Override {
        component: String,
        /// The status to show; omit with --clear.
        status: Option<String>,
        #[arg(long, conflicts_with = "status")]
        clear: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Schedule, list and cancel maintenance windows.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Write the status page (its pages, JSON and feed) as static files under DIR, to serve
    /// from any static host: `DIR/index.html`, `DIR/status/index.html`,
    /// `DIR/status/incidents/<id>/index.html`, `DIR/status/feed.atom`, `DIR/api/v2/*.json`.
    /// Files are replaced whole (written beside, then renamed).
    Export {
        dir: std::path::PathBuf,
        /// Keep the files fresh: look for a new snapshot every --every seconds until stopped,
        /// and remove files the page no longer has.
        #[arg(long)]
        watch: bool,
        /// Seconds between two looks with --watch.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        every: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MaintenanceCommand {
    /// Schedule a window: shown ahead of time; while it runs, its components are under
    /// maintenance.
    Create {
        /// What the maintenance is.
        name: String,
        /// RFC 3339 with an offset, e.g. 2026-12-06T02:00:00Z.
        #[arg(long)]
        start: String,
        /// RFC 3339 with an offset, after --start.
        #[arg(long)]
        end: String,
        /// A component it takes down; repeat for several.
        #[arg(long = "component", value_name = "ID", required = true)]
        components: Vec<String>,
        /// What readers are told.
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Windows that have not ended, by start.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a window: one that has not begun is never shown; one that runs ends now.
    Cancel {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn parse_component(text: &str) -> anyhow::Result<AffectedComponent> {
    let (component, status) = text.split_once('=').with_context(|| {
        format!("--component {text:?} is not ID=STATUS (e.g. checkout=partial_outage)")
    })?;
    Ok(AffectedComponent {
        component: component.trim().to_owned(),
        status: status.trim().to_owned(),
    })
}

fn print_json(api: &ApiArgs, value: &impl Serialize) -> anyhow::Result<bool> {
    if api.json {
        out(serde_json::to_string_pretty(value)?)?;
    }
    Ok(api.json)
}

fn print_incident(incident: &PublicIncidentItem) -> anyhow::Result<()> {
    out(format!(
        "incident {} on the status page as {:?} ({}, impact {})\n  page: /status/incidents/{}",
        incident.incident, incident.name, incident.status, incident.impact, incident.public_id
    ))?;
    for update in &incident.updates {
        let components = update
            .components
            .iter()
            .map(|c| format!("{}={}", c.component, c.status))
            .collect::<Vec<_>>()
            .join(", ");
        out(format!(
            "  {}  {:<13} {}{}",
            update.created_at,
            update.status,
            update.message,
            if components.is_empty() {
                String::new()
            } else {
                format!(" [{components}]")
            }
        ))?;
    }
    Ok(())
}

fn maintenance_line(item: &MaintenanceItem) -> String {
    format!(
        "{:<5} {:<12} {} → {}  {}  [{}]",
        item.id,
        item.state,
        item.start,
        item.end,
        item.name,
        item.components.join(", ")
    )
}

fn component_line(item: &ComponentItem) -> String {
    match (&item.override_status, &item.override_set_by) {
        (Some(status), by) => format!(
            "{:<24} override {status} (by {})",
            item.id,
            by.as_deref().unwrap_or("-")
        ),
        _ => format!("{:<24} derived (monitors, incidents, maintenance)", item.id),
    }
}

pub(crate) async fn run(command: StatusCommand) -> anyhow::Result<ExitCode> {
    match command {
        StatusCommand::Update {
            number,
            message,
            status,
            title,
            impact,
            components,
            api,
        } => {
            let components = components
                .iter()
                .map(|text| parse_component(text))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let client = http_client(&api.server)?;
            let incident: PublicIncidentItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/status"),
                    ))
                    .bearer_auth(&api.token)
                    .json(&StatusUpdateCreate {
                        status,
                        message,
                        name: title,
                        impact,
                        components,
                    }),
                "post the status update",
            )
            .await?;
            if !print_json(&api, &incident)? {
                print_incident(&incident)?;
            }
        }
        StatusCommand::Show { number, api } => {
            let client = http_client(&api.server)?;
            let incident: PublicIncidentItem = send(
                client
                    .get(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/status"),
                    ))
                    .bearer_auth(&api.token),
                "read the published incident",
            )
            .await?;
            if !print_json(&api, &incident)? {
                print_incident(&incident)?;
            }
        }
        StatusCommand::Components { api } => {
            let client = http_client(&api.server)?;
            let list: ComponentList = send(
                client
                    .get(url(&api.server, "/api/v1/components"))
                    .bearer_auth(&api.token),
                "list the components",
            )
            .await?;
            if !print_json(&api, &list)? {
                for item in &list.items {
                    out(component_line(item))?;
                }
            }
        }
        StatusCommand::Override {
            component,
            status,
            clear,
            api,
        } => {
            let client = http_client(&api.server)?;
            let path = format!("/api/v1/components/{component}/override");
            let request = match (status, clear) {
                (_, true) => client.delete(url(&api.server, &path)),
                (Some(status), false) => client
                    .put(url(&api.server, &path))
                    .json(&OverrideSet { status }),
                (None, false) => anyhow::bail!(
                    "give the status to show (e.g. `tocsin status override {component} \
                     major_outage`) or --clear"
                ),
            };
            let item: ComponentItem =
                send(request.bearer_auth(&api.token), "set the override").await?;
            if !print_json(&api, &item)? {
                out(component_line(&item))?;
            }
        }
        StatusCommand::Maintenance(command) => maintenance(command).await?,
        StatusCommand::Export {
            dir,
            watch,
            every,
            api,
        } => export(&dir, watch, std::time::Duration::from_secs(every), &api).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn maintenance(command: MaintenanceCommand) -> anyhow::Result<()> {
    match command {
        MaintenanceCommand::Create {
            name,
            start,
            end,
            components,
            message,
            api,
        } => {
            let client = http_client(&api.server)?;
            let item: MaintenanceItem = send(
                client
                    .post(url(&api.server, "/api/v1/maintenance"))
                    .bearer_auth(&api.token)
                    .json(&MaintenanceCreate {
                        name,
                        message,
                        components,
                        start,
                        end,
                    }),
                "schedule the maintenance",
            )
            .await?;
            if !print_json(&api, &item)? {
                out(maintenance_line(&item))?;
            }
        }
        MaintenanceCommand::List { api } => {
            let client = http_client(&api.server)?;
            let list: MaintenanceList = send(
                client
                    .get(url(&api.server, "/api/v1/maintenance"))
                    .bearer_auth(&api.token)
                    .query(&[("limit", "500")]),
                "list maintenance",
            )
            .await?;
            if !print_json(&api, &list)? {
                if list.items.is_empty() {
                    out("no maintenance scheduled".to_owned())?;
                }
                for item in &list.items {
                    out(maintenance_line(item))?;
                }
            }
        }
        MaintenanceCommand::Cancel { id, api } => {
            let client = http_client(&api.server)?;
            let item: MaintenanceItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/maintenance/{id}/cancel"),
                    ))
                    .bearer_auth(&api.token),
                "cancel the maintenance",
            )
            .await?;
            if !print_json(&api, &item)? {
                out(maintenance_line(&item))?;
            }
        }
    }
    Ok(())
}

/// Where a snapshot path goes under the export directory: pages become `index.html` of their
/// directory (so links such as `/status/history` work on a static host), documents keep their
/// name. `None` for a path that could leave the directory.
fn export_file(dir: &std::path::Path, path: &str) -> Option<std::path::PathBuf> {
    let relative = path.strip_prefix('/')?;
    let mut file = dir.to_path_buf();
    for segment in relative.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\\') {
            return None;
        }
        file.push(segment);
    }
    if !(path.ends_with(".json") || path.ends_with(".atom")) {
        file.push("index.html");
    }
    Some(file)
}

/// Writes `bytes` to `file` unless it holds them already: beside it first, then renamed over
/// it, so a reader never sees half a file. Returns whether it wrote.
fn write_whole(file: &std::path::Path, bytes: &[u8]) -> anyhow::Result<bool> {
    if std::fs::read(file).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    let parent = file.parent().context("an export file has a directory")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, file)
        .with_context(|| format!("cannot replace {}", file.display()))?;
    Ok(true)
}

/// One export round: every file of the current snapshot. Returns the snapshot's time and the
/// files it has.
async fn export_once(
    client: &reqwest::Client,
    dir: &std::path::Path,
    api: &ApiArgs,
) -> anyhow::Result<(
    String,
    std::collections::BTreeSet<std::path::PathBuf>,
    usize,
)> {
    let files: SnapshotFiles = send(
        client
            .get(url(&api.server, "/api/v1/status/files"))
            .bearer_auth(&api.token),
        "list the status page's files",
    )
    .await?;
    let mut written = 0;
    let mut kept = std::collections::BTreeSet::new();
    for path in &files.paths {
        let Some(file) = export_file(dir, path) else {
            anyhow::bail!("the server listed a path that is not a plain path: {path:?}");
        };
        let response = client
            .get(url(&api.server, path))
            .header(reqwest::header::ACCEPT_ENCODING, "identity")
            .send()
            .await
            .with_context(|| format!("cannot reach the server to read {path}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "the server answered {} for {path}",
            response.status()
        );
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("cannot read {path}"))?;
        if write_whole(&file, &bytes)? {
            written += 1;
        }
        if path == "/status" {
            let root = dir.join("index.html");
            if write_whole(&root, &bytes)? {
                written += 1;
            }
            kept.insert(root);
        }
        kept.insert(file);
    }
    Ok((files.built_at, kept, written))
}

async fn export(
    dir: &std::path::Path,
    watch: bool,
    every: std::time::Duration,
    api: &ApiArgs,
) -> anyhow::Result<()> {
    let client = http_client(&api.server)?;
    let (built_at, mut kept, written) = export_once(&client, dir, api).await?;
    out(format!(
        "exported {} files to {} ({written} written; data as of {built_at})",
        kept.len(),
        dir.display()
    ))?;
    if !watch {
        return Ok(());
    }
    let mut last = built_at;
    loop {
        tokio::time::sleep(every).await;
        let (built_at, now_kept, written) = match export_once(&client, dir, api).await {
            Ok(round) => round,
            Err(error) => {
                // The files already written stay: serving them is the point.
                eprintln!("warning: {error:#}; the exported files stay as they are");
                continue;
            }
        };
        for gone in kept.difference(&now_kept) {
            if std::fs::remove_file(gone).is_ok() {
                out(format!("removed {}", gone.display()))?;
            }
        }
        kept = now_kept;
        if written > 0 || built_at != last {
            out(format!("{written} files written (data as of {built_at})"))?;
        }
        last = built_at;
    }
}
