use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tocsin_config::{Config, LogFormat};
use tocsin_core::{
    ChangeEvent, DedupKey, Event, EventAction, EventLink, Integration, ServiceId, Severity,
    Timestamp,
};
use tocsin_store::{Inbound, TokenScope};

use super::out;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Config file.
    #[arg(
        long,
        short = 'c',
        env = "TOCSIN_CONFIG",
        default_value = "tocsin.toml"
    )]
    config: PathBuf,
    /// Data directory of the embedded SQLite store (ignored with a PostgreSQL database).
    #[arg(long, env = "TOCSIN_DATA", default_value = "./tocsin-data")]
    data: PathBuf,
    /// PostgreSQL URL (postgres://...); overrides `server.database`.
    #[arg(long, env = "TOCSIN_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the demo's data in this directory instead of a temporary one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seconds one round of the demo's flaky endpoint takes (healthy, slow, failing, healthy
    /// again); 10 to 3600.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(10..=3600), hide = true)]
    flaky_cycle: u64,
}

/// The monitor of the demo's flaky endpoint and the heartbeat monitor of its job.
const FLAKY_MONITOR: &str = "search-health";
const DEMO_JOB: &str = "search-indexer";
/// How often the demo's job pings (its monitor's `period`), and which pings of every six it
/// skips.
const JOB_EVERY: Duration = Duration::from_secs(10);
const JOB_SKIPS: [u64; 2] = [3, 4];
/// How long a slow answer of the flaky endpoint takes (its monitor is degraded above 800 ms).
const SLOW_ANSWER: Duration = Duration::from_millis(1_200);

/// What the flaky endpoint does at `elapsed` into a round of `cycle`: healthy for the first
/// 30%, slow until 50%, failing (503) until 85%, then healthy again.
fn flaky_phase(elapsed: Duration, cycle: Duration) -> FlakyPhase {
    let cycle = cycle.as_secs_f64().max(1.0);
    let at = (elapsed.as_secs_f64() % cycle) / cycle;
    if !(0.3..0.85).contains(&at) {
        FlakyPhase::Healthy
    } else if at < 0.5 {
        FlakyPhase::Slow
    } else {
        FlakyPhase::Failing
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlakyPhase {
    Healthy,
    Slow,
    Failing,
}

/// Serves the demo's flaky endpoint (`/health`) on a loopback port of its own.
async fn serve_flaky_endpoint(cycle: Duration) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot listen for the demo's flaky endpoint")?;
    let address = listener.local_addr()?;
    let started = tokio::time::Instant::now();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || async move {
            match flaky_phase(started.elapsed(), cycle) {
                FlakyPhase::Healthy => (axum::http::StatusCode::OK, "ok"),
                FlakyPhase::Slow => {
                    tokio::time::sleep(SLOW_ANSWER).await;
                    (axum::http::StatusCode::OK, "ok")
                }
                FlakyPhase::Failing => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded: the demo's flaky endpoint is failing on purpose",
                ),
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(error = %error, "the demo's flaky endpoint stopped");
        }
    });
    Ok(address)
}

/// The demo's job: pings its heartbeat monitor on the demo's own server every
/// [`JOB_EVERY`], skipping pings [`JOB_SKIPS`] of every six, so that it is late now and then.
fn run_demo_job(ping_url: String) {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut ticks = tokio::time::interval(JOB_EVERY);
        for round in 0_u64.. {
            ticks.tick().await;
            if JOB_SKIPS.contains(&(round % 6)) {
                tracing::info!(job = DEMO_JOB, "the demo's job skips a ping on purpose");
                continue;
            }
            if let Err(error) = client.post(&ping_url).body("indexed").send().await {
                tracing::warn!(job = DEMO_JOB, error = %error, "the demo's job cannot ping");
            }
        }
    });
}

/// Points the flaky endpoint's monitor at the port it got.
fn aim_flaky_monitor(config: &mut Config, address: SocketAddr) {
    for monitor in &mut config.monitors {
        if monitor.id == FLAKY_MONITOR {
            if let tocsin_config::MonitorKind::Http(check) = &mut monitor.kind {
                check.url = format!("http://{address}/health");
            }
        }
    }
}

/// One warning per config section that is accepted but not acted on yet, so that the log of a
/// running server never suggests that monitors are probed or people paged.
fn warn_inert_sections(config: &Config) {
    for section in config.inert_sections() {
        tracing::warn!(
            section = section.name,
            count = section.count,
            "config section accepted but not acted on yet: it would {}",
            section.what_it_would_do
        );
    }
}

fn bind(address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    tocsin::bind_listener(address).with_context(|| {
        format!("cannot listen on {address}; is another process using it? (choose another with --listen)")
    })
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let tocsin::LoadedConfig { mut config, sha256 } = match tocsin::read_config(&args.config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            let report = errors.to_string();
            eprintln!("{}", report.trim_end());
            anyhow::bail!("the config {} is invalid", args.config.display());
        }
    };
    if let Some(listen) = args.listen {
        if config.server.public_url == format!("http://{}", config.server.listen) {
            config.server.public_url = format!("http://{listen}");
        }
        config.server.listen = listen;
    }
    tocsin::init_tracing(config.server.log_format == LogFormat::Json);
    warn_inert_sections(&config);
    let listener = bind(config.server.listen)?;
    let file = tocsin::ConfigFile {
        path: args.config,
        listen: args.listen,
        database: args.database.clone(),
        sha256,
    };
    let settings = tocsin::Settings {
        config,
        data_dir: args.data,
        database: args.database,
    };
    tocsin::App::build(&settings)
        .await?
        .reload_from(file, &settings.config)
        .serve(listener, tocsin::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    tocsin::init_tracing(false);
    let mut config = tocsin_config::parse(tocsin_config::DEMO, "demo.toml", &|_| None)
        .map_err(|errors| anyhow::anyhow!("the built-in demo config is invalid:\n{errors}"))?;
    config.server.listen = args.listen;
    config.server.public_url = format!("http://{}", args.listen);
    warn_inert_sections(&config);
    let temporary = match &args.data {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("tocsin-demo-").tempdir()?),
    };
    let data_dir = match (&args.data, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.path().to_owned(),
        (None, None) => unreachable!("a temporary directory exists when --data is absent"),
    };
    let listener = bind(args.listen)?;
    let address = listener.local_addr()?;
    let cycle = Duration::from_secs(args.flaky_cycle);
    let flaky = serve_flaky_endpoint(cycle).await?;
    aim_flaky_monitor(&mut config, flaky);
    let settings = tocsin::Settings {
        config: config.clone(),
        data_dir: data_dir.clone(),
        database: None,
    };
    let app = tocsin::App::build(&settings).await?;
    let (token, _) = app
        .engine()
        .create_token("demo", TokenScope::Write)
        .await
        .context("cannot create the demo token")?;
    seed(app.engine(), &config).await?;
    print_tour(&config, address, &token, &data_dir, flaky, cycle)?;
    if let Some(key) = config
        .monitor(DEMO_JOB)
        .and_then(|monitor| match &monitor.kind {
            tocsin_config::MonitorKind::Heartbeat(check) => {
                Some(check.ping_key.expose().to_owned())
            }
            _ => None,
        })
    {
        run_demo_job(format!("http://{address}/ping/{key}"));
    }
    app.serve(listener, tocsin::shutdown_signal()).await?;
    drop(temporary);
    Ok(ExitCode::SUCCESS)
}

/// A few incidents in different states, an event storm folded into one alert, and a deploy.
async fn seed(engine: &Arc<tocsin_engine::Engine>, config: &Config) -> anyhow::Result<()> {
    let services: Vec<ServiceId> = config
        .services
        .iter()
        .map(|service| ServiceId::new(service.id.clone()))
        .collect();
    let Some(first) = services.first().cloned() else {
        return Ok(());
    };
    let second = services.get(1).cloned().unwrap_or_else(|| first.clone());
    let now = engine.now();
    let event_at =
        |at: Timestamp, service: &ServiceId, action, key: &str, severity, summary: &str| {
            Inbound::Alert(Event {
                service: service.clone(),
                integration: Integration::EventsV2,
                action,
                dedup_key: DedupKey::parse(key).expect("demo keys are valid"),
                severity,
                summary: summary.to_owned(),
                source: "demo-host-1".to_owned(),
                occurred_at: Some(at),
                received_at: at,
                details: json!({ "custom_details": { "region": "eu-west-1", "demo": true } }),
            })
        };
    let event = |service: &ServiceId, action, key: &str, severity, summary: &str| {
        event_at(now, service, action, key, severity, summary)
    };
    let mut batch = vec![Inbound::Change(ChangeEvent {
        service: first.clone(),
        summary: "Deployed checkout v2.14.0".to_owned(),
        source: Some("ci".to_owned()),
        occurred_at: Some(now),
        received_at: now,
        details: json!({ "commit": "4f2a9c1" }),
        links: vec![EventLink {
            href: "https://ci.example/builds/1412".to_owned(),
            text: Some("build 1412".to_owned()),
        }],
    })];
    // A storm of 250 events over the last ten minutes: one alert, and an `alert.folded` entry a
    // minute on the timeline.
    for n in 0..250_i64 {
        let at = now
            .checked_sub(jiff::SignedDuration::from_millis((250 - n) * 2_400))
            .unwrap_or(now);
        batch.push(event_at(
            at,
            &first,
            EventAction::Trigger,
            "http-5xx-rate",
            Severity::Critical,
            "HTTP 5xx rate above 5% on checkout",
        ));
    }
    batch.push(event(
        &second,
        EventAction::Trigger,
        "disk-db1",
        Severity::Warning,
        "Disk 91% full on db1",
    ));
    batch.push(event(
        &second,
        EventAction::Acknowledge,
        "disk-db1",
        Severity::Info,
        "",
    ));
    batch.push(event(
        &first,
        EventAction::Trigger,
        "cert-expiry",
        Severity::Error,
        "TLS certificate for api.example expires in 5 days",
    ));
    batch.push(event(
        &first,
        EventAction::Resolve,
        "cert-expiry",
        Severity::Info,
        "",
    ));
    engine
        .submit(batch)
        .await
        .context("cannot store the demo data")?;
    Ok(())
}

fn print_tour(
    config: &Config,
    address: SocketAddr,
    token: &str,
    data_dir: &std::path::Path,
    flaky: SocketAddr,
    cycle: Duration,
) -> anyhow::Result<()> {
    let base = format!("http://{address}");
    let status = if config.status_page.is_some() {
        format!(
            "  The public status page (no credentials): {base}/status in a browser\n    \
             Each component follows its services' monitors: Search shows degraded performance, then an\n    \
             outage with the flaky endpoint, and is operational again when it recovers.\n    \
             curl {base}/api/v2/summary.json\n\n"
        )
    } else {
        String::new()
    };
    let routing_key = config
        .services
        .first()
        .and_then(|service| service.integration_keys.first())
        .map_or("<integration key>", |key| key.expose());
    out(format!(
        r#"
Tocsin demo is running on {base} (data in {data})

  Health and metrics
    curl {base}/healthz
    curl {base}/readyz
    curl {base}/metrics

  The API (reference: {base}/api/v1/docs; OpenAPI document: {base}/api/v1/openapi.json)
    export TOCSIN_SERVER={base}
    export TOCSIN_TOKEN={token}
    curl -H "Authorization: Bearer $TOCSIN_TOKEN" {base}/api/v1/incidents
    curl -H "Authorization: Bearer $TOCSIN_TOKEN" {base}/api/v1/incidents/1/timeline

  The CLI
    tocsin incidents list
    tocsin incidents show 1
    tocsin incidents ack 1
    tocsin incidents note 1 "rolled back to v2.13"
    tocsin incidents resolve 1

  Monitors act by themselves: within the first minute one opens an incident and resolves it
    The demo serves a flaky endpoint, http://{flaky}/health: healthy, then slow, then failing,
    then healthy again, every {cycle} s. Monitor {FLAKY_MONITOR} checks it every 2 s.
    The demo's job {DEMO_JOB} pings every 10 s but skips two pings a minute: it goes late, then
    its next ping resolves it.
    tocsin monitors list
    tocsin monitors show {FLAKY_MONITOR}
    tocsin heartbeats list
    tocsin incidents list
    Pages (to the console) show in this log.

{status}  Send an event (PagerDuty Events API v2; routing key of the first service)
    tocsin event trigger --routing-key {routing_key} --summary "Queue depth above 10k" --dedup-key queue-depth
    curl -X POST {base}/v2/enqueue -H 'Content-Type: application/json' \
      -d '{{"routing_key":"{routing_key}","event_action":"trigger","dedup_key":"queue-depth","payload":{{"summary":"Queue depth above 10k","source":"worker-3","severity":"error"}}}}'
    Both carry the dedup key queue-depth: the second folds into the first (one alert, count 2,
    one incident). See it with `tocsin alerts list` and `tocsin incidents list`.

  Prometheus Alertmanager: webhook_configs url {base}/integrations/alertmanager/{routing_key}

Press Ctrl-C to stop."#,
        data = data_dir.display(),
        cycle = cycle.as_secs(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("the log buffer")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged_at_start(source: &str) -> String {
        let config = tocsin_config::parse(source, "test.toml", &|_| None)
            .unwrap_or_else(|errors| panic!("{errors}"));
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || warn_inert_sections(&config));
        let bytes = captured.0.lock().expect("the log buffer").clone();
        String::from_utf8(bytes).expect("utf-8 logs")
    }

    #[test]
    fn start_up_warns_once_per_section_that_is_not_acted_on() {
        let source = "[[channels]]\nid = \"chat\"\nkind = \"discord\"\nurl = \"https://discord.example/x\"\n";
        let log = logged_at_start(source);
        let warnings: Vec<&str> = log.lines().filter(|line| line.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{log}");
        assert!(
            warnings[0].contains("section=\"[[channels]] of kind discord or teams\"")
                && warnings[0].contains("accepted but not acted on yet")
                && warnings[0].contains("would post a service's incidents to Discord"),
            "{log}"
        );
    }

    #[test]
    fn the_demo_starts_without_a_warning_of_sections_not_acted_on() {
        let log = logged_at_start(tocsin_config::DEMO);
        assert!(!log.contains("accepted but not acted on yet"), "{log}");
    }

    #[test]
    fn start_up_is_quiet_when_every_section_acts() {
        let log = logged_at_start(
            "[[services]]\nid = \"api\"\nintegration_keys = [\"0123456789abcdef0123456789abcdef\"]\n",
        );
        assert_eq!(log, "");
    }
}
