//! `[[monitors]]` and `[[rules]]`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use toml::de::DeValue;

use super::Parser;
use crate::model::{
    DnsCheck, DnsRecord, EventMatch, ExpectJson, HeartbeatCheck, HeartbeatSchedule, HttpCheck,
    HttpMethod, JsonScalar, Monitor, MonitorKind, Probe, RateBaseline, Rule, RuleKind,
    StatusPattern, TcpCheck, TlsCheck, TlsTrust,
};
use crate::reader::{KindFields, Str, Table};
use crate::secret::Secret;
use crate::values::{
    check_host_port, check_hostname, check_http_url, check_ping_key, parse_status_pattern, KEY_HELP,
};
use tocsin_core::Cron;

const MONITOR_FIELDS: KindFields<'static> = KindFields {
    noun: "monitor",
    common: &["id", "service", "kind", "depends_on"],
    by_kind: &[
        (
            "http",
            &[
                "url",
                "method",
                "headers",
                "body",
                "expect_status",
                "expect_body",
                "expect_body_absent",
                "expect_json",
                "follow_redirects",
                "tls_expiry_warn_days",
                "ca_file",
                "skip_tls_verify",
                "interval",
                "timeout",
                "confirm",
                "confirm_up",
                "degraded_above_ms",
                "flap_threshold",
            ],
        ),
        (
            "tcp",
            &[
                "address",
                "tls",
                "ca_file",
                "skip_tls_verify",
                "interval",
                "timeout",
                "confirm",
                "confirm_up",
                "degraded_above_ms",
                "flap_threshold",
            ],
        ),
        (
            "dns",
            &[
                "name",
                "record",
                "expect",
                "resolver",
                "interval",
                "timeout",
                "confirm",
                "confirm_up",
                "degraded_above_ms",
                "flap_threshold",
            ],
        ),
        (
            "tls",
            &[
                "address",
                "tls_expiry_warn_days",
                "ca_file",
                "skip_tls_verify",
                "interval",
                "timeout",
                "confirm",
                "confirm_up",
                "degraded_above_ms",
                "flap_threshold",
            ],
        ),
        (
            "heartbeat",
            &[
                "cron",
                "period",
                "time_zone",
                "grace",
                "ping_key",
                "max_starts_without_success",
                "post_only",
            ],
        ),
    ],
};
const MONITOR_KINDS: &[(&str, &str)] = &[
    ("http", "http"),
    ("tcp", "tcp"),
    ("dns", "dns"),
    ("tls", "tls"),
    ("heartbeat", "heartbeat"),
];
const RULE_FIELDS: KindFields<'static> = KindFields {
    noun: "rule",
    common: &["id", "service", "kind", "match", "window"],
    by_kind: &[
        ("rate", &["above", "baseline", "baseline_window"]),
        ("absence", &[]),
    ],
};
const MATCH_FIELDS: &[&str] = &["severity", "source", "component", "group", "class"];

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

impl Parser<'_, '_> {
    pub(super) fn monitors(&mut self, root: &Table<'_, '_>) -> Vec<Monitor> {
        let mut monitors = Vec::new();
        let mut dependency_positions = HashMap::new();
        for entry in self.entries(root, "monitors") {
            let table = &entry.table;
            let kind = self.cx.required_choice(table, "kind", MONITOR_KINDS);
            self.cx.check_kind_fields(table, &MONITOR_FIELDS, kind);
            let service = self.service_reference(table);
            let kind = match kind {
                Some("http") => self.http_check(table).map(MonitorKind::Http),
                Some("tcp") => self.tcp_check(table).map(MonitorKind::Tcp),
                Some("dns") => self.dns_check(table).map(MonitorKind::Dns),
                Some("tls") => self.tls_check(table).map(MonitorKind::Tls),
                Some(_) => self.heartbeat_check(table).map(MonitorKind::Heartbeat),
                None => None,
            };
            let depends_on = self.references(table, "depends_on", "monitors");
            if let (Some(id), Some(service), Some(kind)) = (entry.id, service, kind) {
                if depends_on.contains(&id) {
                    self.cx.error(
                        table.key_at("depends_on"),
                        format!("{} depends on itself", table.label),
                        Some("remove its own id from `depends_on`".to_owned()),
                    );
                }
                dependency_positions.insert(
                    id.clone(),
                    (table.key_at("depends_on"), table.label.clone()),
                );
                monitors.push(Monitor {
                    id,
                    service,
                    kind,
                    depends_on,
                });
            }
        }
        let links: Vec<(&str, &[String])> = monitors
            .iter()
            .map(|monitor| (monitor.id.as_str(), monitor.depends_on.as_slice()))
            .collect();
        self.dependency_cycles(&links, &dependency_positions, "monitor");
        monitors
    }

    /// Reports every `depends_on` cycle once, at the first entry (monitor or service, `noun`)
    /// of the cycle in file order. `links` are (id, depends_on) in file order.
    pub(super) fn dependency_cycles(
        &mut self,
        links: &[(&str, &[String])],
        positions: &HashMap<String, (usize, String)>,
        noun: &str,
    ) {
        let parents: HashMap<&str, &[String]> = links.iter().copied().collect();
        let mut reported: HashSet<String> = HashSet::new();
        for (id, _) in links {
            if reported.contains(*id) {
                continue;
            }
            if let Some(cycle) = find_cycle(id, &parents) {
                let (at, label) = &positions[*id];
                self.cx.error(
                    *at,
                    format!(
                        "`depends_on` of {label} forms a cycle: {}",
                        cycle.join(" -> ")
                    ),
                    Some(format!(
                        "a {noun} cannot depend on itself, even through others; remove one link"
                    )),
                );
                reported.extend(cycle);
            }
        }
    }

    /// The required `service` of a monitor or rule.
    fn service_reference(&mut self, table: &Table<'_, '_>) -> Option<String> {
        let service = self
            .cx
            .required_string(table, "service", "\"checkout-api\"")?;
        self.reference("services", &service, &table.label)
            .then_some(service.text)
    }

    fn probe(&mut self, table: &Table<'_, '_>) -> Probe {
        let interval = self
            .cx
            .duration(table, "interval", SECOND, DAY)
            .unwrap_or(Duration::from_secs(60));
        let timeout = match self.cx.duration(
            table,
            "timeout",
            Duration::from_millis(100),
            Duration::from_secs(300),
        ) {
            Some(timeout) if timeout > interval => {
                self.cx.error(
                    table.key_at("timeout"),
                    format!(
                        "`timeout` in {} is longer than its `interval`",
                        table.label
                    ),
                    Some("a check must finish before the next one starts; shorten `timeout` or lengthen `interval`".to_owned()),
                );
                timeout
            }
            Some(timeout) => timeout,
            None => Duration::from_secs(10).min(interval),
        };
        let confirm = self
            .cx
            .integer(table, "confirm", 1, 100)
            .map_or(Probe::DEFAULT_CONFIRM, |confirm| confirm as u32);
        let confirm_up = self
            .cx
            .integer(table, "confirm_up", 1, 100)
            .map_or(confirm, |confirm| confirm as u32);
        let degraded_above = self
            .cx
            .integer(table, "degraded_above_ms", 1, 600_000)
            .map(|millis| Duration::from_millis(millis as u64));
        let flap_threshold = self
            .cx
            .integer(table, "flap_threshold", 2, 1000)
            .map_or(Probe::DEFAULT_FLAP_THRESHOLD, |flips| flips as u32);
        Probe {
            interval,
            timeout,
            confirm,
            confirm_up,
            degraded_above,
            flap_threshold,
        }
    }

    /// `ca_file` and `skip_tls_verify`.
    fn tls_trust(&mut self, table: &Table<'_, '_>) -> TlsTrust {
        let skip = self.cx.boolean(table, "skip_tls_verify").unwrap_or(false);
        let ca_file = self.cx.text(table, "ca_file");
        match (skip, ca_file) {
            (true, Some(_)) => {
                self.cx.error(
                    table.key_at("skip_tls_verify"),
                    format!("{} has both `ca_file` and `skip_tls_verify`", table.label),
                    Some("keep `ca_file`: it checks certificates against your CA; skipping verification checks nothing".to_owned()),
                );
                TlsTrust::SkipVerify
            }
            (true, None) => TlsTrust::SkipVerify,
            (false, Some(path)) => {
                let path = std::path::PathBuf::from(path.text);
                TlsTrust::CaFile(match self.base_dir {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path,
                })
            }
            (false, None) => TlsTrust::PublicRoots,
        }
    }

    /// `headers = { "Authorization" = "Bearer ${TOKEN}" }`.
    fn headers(&mut self, table: &Table<'_, '_>) -> Vec<(String, Secret)> {
        let label = format!("`headers` of {}", table.label);
        let Some(headers) = self.cx.table(table, "headers", label) else {
            return Vec::new();
        };
        let mut list = Vec::new();
        let mut names: Vec<(String, usize)> = headers
            .keys()
            .map(|(name, at)| (name.to_owned(), at))
            .collect();
        names.sort_by_key(|(_, at)| *at);
        for (name, at) in names {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                self.cx.error(
                    at,
                    format!("`{name}` in {} is not a valid header name", headers.label),
                    Some("use letters, digits and `-`, e.g. \"X-Api-Key\"".to_owned()),
                );
                continue;
            }
            if let Some(value) = self.cx.string(&headers, &name) {
                if value
                    .text
                    .chars()
                    .any(|c| c == '\r' || c == '\n' || c == '\0')
                {
                    self.cx.error(
                        value.at,
                        format!("header `{name}` in {} contains a line break", headers.label),
                        Some("a header value is one line".to_owned()),
                    );
                    continue;
                }
                list.push((name, Secret::new(value.text)));
            }
        }
        list
    }

    /// `expect_json = { path = "status", equals = "ok" }`.
    fn expect_json(&mut self, table: &Table<'_, '_>) -> Option<ExpectJson> {
        let label = format!("`expect_json` of {}", table.label);
        let expect = self.cx.table(table, "expect_json", label)?;
        self.cx.check_fields(&expect, &["path", "equals"]);
        let path = self
            .cx
            .required_string(&expect, "path", "\"status.database\"");
        let equals = match expect.get("equals").map(|node| node.get_ref()) {
            None => {
                self.cx.missing(
                    &expect,
                    "equals",
                    Some("add the value expected at the path, e.g. `equals = \"ok\"`".to_owned()),
                );
                None
            }
            Some(DeValue::String(_)) => self
                .cx
                .string(&expect, "equals")
                .map(|value| JsonScalar::String(value.text)),
            Some(DeValue::Integer(_)) => self
                .cx
                .integer(&expect, "equals", i64::MIN, i64::MAX)
                .map(JsonScalar::Integer),
            Some(DeValue::Boolean(_)) => {
                self.cx.boolean(&expect, "equals").map(JsonScalar::Boolean)
            }
            Some(_) => {
                self.cx.error(
                    expect.key_at("equals"),
                    format!(
                        "`equals` in {} must be a string, an integer or a boolean",
                        expect.label
                    ),
                    None,
                );
                None
            }
        };
        let path = path?;
        if path.text.split('.').any(str::is_empty) {
            self.cx.error(
                path.at,
                format!("`path` in {} has an empty segment", expect.label),
                Some("separate keys with single dots: \"checks.0.status\"".to_owned()),
            );
            return None;
        }
        Some(ExpectJson {
            path: path.text,
            equals: equals?,
        })
    }

    fn http_check(&mut self, table: &Table<'_, '_>) -> Option<HttpCheck> {
        let probe = self.probe(table);
        let url = self
            .cx
            .required_string(table, "url", "\"https://example.com/healthz\"")
            .and_then(|url| self.checked(url, table, "url", check_http_url));
        let method = self
            .cx
            .choice(
                table,
                "method",
                &[
                    ("GET", HttpMethod::Get),
                    ("HEAD", HttpMethod::Head),
                    ("POST", HttpMethod::Post),
                    ("PUT", HttpMethod::Put),
                    ("PATCH", HttpMethod::Patch),
                    ("DELETE", HttpMethod::Delete),
                    ("OPTIONS", HttpMethod::Options),
                ],
            )
            .unwrap_or_default();
        let expect_status = if table.has("expect_status") {
            let mut patterns = Vec::new();
            for value in self
                .cx
                .string_list(table, "expect_status")
                .unwrap_or_default()
            {
                match parse_status_pattern(&value.text) {
                    Ok(pattern) => patterns.push(pattern),
                    Err(reason) => self.cx.error(
                        value.at,
                        format!("invalid `expect_status` in {}: {reason}", table.label),
                        Some("write codes or classes as strings: [\"200\", \"3xx\"]".to_owned()),
                    ),
                }
            }
            if patterns.is_empty() && table.is_empty_array("expect_status") {
                self.cx.error(
                    table.key_at("expect_status"),
                    format!("`expect_status` in {} is empty", table.label),
                    Some("list at least one status, or remove it to accept any 2xx".to_owned()),
                );
            }
            patterns
        } else {
            vec![StatusPattern::Class(2)]
        };
        let expect_body = self.cx.text(table, "expect_body").map(|body| body.text);
        let tls_expiry_warn_days = self
            .cx
            .integer(table, "tls_expiry_warn_days", 1, 365)
            .map(|days| days as u32);
        if let (Some(_), Some(url)) = (tls_expiry_warn_days, &url) {
            if !url.starts_with("https://") {
                self.cx.error(
                    table.key_at("tls_expiry_warn_days"),
                    format!(
                        "`tls_expiry_warn_days` in {} needs an https:// url",
                        table.label
                    ),
                    Some("remove it, or check the certificate of an https:// URL".to_owned()),
                );
            }
        }
        let expect_body_absent = self
            .cx
            .text(table, "expect_body_absent")
            .map(|body| body.text);
        let expect_json = self.expect_json(table);
        let headers = self.headers(table);
        let body = self.cx.string(table, "body").map(|body| body.text);
        let follow_redirects = self.cx.boolean(table, "follow_redirects").unwrap_or(true);
        let tls = self.tls_trust(table);
        if let (false, Some(url)) = (tls == TlsTrust::PublicRoots, &url) {
            if !url.starts_with("https://") {
                let key = if table.has("ca_file") {
                    "ca_file"
                } else {
                    "skip_tls_verify"
                };
                self.cx.error(
                    table.key_at(key),
                    format!("`{key}` in {} needs an https:// url", table.label),
                    Some("remove it, or use an https:// URL".to_owned()),
                );
            }
        }
        Some(HttpCheck {
            probe,
            url: url?,
            method,
            expect_status,
            expect_body,
            expect_body_absent,
            expect_json,
            headers,
            body,
            follow_redirects,
            tls_expiry_warn_days,
            tls,
        })
    }

    fn tcp_check(&mut self, table: &Table<'_, '_>) -> Option<TcpCheck> {
        let probe = self.probe(table);
        let address = self.address(table);
        let tls = self.cx.boolean(table, "tls").unwrap_or(false);
        let tls_trust = self.tls_trust(table);
        if !tls && tls_trust != TlsTrust::PublicRoots {
            let key = if table.has("ca_file") {
                "ca_file"
            } else {
                "skip_tls_verify"
            };
            self.cx.error(
                table.key_at(key),
                format!("`{key}` in {} only applies with `tls = true`", table.label),
                Some("add `tls = true`, or remove it".to_owned()),
            );
        }
        Some(TcpCheck {
            probe,
            address: address?,
            tls,
            tls_trust,
        })
    }

    fn tls_check(&mut self, table: &Table<'_, '_>) -> Option<TlsCheck> {
        let probe = self.probe(table);
        let address = self.address(table);
        let tls_expiry_warn_days = self
            .cx
            .integer(table, "tls_expiry_warn_days", 1, 365)
            .map_or(14, |days| days as u32);
        let tls_trust = self.tls_trust(table);
        Some(TlsCheck {
            probe,
            address: address?,
            tls_expiry_warn_days,
            tls_trust,
        })
    }

    fn address(&mut self, table: &Table<'_, '_>) -> Option<String> {
        self.cx
            .required_string(table, "address", "\"db.internal:5432\"")
            .and_then(|address| self.checked(address, table, "address", check_host_port))
    }

    fn dns_check(&mut self, table: &Table<'_, '_>) -> Option<DnsCheck> {
        let probe = self.probe(table);
        let name = self
            .cx
            .required_string(table, "name", "\"www.example.com\"")
            .and_then(|name| self.checked(name, table, "name", check_hostname));
        let record = self
            .cx
            .choice(
                table,
                "record",
                &[
                    ("A", DnsRecord::A),
                    ("AAAA", DnsRecord::Aaaa),
                    ("CNAME", DnsRecord::Cname),
                    ("MX", DnsRecord::Mx),
                    ("NS", DnsRecord::Ns),
                    ("TXT", DnsRecord::Txt),
                ],
            )
            .unwrap_or_default();
        let expect = self
            .cx
            .string_list(table, "expect")
            .unwrap_or_default()
            .into_iter()
            .map(|value| value.text)
            .collect();
        let resolver = self.cx.string(table, "resolver").and_then(|value| {
            let text = value.text.trim();
            let parsed = text
                .parse::<SocketAddr>()
                .ok()
                .or_else(|| text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)));
            if parsed.is_none() {
                self.cx.error(
                    value.at,
                    format!("invalid `resolver` in {}: `{text}` is not an IP address", table.label),
                    Some("write the DNS server as an IP address, with an optional port: \"1.1.1.1\", \"127.0.0.1:5353\", \"[::1]:53\"".to_owned()),
                );
            }
            parsed
        });
        Some(DnsCheck {
            probe,
            name: name?,
            record,
            expect,
            resolver,
        })
    }

    fn heartbeat_check(&mut self, table: &Table<'_, '_>) -> Option<HeartbeatCheck> {
        let expected = match (table.has("cron"), table.has("period")) {
            (false, false) => {
                self.cx.error(
                    table.at,
                    format!("{} needs `cron` or `period`", table.label),
                    Some(
                        "say when the job pings: `cron = \"0 3 * * *\"` for a schedule, or \
                         `period = \"1h\"` for \"at least every hour\""
                            .to_owned(),
                    ),
                );
                None
            }
            (true, true) => {
                self.cx.error(
                    table.key_at("period"),
                    format!("{} has both `cron` and `period`", table.label),
                    Some("keep one of them".to_owned()),
                );
                None
            }
            (true, false) => {
                let cron = self.cx.string(table, "cron").and_then(|value| {
                    match Cron::parse(&value.text) {
                        Ok(cron) => Some(cron),
                        Err(reason) => {
                            self.cx.error(
                                value.at,
                                format!(
                                    "invalid cron expression `{}` in {}: {reason}",
                                    value.text, table.label
                                ),
                                Some(Cron::SYNTAX.to_owned()),
                            );
                            None
                        }
                    }
                });
                let time_zone = self
                    .time_zone(table, "time_zone")
                    .unwrap_or_else(|| "UTC".to_owned());
                cron.map(|cron| HeartbeatSchedule::Cron { cron, time_zone })
            }
            (false, true) => {
                if table.has("time_zone") {
                    self.cx.error(
                        table.key_at("time_zone"),
                        format!("`time_zone` in {} only applies with `cron`", table.label),
                        Some("remove it; a period is the same in every time zone".to_owned()),
                    );
                }
                self.cx
                    .duration(table, "period", SECOND * 10, DAY * 366)
                    .map(HeartbeatSchedule::Period)
            }
        };
        let grace = self
            .cx
            .duration(table, "grace", SECOND, DAY * 7)
            .unwrap_or(Duration::from_secs(3600));
        let ping_key = self.ping_key(table);
        let max_starts_without_success = self
            .cx
            .integer(table, "max_starts_without_success", 1, 1000)
            .map(|count| count as u32);
        let post_only = self.cx.boolean(table, "post_only").unwrap_or(false);
        Some(HeartbeatCheck {
            expected: expected?,
            grace,
            ping_key: ping_key?,
            max_starts_without_success,
            post_only,
        })
    }

    fn ping_key(&mut self, table: &Table<'_, '_>) -> Option<Secret> {
        let value = self
            .cx
            .required_string(table, "ping_key", "\"${BACKUP_PING_KEY}\"")?;
        if let Err(reason) = check_ping_key(&value.text) {
            self.cx.error(
                value.at,
                format!("invalid `ping_key` in {}: {reason}", table.label),
                Some(format!("{KEY_HELP}, or use `uuidgen`")),
            );
            return None;
        }
        if let Some((owner, line)) = self.known.ping_keys.get(&value.text) {
            self.cx.error(
                value.at,
                format!(
                    "ping key of {} is already used by {owner} (line {line})",
                    table.label
                ),
                Some(format!(
                    "each heartbeat monitor needs its own key; {KEY_HELP}"
                )),
            );
            return None;
        }
        let line = self.cx.line(value.at);
        self.known
            .ping_keys
            .insert(value.text.clone(), (table.label.clone(), line));
        Some(Secret::new(value.text))
    }

    /// Runs a format check on a string value, reporting `invalid `key` in LABEL: reason`.
    fn checked(
        &mut self,
        value: Str,
        table: &Table<'_, '_>,
        key: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        match check(&value.text) {
            Ok(()) => Some(value.text),
            Err(reason) => {
                self.cx.error(
                    value.at,
                    format!("invalid `{key}` in {}: {reason}", table.label),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn rules(&mut self, root: &Table<'_, '_>) -> Vec<Rule> {
        let mut rules = Vec::new();
        for entry in self.entries(root, "rules") {
            let table = &entry.table;
            let kind =
                self.cx
                    .required_choice(table, "kind", &[("rate", "rate"), ("absence", "absence")]);
            self.cx.check_kind_fields(table, &RULE_FIELDS, kind);
            let service = self.service_reference(table);
            let matches = self.event_match(table);
            if !table.has("window") {
                self.cx.missing(
                    table,
                    "window",
                    Some("add e.g. `window = \"5m\"`".to_owned()),
                );
            }
            let window = self.cx.duration(table, "window", SECOND, DAY * 7);
            let kind = match kind {
                Some("rate") => {
                    if !table.has("above") {
                        self.cx.missing(
                            table,
                            "above",
                            Some("a rate rule fires above this many events per window; add e.g. `above = 100`".to_owned()),
                        );
                    }
                    let baseline = self.rate_baseline(table, window);
                    self.cx
                        .integer(table, "above", 1, 1_000_000_000)
                        .map(|above| RuleKind::Rate {
                            above: above as u64,
                            baseline,
                        })
                }
                Some(_) => Some(RuleKind::Absence),
                None => None,
            };
            if let (Some(id), Some(service), Some(kind), Some(window)) =
                (entry.id, service, kind, window)
            {
                rules.push(Rule {
                    id,
                    service,
                    kind,
                    matches,
                    window,
                });
            }
        }
        rules
    }

    /// `baseline = K` (and `baseline_window`, default 12 windows) of a rate rule.
    fn rate_baseline(
        &mut self,
        table: &Table<'_, '_>,
        window: Option<Duration>,
    ) -> Option<RateBaseline> {
        let factor = self.cx.integer(table, "baseline", 2, 1000)? as u32;
        let window = window?;
        let trailing = match self.cx.duration(table, "baseline_window", SECOND, DAY * 30) {
            Some(trailing) if trailing < window * 2 => {
                self.cx.error(
                    table.key_at("baseline_window"),
                    format!(
                        "`baseline_window` in {} must be at least twice `window`",
                        table.label
                    ),
                    Some("the baseline is the average over the windows before the current one; e.g. `baseline_window = \"1h\"` for a 5-minute window".to_owned()),
                );
                return None;
            }
            Some(trailing) => trailing,
            None if table.has("baseline_window") => return None,
            None => window.saturating_mul(12).min(DAY * 30),
        };
        Some(RateBaseline {
            factor,
            window: trailing,
        })
    }

    fn event_match(&mut self, rule: &Table<'_, '_>) -> EventMatch {
        let label = format!("`match` of {}", rule.label);
        let Some(table) = self.cx.table(rule, "match", label) else {
            return EventMatch::default();
        };
        self.cx.check_fields(&table, MATCH_FIELDS);
        let severities = [
            ("critical", tocsin_core::Severity::Critical),
            ("error", tocsin_core::Severity::Error),
            ("warning", tocsin_core::Severity::Warning),
            ("info", tocsin_core::Severity::Info),
        ];
        EventMatch {
            severity: self.cx.choice(&table, "severity", &severities),
            source: self.cx.text(&table, "source").map(|value| value.text),
            component: self.cx.text(&table, "component").map(|value| value.text),
            group: self.cx.text(&table, "group").map(|value| value.text),
            class: self.cx.text(&table, "class").map(|value| value.text),
        }
    }
}

/// A cycle through `start` along `depends_on`, as the ids from `start` back to it, if any.
fn find_cycle(start: &str, parents: &HashMap<&str, &[String]>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        parents: &HashMap<&str, &[String]>,
        path: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> bool {
        for parent in parents.get(at).copied().unwrap_or_default() {
            if parent == start {
                return true;
            }
            if seen.insert(parent.clone()) {
                path.push(parent.clone());
                if walk(parent, start, parents, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = HashSet::new();
    walk(start, start, parents, &mut path, &mut seen).then(|| {
        path.push(start.to_owned());
        path
    })
}
