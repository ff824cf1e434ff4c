//! `[[monitors]]` and `[[rules]]`.

use std::time::Duration;

use super::Parser;
use crate::model::{
    DnsCheck, DnsRecord, EventMatch, HeartbeatCheck, HeartbeatSchedule, HttpCheck, HttpMethod,
    Monitor, MonitorKind, Probe, RateBaseline, Rule, RuleKind, StatusPattern, TcpCheck, TlsCheck,
};
use crate::reader::{KindFields, Str, Table};
use crate::secret::Secret;
use crate::values::{
    check_host_port, check_hostname, check_http_url, check_ping_key, parse_status_pattern, KEY_HELP,
};
use tocsin_core::Cron;

const PROBE: [&str; 4] = ["interval", "timeout", "confirm", "degraded_above_ms"];
const MONITOR_FIELDS: KindFields<'static> = KindFields {
    noun: "monitor",
    common: &["id", "service", "kind"],
    by_kind: &[
        (
            "http",
            &[
                "url",
                "method",
                "expect_status",
                "expect_body",
                "tls_expiry_warn_days",
                PROBE[0],
                PROBE[1],
                PROBE[2],
                PROBE[3],
            ],
        ),
        ("tcp", &["address", PROBE[0], PROBE[1], PROBE[2], PROBE[3]]),
        (
            "dns",
            &[
                "name", "record", "expect", PROBE[0], PROBE[1], PROBE[2], PROBE[3],
            ],
        ),
        (
            "tls",
            &[
                "address",
                "tls_expiry_warn_days",
                PROBE[0],
                PROBE[1],
                PROBE[2],
                PROBE[3],
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
            if let (Some(id), Some(service), Some(kind)) = (entry.id, service, kind) {
                monitors.push(Monitor { id, service, kind });
            }
        }
        monitors
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
            .map_or(2, |confirm| confirm as u32);
        let degraded_above = self
            .cx
            .integer(table, "degraded_above_ms", 1, 600_000)
            .map(|millis| Duration::from_millis(millis as u64));
        Probe {
            interval,
            timeout,
            confirm,
            degraded_above,
        }
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
        Some(HttpCheck {
            probe,
            url: url?,
            method,
            expect_status,
            expect_body,
            tls_expiry_warn_days,
        })
    }

    fn tcp_check(&mut self, table: &Table<'_, '_>) -> Option<TcpCheck> {
        let probe = self.probe(table);
        let address = self.address(table)?;
        Some(TcpCheck { probe, address })
    }

    fn tls_check(&mut self, table: &Table<'_, '_>) -> Option<TlsCheck> {
        let probe = self.probe(table);
        let address = self.address(table);
        let tls_expiry_warn_days = self
            .cx
            .integer(table, "tls_expiry_warn_days", 1, 365)
            .map_or(14, |days| days as u32);
        Some(TlsCheck {
            probe,
            address: address?,
            tls_expiry_warn_days,
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
        Some(DnsCheck {
            probe,
            name: name?,
            record,
            expect,
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
