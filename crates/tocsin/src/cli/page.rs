//! `tocsin page test USER`: a test page to each contact method of a user, through the running
//! server's real outbox and channels, and what each did.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tocsin_web::notices::{Notification, TestPageQueued};

use super::client::{http_client, or_dash, send, url, ApiArgs};
use super::oncall::segment;
use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum PageCommand {
    /// Send a test page to each contact method of USER and print what each did.
    ///
    /// The pages go through the server's outbox and channels as a real page would (retries
    /// included), but are about no incident. Waits until each is sent or failed, or
    /// --timeout passes; exits non-zero unless every one was sent.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The user's id from the config (not a bot, with at least one contact method).
    user: String,
    /// How long to wait for the outcomes, in seconds (1 to 600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    #[command(flatten)]
    api: ApiArgs,
}

/// How often the outcomes are read while waiting.
const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn run(command: PageCommand) -> anyhow::Result<ExitCode> {
    match command {
        PageCommand::Test(args) => test(args).await,
    }
}

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let api = &args.api;
    let client = http_client(&api.server)?;
    let queued: TestPageQueued = send(
        client
            .post(url(
                &api.server,
                &format!("/api/v1/users/{}/test-page", segment(&args.user)),
            ))
            .bearer_auth(&api.token),
        "send a test page",
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut notifications = queued.notifications;
    loop {
        if notifications.iter().all(|n| n.state.is_settled()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
        let mut read = Vec::with_capacity(notifications.len());
        for notification in &notifications {
            if notification.state.is_settled() {
                read.push(notification.clone());
                continue;
            }
            let now: Notification = send(
                client
                    .get(url(
                        &api.server,
                        &format!("/api/v1/notifications/{}", notification.id),
                    ))
                    .bearer_auth(&api.token),
                "read a test page's outcome",
            )
            .await?;
            read.push(now);
        }
        notifications = read;
    }
    let all_sent = notifications
        .iter()
        .all(|n| n.state == tocsin_web::notices::NotificationStatus::Sent);
    if api.json {
        out(serde_json::to_string_pretty(&TestPageQueued {
            user: queued.user,
            notifications,
        })?)?;
    } else {
        out(format!("test page for {}", queued.user))?;
        out(format!(
            "{:<16} {:<8} {:<9} {:>9}  ERROR",
            "CONTACT", "METHOD", "RESULT", "LATENCY"
        ))?;
        for n in &notifications {
            let result = if n.state.is_settled() {
                wire(n)
            } else {
                format!("{} (timed out)", wire(n))
            };
            let latency = n
                .latency_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
            out(format!(
                "{:<16} {:<8} {:<9} {:>9}  {}",
                n.contact,
                n.method,
                result,
                latency,
                or_dash(n.last_error.as_deref()),
            ))?;
        }
    }
    Ok(if all_sent {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The state as the API spells it.
fn wire(notification: &Notification) -> String {
    serde_json::to_value(notification.state)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}
