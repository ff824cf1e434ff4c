//! `tocsin oncall` and `tocsin override`: who is on call, gaps, shifts and overrides, from a
//! running server.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use serde_json::json;
use tocsin_web::oncall::{
    GapList, OnCallAnswer, OnCallEntry, OverrideItem, OverridePage, ShiftList,
};

use super::client::{http_client, send, url, ApiArgs};
use super::out;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct OncallArgs {
    #[command(subcommand)]
    command: Option<OncallCommand>,
    /// Only this schedule.
    #[arg(long)]
    schedule: Option<String>,
    /// When, in RFC 3339 with an offset (`2026-11-02T09:00:00Z`, `2026-11-02T09:00:00-08:00`);
    /// default now.
    #[arg(long)]
    at: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Subcommand)]
enum OncallCommand {
    /// The ranges in which a schedule has nobody on call, overrides included.
    Gaps {
        /// Only this schedule (default: every schedule).
        #[arg(long)]
        schedule: Option<String>,
        /// How many days ahead to look, 1 to 90.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=90))]
        days: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A user's shifts in every schedule, overrides included.
    Shifts {
        /// The user's id.
        user: String,
        /// How many days ahead to look, 1 to 90.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=90))]
        days: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OverrideCommand {
    /// Put someone on call instead of a schedule's people for a while.
    Create {
        /// The schedule.
        #[arg(long)]
        schedule: String,
        /// Who is on call instead.
        #[arg(long)]
        user: String,
        /// From when, in RFC 3339 with an offset (`2026-11-02T09:00:00Z`).
        #[arg(long)]
        start: String,
        /// Until when (exclusive), in RFC 3339 with an offset.
        #[arg(long)]
        end: String,
        /// Take only this member's turns in the range (default: the whole range).
        #[arg(long)]
        replaces: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a schedule's overrides, newest first.
    List {
        /// The schedule.
        #[arg(long)]
        schedule: String,
        /// Only overrides that end after this (RFC 3339 with an offset).
        #[arg(long)]
        from: Option<String>,
        /// Only overrides that start before this (RFC 3339 with an offset).
        #[arg(long)]
        to: Option<String>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete an override: the schedule's people are on call again at once.
    Delete {
        /// The override's id (from `tocsin override list`).
        id: i64,
        /// The schedule.
        #[arg(long)]
        schedule: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Checks a time given on the command line before anything is sent.
fn instant(flag: &str, value: &str) -> anyhow::Result<Timestamp> {
    value.trim().parse::<Timestamp>().map_err(|_| {
        anyhow::anyhow!(
            "--{flag} {value:?} is not a time with an offset; write RFC 3339, e.g. \
             2026-11-02T09:00:00Z or 2026-11-02T09:00:00-08:00"
        )
    })
}

/// A path segment: schedule and user ids are letters, digits, `.`, `_` and `-`; anything else
/// is escaped so it reaches the server as written.
pub(crate) fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn via(entry: &OnCallEntry) -> String {
    match (entry.layer, entry.override_id) {
        (_, Some(id)) => format!("override {id}"),
        (Some(layer), None) => format!("layer {layer}"),
        (None, None) => "-".to_owned(),
    }
}

/// `1d 2h 30m` for a number of seconds.
fn length(seconds: i64) -> String {
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 || parts.is_empty() {
        parts.push(format!("{minutes}m"));
    }
    parts.join(" ")
}

pub(crate) async fn oncall(args: OncallArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(OncallCommand::Gaps {
            schedule,
            days,
            api,
        }) => gaps(&api, schedule, days).await,
        Some(OncallCommand::Shifts { user, days, api }) => shifts(&api, &user, days).await,
        None => now(&args.api, args.schedule, args.at).await,
    }
}

async fn on_call_answer(
    api: &ApiArgs,
    schedule: Option<&str>,
    at: Option<Timestamp>,
) -> anyhow::Result<OnCallAnswer> {
    let client = http_client(&api.server)?;
    let mut query = Vec::new();
    if let Some(at) = at {
        query.push(("at", at.to_string()));
    }
    if let Some(schedule) = schedule {
        query.push(("schedule", schedule.to_owned()));
    }
    send(
        client
            .get(url(&api.server, "/api/v1/oncall"))
            .bearer_auth(&api.token)
            .query(&query),
        "ask who is on call",
    )
    .await
}

async fn now(
    api: &ApiArgs,
    schedule: Option<String>,
    at: Option<String>,
) -> anyhow::Result<ExitCode> {
    let at = at.as_deref().map(|at| instant("at", at)).transpose()?;
    let answer = on_call_answer(api, schedule.as_deref(), at).await?;
    if api.json {
        out(serde_json::to_string_pretty(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!("on call at {}", answer.at))?;
    out(format!(
        "{:<24} {:<16} {:<14} UNTIL",
        "SCHEDULE", "ON CALL", "VIA"
    ))?;
    for entry in &answer.schedules {
        out(format!(
            "{:<24} {:<16} {:<14} {}",
            entry.schedule,
            entry.user.as_deref().unwrap_or("NOBODY"),
            via(entry),
            entry.until.as_deref().unwrap_or("-"),
        ))?;
    }
    if answer.schedules.is_empty() {
        out("(the config declares no schedules)")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn gaps(api: &ApiArgs, schedule: Option<String>, days: u32) -> anyhow::Result<ExitCode> {
    let schedules = match schedule {
        Some(schedule) => vec![schedule],
        None => on_call_answer(api, None, None)
            .await?
            .schedules
            .into_iter()
            .map(|entry| entry.schedule)
            .collect(),
    };
    let client = http_client(&api.server)?;
    let now = jiff::Timestamp::now();
    let to = now
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .context("the range is too long")?;
    let mut lists = Vec::new();
    for schedule in &schedules {
        let list: GapList = send(
            client
                .get(url(
                    &api.server,
                    &format!("/api/v1/schedules/{}/gaps", segment(schedule)),
                ))
                .bearer_auth(&api.token)
                .query(&[("from", now.to_string()), ("to", to.to_string())]),
            "read the schedule's gaps",
        )
        .await?;
        lists.push(list);
    }
    if api.json {
        out(serde_json::to_string_pretty(&lists)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for list in &lists {
        if list.gaps.is_empty() {
            out(format!(
                "{}: someone is on call at every moment of the next {days} days",
                list.schedule
            ))?;
            continue;
        }
        out(format!(
            "{}: nobody is on call {} time{} in the next {days} days",
            list.schedule,
            list.gaps.len(),
            if list.gaps.len() == 1 { "" } else { "s" }
        ))?;
        for gap in &list.gaps {
            out(format!(
                "  {}  to {}  ({})",
                gap.start,
                gap.end,
                length(gap.seconds)
            ))?;
        }
        if let Some(next) = &list.next_from {
            out(format!("  (more from {next})"))?;
        }
    }
    if lists.is_empty() {
        out("(the config declares no schedules)")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn shifts(api: &ApiArgs, user: &str, days: u32) -> anyhow::Result<ExitCode> {
    let client = http_client(&api.server)?;
    let now = jiff::Timestamp::now();
    let to = now
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .context("the range is too long")?;
    let list: ShiftList = send(
        client
            .get(url(
                &api.server,
                &format!("/api/v1/users/{}/shifts", segment(user)),
            ))
            .bearer_auth(&api.token)
            .query(&[("from", now.to_string()), ("to", to.to_string())]),
        "read the user's shifts",
    )
    .await?;
    if api.json {
        out(serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!("{:<24} {:<22} END", "SCHEDULE", "START"))?;
    for shift in &list.shifts {
        out(format!(
            "{:<24} {:<22} {}",
            shift.schedule, shift.start, shift.end
        ))?;
    }
    if list.shifts.is_empty() {
        out(format!("({user} has no shift in the next {days} days)"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn override_line(item: &OverrideItem) -> String {
    format!(
        "{:<6} {:<22} {:<22} {:<16} {}",
        item.id,
        item.start,
        item.end,
        item.user,
        item.replaces
            .as_deref()
            .map_or_else(|| "everyone".to_owned(), |replaced| replaced.to_owned()),
    )
}

const OVERRIDE_HEADER: &str =
    "ID     START                  END                    USER             INSTEAD OF";

pub(crate) async fn overrides(command: OverrideCommand) -> anyhow::Result<ExitCode> {
    match command {
        OverrideCommand::Create {
            schedule,
            user,
            start,
            end,
            replaces,
            api,
        } => {
            let start = instant("start", &start)?;
            let end = instant("end", &end)?;
            if end <= start {
                anyhow::bail!("--end ({end}) must be after --start ({start})");
            }
            let client = http_client(&api.server)?;
            let mut body = json!({
                "start": start.to_string(),
                "end": end.to_string(),
                "user": user,
            });
            if let Some(replaces) = replaces {
                body["replaces"] = json!(replaces);
            }
            let created: OverrideItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/schedules/{}/overrides", segment(&schedule)),
                    ))
                    .bearer_auth(&api.token)
                    .json(&body),
                "create the override",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&created)?)?;
            } else {
                out(format!(
                    "override {} created: {} is on call in {} from {} to {}{}",
                    created.id,
                    created.user,
                    created.schedule,
                    created.start,
                    created.end,
                    created
                        .replaces
                        .as_deref()
                        .map(|replaced| format!(" instead of {replaced}"))
                        .unwrap_or_default()
                ))?;
            }
        }
        OverrideCommand::List {
            schedule,
            from,
            to,
            limit,
            api,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(from) = from {
                query.push(("from", instant("from", &from)?.to_string()));
            }
            if let Some(to) = to {
                query.push(("to", instant("to", &to)?.to_string()));
            }
            let client = http_client(&api.server)?;
            let page: OverridePage = send(
                client
                    .get(url(
                        &api.server,
                        &format!("/api/v1/schedules/{}/overrides", segment(&schedule)),
                    ))
                    .bearer_auth(&api.token)
                    .query(&query),
                "list the overrides",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(OVERRIDE_HEADER)?;
            for item in &page.items {
                out(override_line(item))?;
            }
            if let Some(cursor) = &page.next_cursor {
                out(format!("(more: cursor {cursor})"))?;
            }
        }
        OverrideCommand::Delete { id, schedule, api } => {
            let client = http_client(&api.server)?;
            let deleted: OverrideItem = send(
                client
                    .delete(url(
                        &api.server,
                        &format!("/api/v1/schedules/{}/overrides/{id}", segment(&schedule)),
                    ))
                    .bearer_auth(&api.token),
                "delete the override",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&deleted)?)?;
            } else {
                out(format!(
                    "override {} of {} deleted",
                    deleted.id, deleted.schedule
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_without_an_offset_is_refused_naming_the_flag() {
        let error = instant("at", "2026-11-02 09:00").unwrap_err().to_string();
        assert!(error.contains("--at"), "{error}");
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(instant("at", "2026-11-02T09:00:00+01:00").is_ok());
    }

    #[test]
    fn lengths_read_as_days_hours_minutes() {
        assert_eq!(length(0), "0m");
        assert_eq!(length(90 * 60), "1h 30m");
        assert_eq!(length(86_400 + 3600), "1d 1h");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("payments-primary"), "payments-primary");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
