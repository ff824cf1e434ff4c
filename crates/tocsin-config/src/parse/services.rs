//! `[[channels]]` and `[[services]]`.

use super::Parser;
use crate::model::{Channel, ChannelKind, GrafanaIntegration, ResolveMode, Service};
use crate::reader::{KindFields, Table};
use crate::secret::Secret;
use crate::values::{check_email, check_header_name, check_integration_key, KEY_HELP};

const CHANNEL_FIELDS: KindFields<'static> = KindFields {
    noun: "channel",
    common: &["id", "kind"],
    by_kind: &[
        ("slack", &["url"]),
        ("mattermost", &["url"]),
        ("discord", &["url"]),
        ("teams", &["url"]),
        ("ntfy", &["url"]),
        ("webhook", &["url", "secret"]),
        ("email", &["to"]),
    ],
};
const CHANNEL_KINDS: &[(&str, &str)] = &[
    ("slack", "slack"),
    ("mattermost", "mattermost"),
    ("discord", "discord"),
    ("teams", "teams"),
    ("ntfy", "ntfy"),
    ("webhook", "webhook"),
    ("email", "email"),
];
const SERVICE_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "team",
    "escalation_policy",
    "components",
    "channels",
    "integration_keys",
    "resolve",
    "grafana",
    "depends_on",
    "ack_timeout_minutes",
];
/// The longest acknowledgement timeout: a week.
const MAX_ACK_TIMEOUT_MINUTES: i64 = 7 * 24 * 60;
const GRAFANA_FIELDS: &[&str] = &["secret", "timestamp_header"];

impl Parser<'_, '_> {
    pub(super) fn channels(&mut self, root: &Table<'_, '_>) -> Vec<Channel> {
        let mut channels = Vec::new();
        for entry in self.entries(root, "channels") {
            let table = &entry.table;
            let kind = self.cx.required_choice(table, "kind", CHANNEL_KINDS);
            self.cx.check_kind_fields(table, &CHANNEL_FIELDS, kind);
            let kind = match kind {
                Some("email") => {
                    self.require_smtp(table, "kind", "email channels");
                    self.recipients(table).map(|to| ChannelKind::Email { to })
                }
                Some("webhook") => {
                    let url = self.required_url(table, "url");
                    let secret = self.cx.secret(table, "secret").map(|(secret, _)| secret);
                    url.map(|url| ChannelKind::Webhook { url, secret })
                }
                Some(kind) => self.required_url(table, "url").map(|url| match kind {
                    "slack" => ChannelKind::Slack { url },
                    "mattermost" => ChannelKind::Mattermost { url },
                    "discord" => ChannelKind::Discord { url },
                    "teams" => ChannelKind::Teams { url },
                    _ => ChannelKind::Ntfy { url },
                }),
                None => None,
            };
            if let (Some(id), Some(kind)) = (entry.id, kind) {
                channels.push(Channel { id, kind });
            }
        }
        channels
    }

    fn recipients(&mut self, table: &Table<'_, '_>) -> Option<Vec<String>> {
        if !table.has("to") || table.is_empty_array("to") {
            self.cx.error(
                table.key_at("to"),
                format!("{} has no recipients", table.label),
                Some("add `to = [\"oncall@acme.example\"]`".to_owned()),
            );
            return None;
        }
        let mut recipients = Vec::new();
        for value in self.cx.string_list(table, "to")? {
            match check_email(&value.text, true) {
                Ok(()) => recipients.push(value.text),
                Err(reason) => self.cx.error(
                    value.at,
                    format!("invalid recipient in `to` of {}: {reason}", table.label),
                    None,
                ),
            }
        }
        Some(recipients)
    }

    pub(super) fn services(&mut self, root: &Table<'_, '_>) -> Vec<Service> {
        let mut services = Vec::new();
        let mut dependency_positions = std::collections::HashMap::new();
        for entry in self.entries(root, "services") {
            let table = &entry.table;
            self.cx.check_fields(table, SERVICE_FIELDS);
            let name = self.name_or_id(table, entry.id.as_ref());
            let description = self.cx.text(table, "description").map(|value| value.text);
            let team = self
                .cx
                .string(table, "team")
                .filter(|team| self.reference("teams", team, &table.label))
                .map(|team| team.text);
            let escalation_policy = self
                .cx
                .string(table, "escalation_policy")
                .filter(|policy| self.reference("escalation_policies", policy, &table.label))
                .map(|policy| policy.text);
            let components = self.references(table, "components", "components");
            let channels = self.references(table, "channels", "channels");
            let integration_keys = self.integration_keys(table);
            let resolve = self
                .cx
                .choice(
                    table,
                    "resolve",
                    &[("auto", ResolveMode::Auto), ("manual", ResolveMode::Manual)],
                )
                .unwrap_or_default();
            let grafana = self.grafana(table);
            let depends_on = self.references(table, "depends_on", "services");
            let ack_timeout_minutes = self
                .cx
                .integer(table, "ack_timeout_minutes", 1, MAX_ACK_TIMEOUT_MINUTES)
                .map(|minutes| minutes as u32);
            if let Some(id) = entry.id {
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
                services.push(Service {
                    id,
                    name,
                    team,
                    escalation_policy,
                    components,
                    channels,
                    integration_keys,
                    resolve,
                    grafana,
                    description,
                    depends_on,
                    ack_timeout_minutes,
                });
            }
        }
        let links: Vec<(&str, &[String])> = services
            .iter()
            .map(|service| (service.id.as_str(), service.depends_on.as_slice()))
            .collect();
        self.dependency_cycles(&links, &dependency_positions, "service");
        services
    }

    fn integration_keys(&mut self, service: &Table<'_, '_>) -> Vec<Secret> {
        let mut keys = Vec::new();
        for value in self
            .cx
            .string_list(service, "integration_keys")
            .unwrap_or_default()
        {
            if let Err(reason) = check_integration_key(&value.text) {
                self.cx.error(
                    value.at,
                    format!("invalid integration key in {}: {reason}", service.label),
                    Some(KEY_HELP.to_owned()),
                );
                continue;
            }
            let line = self.cx.line(value.at);
            if let Some((owner, first_line)) = self.known.integration_keys.get(&value.text) {
                let message = if *owner == service.label {
                    format!(
                        "{} lists the same integration key twice (first at line {first_line})",
                        service.label
                    )
                } else {
                    format!(
                        "integration key of {} is already used by {owner} (line {first_line})",
                        service.label
                    )
                };
                self.cx.error(
                    value.at,
                    message,
                    Some(format!(
                        "a key routes events to exactly one service; {KEY_HELP}"
                    )),
                );
                continue;
            }
            self.known
                .integration_keys
                .insert(value.text.clone(), (service.label.clone(), line));
            keys.push(Secret::new(value.text));
        }
        keys
    }

    fn grafana(&mut self, service: &Table<'_, '_>) -> Option<GrafanaIntegration> {
        let label = format!("`grafana` of {}", service.label);
        let table = self.cx.table(service, "grafana", label)?;
        self.cx.check_fields(&table, GRAFANA_FIELDS);
        if !table.has("secret") {
            self.cx.missing(
                &table,
                "secret",
                Some(
                    "add the contact point's HMAC secret, e.g. `secret = \"${GRAFANA_SECRET}\"`"
                        .to_owned(),
                ),
            );
        }
        let secret = self.cx.secret(&table, "secret").and_then(|(secret, at)| {
            if secret.expose().is_empty() {
                self.cx
                    .error(at, format!("`secret` in {} is empty", table.label), None);
                None
            } else {
                Some(secret)
            }
        });
        let timestamp_header = self
            .cx
            .string(&table, "timestamp_header")
            .and_then(|header| match check_header_name(&header.text) {
                Ok(()) => Some(header.text),
                Err(reason) => {
                    self.cx.error(
                        header.at,
                        format!("invalid `timestamp_header` in {}: {reason}", table.label),
                        Some("Grafana sends X-Grafana-Alerting-Signature-Timestamp".to_owned()),
                    );
                    None
                }
            });
        Some(GrafanaIntegration {
            secret: secret?,
            timestamp_header,
        })
    }
}
