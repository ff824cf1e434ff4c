//! The typed config model. Every value here has been validated: references point at things
//! that exist, durations are positive, enums hold allowed values, ids are unique.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use tocsin_core::{
    Cron, EscalationLevel, EscalationPolicy, Layer, Restriction, Schedule, Target,
};

use crate::secret::Secret;

/// A whole config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub ingest: Ingest,
    pub smtp: Option<Smtp>,
    pub watchdog: Option<Watchdog>,
    pub users: Vec<User>,
    pub teams: Vec<Team>,
    pub schedules: Vec<Schedule>,
    pub escalation_policies: Vec<EscalationPolicy>,
    pub channels: Vec<Channel>,
    pub services: Vec<Service>,
    pub monitors: Vec<Monitor>,
    pub rules: Vec<Rule>,
    pub status_page: Option<StatusPage>,
    pub components: Vec<Component>,
}

impl Config {
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The service that owns an integration key (a PagerDuty `routing_key`, or the key in an
    /// Alertmanager or Grafana webhook URL). Keys are compared in constant time.
    pub fn service_for_integration_key(&self, key: &str) -> Option<&Service> {
        self.services.iter().find(|service| {
            service
                .integration_keys
                .iter()
                .any(|candidate| candidate.matches(key))
        })
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|user| user.id == id)
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|team| team.id == id)
    }

    pub fn schedule(&self, id: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|schedule| schedule.id == id)
    }

    pub fn escalation_policy(&self, id: &str) -> Option<&EscalationPolicy> {
        self.escalation_policies
            .iter()
            .find(|policy| policy.id == id)
    }

    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|channel| channel.id == id)
    }

    pub fn monitor(&self, id: &str) -> Option<&Monitor> {
        self.monitors.iter().find(|monitor| monitor.id == id)
    }

    /// The heartbeat monitor a job pings at `/ping/<key>`. Keys are compared in constant time.
    pub fn monitor_for_ping_key(&self, key: &str) -> Option<&Monitor> {
        self.monitors.iter().find(|monitor| match &monitor.kind {
            MonitorKind::Heartbeat(heartbeat) => heartbeat.ping_key.matches(key),
            _ => false,
        })
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|component| component.id == id)
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Base of links in notifications and on the status page, without a trailing slash.
    /// Default `http://` followed by `listen`.
    pub public_url: String,
    /// A `postgres://` URL. `None` means SQLite in the data directory.
    pub database: Option<Secret>,
    pub tls: Option<Tls>,
    pub log_format: LogFormat,
    /// How long a client may take to send a request's headers. Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once; `None` means as many as the file-descriptor limit allows.
    pub max_connections: Option<usize>,
}

impl Server {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
}

/// `[server.tls]`: serve HTTPS with these PEM files. `load` resolves relative paths against the
/// config file's directory and checks that both files can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

/// `[ingest]`: limits of the event ingestion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingest {
    /// Events waiting for the writer; a full queue answers 429. Default 20000.
    pub queue_capacity: usize,
    /// Most events committed in one transaction. Default 2048.
    pub max_batch: usize,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            queue_capacity: 20_000,
            max_batch: 2048,
        }
    }
}

/// `[smtp]`: the mail relay for email contact methods and email channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    /// Default 587.
    pub port: u16,
    /// `Name <address>` or a bare address.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Default: `tls` on port 465, `starttls` on port 587, `none` on any other port.
    pub security: SmtpSecurity,
    /// Trust only the CA certificates of this PEM file for the server's certificate (an
    /// internal relay); without it, the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP, for a relay on the same host or network.
    None,
    /// Upgrade the connection with STARTTLS; fail if the server does not offer it.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpSecurity {
    pub fn default_for_port(port: u16) -> Self {
        match port {
            465 => SmtpSecurity::Tls,
            587 => SmtpSecurity::StartTls,
            _ => SmtpSecurity::None,
        }
    }
}

/// `[watchdog]`: an external heartbeat URL that Tocsin pings while its own pipeline is
/// healthy, so that a dead pager is itself noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// Pinged with GET while healthy; `<url>/fail` gets a POST with the reason otherwise.
    pub url: Secret,
    /// How often. Default one minute.
    pub every: Duration,
}

impl Watchdog {
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
}

/// `[[users]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// Default: the id.
    pub name: String,
    pub email: Option<String>,
    /// An IANA time zone name, checked against the time zone database. Default `UTC`.
    pub time_zone: String,
    pub role: Role,
    /// Bots may send events; they can never be paged.
    pub bot: bool,
    pub contact: Vec<ContactMethod>,
    /// How to reach the user once paged, in order. When the file has no `notify`, every contact
    /// method is used at minute 0.
    pub notify: Vec<NotifyRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    Admin,
    #[default]
    Responder,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Responder => "responder",
            Role::Viewer => "viewer",
        }
    }
}

/// One way to reach a user, with an id unique within that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMethod {
    pub id: String,
    pub kind: ContactKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactKind {
    /// Sent through `[smtp]`.
    Email { address: String },
    /// A JSON POST, like a `webhook` channel; with a secret, signed with HMAC-SHA256.
    Webhook { url: Secret, secret: Option<Secret> },
    /// A push notification through an ntfy topic URL.
    Ntfy { url: Secret },
    /// A Slack-compatible incoming webhook (Slack, Mattermost): a direct message or a
    /// personal channel.
    Slack { url: Secret },
    /// The server's log: for trying Tocsin out (`tocsin demo`), not for waking anyone.
    Console,
}

impl ContactKind {
    pub fn name(&self) -> &'static str {
        match self {
            ContactKind::Email { .. } => "email",
            ContactKind::Webhook { .. } => "webhook",
            ContactKind::Ntfy { .. } => "ntfy",
            ContactKind::Slack { .. } => "slack",
            ContactKind::Console => "console",
        }
    }
}

/// "`after_minutes` after being paged, use contact method `contact`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRule {
    pub after_minutes: u32,
    /// The id of one of the user's contact methods.
    pub contact: String,
}

/// `[[teams]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    /// Default: the id.
    pub name: String,
    /// User ids.
    pub members: Vec<String>,
}

/// `[[channels]]`: where team-wide messages about a service's incidents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// Slack incoming webhook.
    Slack {
        url: Secret,
    },
    /// Mattermost incoming webhook (Slack-compatible).
    Mattermost {
        url: Secret,
    },
    Discord {
        url: Secret,
    },
    /// Microsoft Teams incoming webhook / workflow URL.
    Teams {
        url: Secret,
    },
    /// An ntfy topic URL.
    Ntfy {
        url: Secret,
    },
    /// Signed JSON: with a secret, an HMAC-SHA256 signature of the body.
    Webhook {
        url: Secret,
        secret: Option<Secret>,
    },
    /// Sent through `[smtp]`.
    Email {
        to: Vec<String>,
    },
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Mattermost { .. } => "mattermost",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Teams { .. } => "teams",
            ChannelKind::Ntfy { .. } => "ntfy",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Email { .. } => "email",
        }
    }

    /// The URL messages are posted to; `None` for email.
    pub fn url(&self) -> Option<&Secret> {
        match self {
            ChannelKind::Slack { url }
            | ChannelKind::Mattermost { url }
            | ChannelKind::Discord { url }
            | ChannelKind::Teams { url }
            | ChannelKind::Ntfy { url }
            | ChannelKind::Webhook { url, .. } => Some(url),
            ChannelKind::Email { .. } => None,
        }
    }
}

/// What happens to an alert when its sender says "resolved".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// A resolve event resolves the alert (and the incident when it was the last open alert).
    #[default]
    Auto,
    /// Only a person resolves; resolve events are recorded on the timeline.
    Manual,
}

impl From<ResolveMode> for tocsin_core::ResolvePolicy {
    fn from(mode: ResolveMode) -> Self {
        match mode {
            ResolveMode::Auto => tocsin_core::ResolvePolicy::Auto,
            ResolveMode::Manual => tocsin_core::ResolvePolicy::Manual,
        }
    }
}

/// `[[services]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    /// Default: the id.
    pub name: String,
    pub team: Option<String>,
    pub escalation_policy: Option<String>,
    /// Component ids, shown on the status page.
    pub components: Vec<String>,
    /// Channel ids.
    pub channels: Vec<String>,
    /// Each exactly 32 ASCII letters and digits, unique across all services.
    pub integration_keys: Vec<Secret>,
    pub resolve: ResolveMode,
    pub grafana: Option<GrafanaIntegration>,
    pub description: Option<String>,
    /// The services this one needs (ids; no cycles): while one of them has an open incident,
    /// this service's new incidents are noted on that incident instead of paging.
    pub depends_on: Vec<String>,
    /// When set, an incident acknowledged and not resolved this many minutes later is
    /// triggered again and escalates from level 1 (1 to a week).
    pub ack_timeout_minutes: Option<u32>,
}

/// A Grafana webhook contact point that signs its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrafanaIntegration {
    /// The HMAC secret set on the contact point.
    pub secret: Secret,
    /// The header carrying the signed timestamp, when the contact point sends one.
    pub timestamp_header: Option<String>,
}

/// `[[monitors]]`: a check of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub id: String,
    /// A service id.
    pub service: String,
    pub kind: MonitorKind,
    /// Ids of the monitors this one depends on: while one of them is down, this monitor's
    /// failures are recorded and attached to the parent's alert instead of paging on their own.
    /// Never a cycle.
    pub depends_on: Vec<String>,
}

impl Monitor {
    /// Interval, timeout and thresholds, for every kind Tocsin probes itself (all but heartbeat).
    pub fn probe(&self) -> Option<&Probe> {
        match &self.kind {
            MonitorKind::Http(check) => Some(&check.probe),
            MonitorKind::Tcp(check) => Some(&check.probe),
            MonitorKind::Dns(check) => Some(&check.probe),
            MonitorKind::Tls(check) => Some(&check.probe),
            MonitorKind::Heartbeat(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Dns(DnsCheck),
    Tls(TlsCheck),
    Heartbeat(HeartbeatCheck),
}

impl MonitorKind {
    pub fn name(&self) -> &'static str {
        match self {
            MonitorKind::Http(_) => "http",
            MonitorKind::Tcp(_) => "tcp",
            MonitorKind::Dns(_) => "dns",
            MonitorKind::Tls(_) => "tls",
            MonitorKind::Heartbeat(_) => "heartbeat",
        }
    }
}

/// Settings shared by the monitors Tocsin runs itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Default 60 s.
    pub interval: Duration,
    /// Default 10 s, never longer than the interval.
    pub timeout: Duration,
    /// Consecutive failures before an alert. Default 2.
    pub confirm: u32,
    /// Consecutive successes before recovery. Default: `confirm`.
    pub confirm_up: u32,
    /// A success slower than this counts as degraded.
    pub degraded_above: Option<Duration>,
    /// Changes between up and not up within an hour beyond which the monitor counts as
    /// flapping: it pages once and stays open until it is steady again. Default 6.
    pub flap_threshold: u32,
}

impl Probe {
    pub const DEFAULT_CONFIRM: u32 = 2;
    pub const DEFAULT_FLAP_THRESHOLD: u32 = 6;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub probe: Probe,
    /// `http://` or `https://`.
    pub url: String,
    pub method: HttpMethod,
    /// Default `["2xx"]`.
    pub expect_status: Vec<StatusPattern>,
    /// A substring the response body must contain.
    pub expect_body: Option<String>,
    /// A substring the response body must not contain.
    pub expect_body_absent: Option<String>,
    /// A value the JSON response body must hold at a path.
    pub expect_json: Option<ExpectJson>,
    /// Request headers, in the order written. Values are secrets (they often carry tokens).
    pub headers: Vec<(String, Secret)>,
    /// The request body (sent with any method).
    pub body: Option<String>,
    /// Follow redirects (up to 10), or judge the redirect response itself. Default true.
    pub follow_redirects: bool,
    /// Alert this many days before the certificate expires (https URLs only).
    pub tls_expiry_warn_days: Option<u32>,
    /// TLS trust for https URLs.
    pub tls: TlsTrust,
}

/// `expect_json = { path = "status.db", equals = "ok" }`: the value at a dotted path of the
/// JSON body (array elements by index: `items.0.state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectJson {
    pub path: String,
    pub equals: JsonScalar,
}

/// A JSON value written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonScalar {
    String(String),
    Integer(i64),
    Boolean(bool),
}

/// Which certificates a TLS check trusts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TlsTrust {
    /// The usual public roots.
    #[default]
    PublicRoots,
    /// Only the CA certificates of this PEM file (`ca_file`), e.g. an internal CA.
    CaFile(PathBuf),
    /// Any certificate (`skip_tls_verify = true`): encryption without authentication. Logged
    /// loudly at start-up and on every reload.
    SkipVerify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

/// `"200"` or `"2xx"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPattern {
    Exact(u16),
    /// The hundreds digit: `Class(2)` is `2xx`.
    Class(u8),
}

impl StatusPattern {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Exact(code) => code == status,
            StatusPattern::Class(class) => status / 100 == u16::from(class),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheck {
    pub probe: Probe,
    /// `host:port`.
    pub address: String,
    /// Complete a TLS handshake after connecting. Default false.
    pub tls: bool,
    pub tls_trust: TlsTrust,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub probe: Probe,
    /// The name to resolve.
    pub name: String,
    /// Default `A`.
    pub record: DnsRecord,
    /// When not empty, the answer must contain each of these values.
    pub expect: Vec<String>,
    /// The DNS server asked (UDP, then TCP for truncated answers). Default: the first
    /// `nameserver` of `/etc/resolv.conf`.
    pub resolver: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsRecord {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Ns,
    Txt,
}

impl DnsRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecord::A => "A",
            DnsRecord::Aaaa => "AAAA",
            DnsRecord::Cname => "CNAME",
            DnsRecord::Mx => "MX",
            DnsRecord::Ns => "NS",
            DnsRecord::Txt => "TXT",
        }
    }
}

/// Certificate expiry of any TLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCheck {
    pub probe: Probe,
    /// `host:port`.
    pub address: String,
    /// Default 14.
    pub tls_expiry_warn_days: u32,
    pub tls_trust: TlsTrust,
}

/// A job that reports in: `/ping/<ping_key>` (success), `/start`, `/fail` or `/<exit code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatCheck {
    pub expected: HeartbeatSchedule,
    /// How late a ping may be before the monitor is down. Default 1 h.
    pub grace: Duration,
    /// 16 to 64 characters from `A-Z a-z 0-9 - _`, unique across monitors.
    pub ping_key: Secret,
    /// Starts in a row without a success before the job counts as crash-looping.
    pub max_starts_without_success: Option<u32>,
    /// Only `POST` pings count; `GET` and `HEAD` are answered and ignored (link previews and
    /// crawlers fetch URLs). Default false.
    pub post_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatSchedule {
    /// `cron = "0 3 * * *"` in `time_zone` (default `UTC`).
    Cron { cron: Cron, time_zone: String },
    /// `period = "1h"`: a ping at least this often.
    Period(Duration),
}

/// `[[rules]]`: conditions over a service's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// A service id.
    pub service: String,
    pub kind: RuleKind,
    /// Which events count; every field that is set must match.
    pub matches: EventMatch,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// More than `above` matching events within the window (and, with a baseline, more than
    /// its factor times the average count per window over the trailing baseline window).
    Rate {
        above: u64,
        baseline: Option<RateBaseline>,
    },
    /// No matching event within the window.
    Absence,
}

/// `baseline = K` of a rate rule: fire only above K times the trailing average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBaseline {
    pub factor: u32,
    /// The trailing time the average is taken over (the current window excluded).
    pub window: Duration,
}

/// `match = { ... }` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMatch {
    pub severity: Option<tocsin_core::Severity>,
    pub source: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
}

/// `[status_page]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPage {
    pub title: String,
    /// Where readers reach the page when that is not under the server's public URL (for
    /// example behind a CDN), without a trailing slash.
    pub public_url: Option<String>,
    /// Days of uptime bars and past incidents shown. Default 90.
    pub history_days: u32,
    /// An image shown beside the title.
    pub logo_url: Option<String>,
    /// Links shown in the page's header, in order.
    pub links: Vec<StatusLink>,
    /// The IANA time zone the page shows days and times in. Default `UTC`.
    pub time_zone: String,
}

/// One of `links = [{ label, url }]` of `[status_page]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLink {
    pub label: String,
    pub url: String,
}

/// `[[components]]`: what the status page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    /// Default: the id.
    pub name: String,
    pub group: Option<String>,
    pub description: Option<String>,
}
