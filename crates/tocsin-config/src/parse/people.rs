//! `[[users]]`, `[[teams]]`, `[[schedules]]` and `[[escalation_policies]]`.

use std::collections::HashMap;
use std::time::Duration;

use super::{is_valid_id, Parser, ID_HELP};
use crate::model::{
    ContactKind, ContactMethod, EscalationLevel, EscalationPolicy, Layer, NotifyRule, Role,
    Schedule, Target, Team, User,
};
use crate::reader::{KindFields, Str, Table};
use crate::suggest::help_with_suggestion;
use crate::values::{check_email, parse_restriction, RESTRICTION_HELP};

const USER_FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "time_zone",
    "role",
    "bot",
    "contact",
    "notify",
];
const CONTACT_FIELDS: KindFields<'static> = KindFields {
    noun: "contact method",
    common: &["id", "kind"],
    by_kind: &[
        ("email", &["address"]),
        ("webhook", &["url", "secret"]),
        ("ntfy", &["url"]),
        ("slack", &["url"]),
        ("console", &[]),
    ],
};
const NOTIFY_FIELDS: &[&str] = &["after_minutes", "contact"];
const TEAM_FIELDS: &[&str] = &["id", "name", "members"];
const SCHEDULE_FIELDS: &[&str] = &["id", "name", "time_zone", "layers"];
const LAYER_FIELDS: &[&str] = &["members", "rotation", "handoff", "only"];
const POLICY_FIELDS: &[&str] = &["id", "name", "repeat", "levels"];
const LEVEL_FIELDS: &[&str] = &["targets", "escalate_after_minutes", "round_robin"];

const BOT_HELP: &str = "bots can send events but can never be paged";
const TARGET_HELP: &str = "targets are written \"user:ID\", \"schedule:ID\" or \"team:ID\"";

impl Parser<'_, '_> {
    pub(super) fn users(&mut self, root: &Table<'_, '_>) -> Vec<User> {
        let mut users = Vec::new();
        for entry in self.entries(root, "users") {
            let table = &entry.table;
            self.cx.check_fields(table, USER_FIELDS);
            let bot = self.cx.boolean(table, "bot").unwrap_or(false);
            if let Some(id) = &entry.id {
                self.known.bots.insert(id.clone(), bot);
            }
            let name = self.name_or_id(table, entry.id.as_ref());
            let email = self.cx.string(table, "email").and_then(|email| {
                match check_email(&email.text, false) {
                    Ok(()) => Some(email.text),
                    Err(reason) => {
                        self.cx.error(
                            email.at,
                            format!("invalid `email` in {}: {reason}", table.label),
                            None,
                        );
                        None
                    }
                }
            });
            let time_zone = self
                .time_zone(table, "time_zone")
                .unwrap_or_else(|| "UTC".to_owned());
            let role = self
                .cx
                .choice(
                    table,
                    "role",
                    &[
                        ("admin", Role::Admin),
                        ("responder", Role::Responder),
                        ("viewer", Role::Viewer),
                    ],
                )
                .unwrap_or_default();
            if bot {
                for key in ["contact", "notify"] {
                    if table.has(key) {
                        self.cx.error(
                            table.key_at(key),
                            format!("{} is a bot but has `{key}`", table.label),
                            Some(format!(
                                "{BOT_HELP}, so they have no contact methods or notification \
                                 rules; remove `{key}`"
                            )),
                        );
                    }
                }
            }
            let (contact, declared) = self.contact_methods(table);
            let notify = self.notify_rules(table, &contact, &declared);
            if let Some(id) = entry.id {
                users.push(User {
                    id,
                    name,
                    email,
                    time_zone,
                    role,
                    bot,
                    contact,
                    notify,
                });
            }
        }
        users
    }

    /// The user's contact methods, and the ids of every declared one (valid or not), so that
    /// notify rules are not blamed for a contact method's own mistakes.
    fn contact_methods(&mut self, user: &Table<'_, '_>) -> (Vec<ContactMethod>, Vec<String>) {
        let mut methods = Vec::new();
        let mut declared = Vec::new();
        let mut first_lines: HashMap<String, usize> = HashMap::new();
        for (index, table) in self
            .cx
            .table_list(user, "contact", "contact method")
            .into_iter()
            .enumerate()
        {
            let table = table.with_label(format!("{}, contact method {}", user.label, index + 1));
            let id = self.cx.required_string(&table, "id", "\"mail\"");
            let id = id.and_then(|id| {
                if !is_valid_id(&id.text) {
                    self.cx.error(
                        id.at,
                        format!("invalid contact method id `{}` in {}", id.text, user.label),
                        Some(ID_HELP.to_owned()),
                    );
                    return None;
                }
                declared.push(id.text.clone());
                if let Some(first) = first_lines.get(&id.text) {
                    self.cx.error(
                        id.at,
                        format!(
                            "duplicate contact method id `{}` in {}: first defined at line {first}",
                            id.text, user.label
                        ),
                        Some("contact method ids must be unique for each user".to_owned()),
                    );
                    return None;
                }
                first_lines.insert(id.text.clone(), self.cx.line(id.at));
                Some(id.text)
            });
            let table = match &id {
                Some(id) => table.with_label(format!("contact method \"{id}\" of {}", user.label)),
                None => table,
            };
            let kind = self.cx.required_choice(
                &table,
                "kind",
                &[
                    ("email", "email"),
                    ("webhook", "webhook"),
                    ("ntfy", "ntfy"),
                    ("slack", "slack"),
                    ("console", "console"),
                ],
            );
            self.cx.check_kind_fields(&table, &CONTACT_FIELDS, kind);
            let kind = match kind {
                Some("email") => self
                    .cx
                    .required_string(&table, "address", "\"someone@example.com\"")
                    .and_then(|address| match check_email(&address.text, false) {
                        Ok(()) => Some(ContactKind::Email {
                            address: address.text,
                        }),
                        Err(reason) => {
                            self.cx.error(
                                address.at,
                                format!("invalid `address` in {}: {reason}", table.label),
                                None,
                            );
                            None
                        }
                    }),
                Some("webhook") => {
                    let url = self.required_url(&table, "url");
                    let secret = self.cx.secret(&table, "secret").map(|(secret, _)| secret);
                    url.map(|url| ContactKind::Webhook { url, secret })
                }
                Some("console") => Some(ContactKind::Console),
                Some("slack") => self
                    .required_url(&table, "url")
                    .map(|url| ContactKind::Slack { url }),
                Some(_) => self
                    .required_url(&table, "url")
                    .map(|url| ContactKind::Ntfy { url }),
                None => None,
            };
            if let Some(ContactKind::Email { .. }) = &kind {
                self.require_smtp(&table, "kind", "email contact methods");
            }
            if let (Some(id), Some(kind)) = (id, kind) {
                methods.push(ContactMethod { id, kind });
            }
        }
        (methods, declared)
    }

    fn notify_rules(
        &mut self,
        user: &Table<'_, '_>,
        methods: &[ContactMethod],
        declared: &[String],
    ) -> Vec<NotifyRule> {
        if !user.has("notify") {
            return methods
                .iter()
                .map(|method| NotifyRule {
                    after_minutes: 0,
                    contact: method.id.clone(),
                })
                .collect();
        }
        let mut rules = Vec::new();
        for (index, table) in self
            .cx
            .table_list(user, "notify", "notify rule")
            .into_iter()
            .enumerate()
        {
            let table = table.with_label(format!("{}, notify rule {}", user.label, index + 1));
            self.cx.check_fields(&table, NOTIFY_FIELDS);
            let after_minutes = self
                .cx
                .integer(&table, "after_minutes", 0, 1440)
                .map_or(0, |minutes| minutes as u32);
            let Some(contact) = self.cx.required_string(&table, "contact", "\"mail\"") else {
                continue;
            };
            if !declared.contains(&contact.text) {
                let list = if declared.is_empty() {
                    "this user has no contact methods; add `contact = [...]`".to_owned()
                } else {
                    format!("contact methods of this user: {}", declared.join(", "))
                };
                self.cx.error(
                    contact.at,
                    format!(
                        "{} refers to contact method `{}`, which is not defined",
                        table.label, contact.text
                    ),
                    Some(help_with_suggestion(
                        &contact.text,
                        declared.iter().map(String::as_str),
                        &list,
                    )),
                );
                continue;
            }
            rules.push(NotifyRule {
                after_minutes,
                contact: contact.text,
            });
        }
        rules
    }

    pub(super) fn teams(&mut self, root: &Table<'_, '_>) -> Vec<Team> {
        let mut teams = Vec::new();
        for entry in self.entries(root, "teams") {
            let table = &entry.table;
            self.cx.check_fields(table, TEAM_FIELDS);
            let name = self.name_or_id(table, entry.id.as_ref());
            let members = self.references(table, "members", "users");
            if let Some(id) = entry.id {
                self.known.team_members.insert(id.clone(), members.clone());
                teams.push(Team { id, name, members });
            }
        }
        teams
    }

    pub(super) fn schedules(&mut self, root: &Table<'_, '_>) -> Vec<Schedule> {
        let mut schedules = Vec::new();
        for entry in self.entries(root, "schedules") {
            let table = &entry.table;
            self.cx.check_fields(table, SCHEDULE_FIELDS);
            let name = self.name_or_id(table, entry.id.as_ref());
            let time_zone = self
                .time_zone(table, "time_zone")
                .unwrap_or_else(|| "UTC".to_owned());
            let layer_tables = self.cx.table_list(table, "layers", "layer");
            if !table.has("layers") {
                self.cx.missing(
                    table,
                    "layers",
                    Some(
                        "add a [[schedules.layers]] section with members, rotation and handoff"
                            .to_owned(),
                    ),
                );
            } else if table.is_empty_array("layers") {
                self.cx.error(
                    table.key_at("layers"),
                    format!("{} has no layers", table.label),
                    Some("add a layer with members, rotation and handoff".to_owned()),
                );
            }
            let mut layers = Vec::new();
            for (index, layer) in layer_tables.into_iter().enumerate() {
                let layer = layer.with_label(format!("{}, layer {}", table.label, index + 1));
                if let Some(layer) = self.layer(&layer) {
                    layers.push(layer);
                }
            }
            if let Some(id) = entry.id {
                schedules.push(Schedule {
                    id,
                    name,
                    time_zone,
                    layers,
                });
            }
        }
        schedules
    }

    fn layer(&mut self, table: &Table<'_, '_>) -> Option<Layer> {
        self.cx.check_fields(table, LAYER_FIELDS);
        if !table.has("members") {
            self.cx.missing(
                table,
                "members",
                Some("add `members = [\"user-id\", ...]`".to_owned()),
            );
        } else if table.is_empty_array("members") {
            self.cx.error(
                table.key_at("members"),
                format!("{} has no members", table.label),
                Some(
                    "list the users who take turns, e.g. `members = [\"ana\", \"ben\"]`".to_owned(),
                ),
            );
        }
        let values = self.cx.string_list(table, "members").unwrap_or_default();
        let mut members = Vec::with_capacity(values.len());
        for value in values {
            if !self.reference("users", &value, &table.label) {
                continue;
            }
            if self.known.bots.get(&value.text) == Some(&true) {
                self.cx.error(
                    value.at,
                    format!(
                        "bot `{}` is a member of {}: it would be paged when on call",
                        value.text, table.label
                    ),
                    Some(format!(
                        "{BOT_HELP}; remove `{}` from the layer or put a human in its place",
                        value.text
                    )),
                );
            }
            members.push(value.text);
        }
        if !table.has("rotation") {
            self.cx.missing(
                table,
                "rotation",
                Some("add e.g. `rotation = \"1w\"`".to_owned()),
            );
        }
        let rotation = self.cx.duration(
            table,
            "rotation",
            Duration::from_secs(60),
            Duration::from_secs(365 * 86_400),
        );
        if !table.has("handoff") {
            self.cx.missing(
                table,
                "handoff",
                Some(
                    "add the local date and time of the first hand-off, e.g. \
                     `handoff = \"2026-11-02T09:00\"`"
                        .to_owned(),
                ),
            );
        }
        let handoff = self.cx.civil_datetime(table, "handoff");
        let mut only = Vec::new();
        for value in self.cx.string_list(table, "only").unwrap_or_default() {
            match parse_restriction(&value.text) {
                Ok(restriction) => only.push(restriction),
                Err(reason) => self.cx.error(
                    value.at,
                    format!(
                        "invalid restriction `{}` in {}: {reason}",
                        value.text, table.label
                    ),
                    Some(RESTRICTION_HELP.to_owned()),
                ),
            }
        }
        Some(Layer {
            members,
            rotation: rotation?,
            handoff: handoff?,
            only,
        })
    }

    pub(super) fn escalation_policies(&mut self, root: &Table<'_, '_>) -> Vec<EscalationPolicy> {
        let mut policies = Vec::new();
        for entry in self.entries(root, "escalation_policies") {
            let table = &entry.table;
            self.cx.check_fields(table, POLICY_FIELDS);
            let name = self.name_or_id(table, entry.id.as_ref());
            let repeat = self
                .cx
                .integer(table, "repeat", 0, 9)
                .map_or(0, |repeat| repeat as u32);
            let level_tables = self.cx.table_list(table, "levels", "level");
            let levels_help = "add `levels = [{ targets = [\"schedule:ID\"], \
                               escalate_after_minutes = 5 }, { targets = [\"team:ID\"] }]`";
            if !table.has("levels") {
                self.cx
                    .missing(table, "levels", Some(levels_help.to_owned()));
            } else if table.is_empty_array("levels") {
                self.cx.error(
                    table.key_at("levels"),
                    format!("{} has no levels", table.label),
                    Some(levels_help.to_owned()),
                );
            }
            let count = level_tables.len();
            let mut levels = Vec::with_capacity(count);
            for (index, level) in level_tables.into_iter().enumerate() {
                let level = level.with_label(format!("{}, level {}", table.label, index + 1));
                levels.push(self.level(&level, index + 1 == count));
            }
            if let Some(id) = entry.id {
                policies.push(EscalationPolicy {
                    id,
                    name,
                    repeat,
                    levels,
                });
            }
        }
        policies
    }

    fn level(&mut self, table: &Table<'_, '_>, is_last: bool) -> EscalationLevel {
        self.cx.check_fields(table, LEVEL_FIELDS);
        if !table.has("targets") || table.is_empty_array("targets") {
            self.cx.error(
                table.at,
                format!("{} has no targets", table.label),
                Some(format!("add `targets = [...]`; {TARGET_HELP}")),
            );
        }
        let values = self.cx.string_list(table, "targets").unwrap_or_default();
        let targets = values
            .iter()
            .filter_map(|value| self.target(value, &table.label))
            .collect();
        let escalate_after_minutes = self
            .cx
            .integer(table, "escalate_after_minutes", 1, 1440)
            .map(|minutes| minutes as u32);
        if !is_last && !table.has("escalate_after_minutes") {
            self.cx.error(
                table.at,
                format!("{} does not say when to escalate", table.label),
                Some(
                    "add `escalate_after_minutes = N` (at least 1); only the last level may \
                     leave it out"
                        .to_owned(),
                ),
            );
        }
        let round_robin = self.cx.boolean(table, "round_robin").unwrap_or(false);
        EscalationLevel {
            targets,
            escalate_after_minutes,
            round_robin,
        }
    }

    /// `user:ID`, `schedule:ID` or `team:ID`, checked to exist and to reach only humans.
    fn target(&mut self, value: &Str, owner: &str) -> Option<Target> {
        let Some((prefix, id)) = value.text.split_once(':') else {
            let guess = ["users", "schedules", "teams"]
                .into_iter()
                .find(|section| self.is_defined(section, &value.text))
                .map(|section| {
                    format!(
                        "did you mean `{}:{}`? ",
                        &section[..section.len() - 1],
                        value.text
                    )
                })
                .unwrap_or_default();
            self.cx.error(
                value.at,
                format!("invalid escalation target `{}` in {owner}", value.text),
                Some(format!("{guess}{TARGET_HELP}")),
            );
            return None;
        };
        let section = match prefix {
            "user" => "users",
            "schedule" => "schedules",
            "team" => "teams",
            other => {
                self.cx.error(
                    value.at,
                    format!(
                        "invalid escalation target `{}` in {owner}: `{other}` is not a kind of target",
                        value.text
                    ),
                    Some(help_with_suggestion(
                        other,
                        ["user", "schedule", "team"],
                        TARGET_HELP,
                    )),
                );
                return None;
            }
        };
        let reference = Str {
            text: id.to_owned(),
            at: value.at,
        };
        if !self.reference(section, &reference, owner) {
            return None;
        }
        match prefix {
            "user" => {
                if self.known.bots.get(id) == Some(&true) {
                    self.cx.error(
                        value.at,
                        format!("{owner} targets bot `{id}`"),
                        Some(format!("{BOT_HELP}; remove `user:{id}` or target a human")),
                    );
                }
                Some(Target::User(id.to_owned()))
            }
            "team" => {
                let members = self.known.team_members.get(id).cloned().unwrap_or_default();
                if members.is_empty() && self.known.team_members.contains_key(id) {
                    self.cx.error(
                        value.at,
                        format!("{owner} targets team `{id}`, which has no members"),
                        Some("add members to the team or target someone else".to_owned()),
                    );
                }
                for member in members {
                    if self.known.bots.get(&member) == Some(&true) {
                        self.cx.error(
                            value.at,
                            format!(
                                "{owner} targets team `{id}`, which includes bot `{member}`: \
                                 the bot would be paged when the team is a target"
                            ),
                            Some(format!(
                                "{BOT_HELP}; remove `{member}` from team `{id}` or target a human"
                            )),
                        );
                    }
                }
                Some(Target::Team(id.to_owned()))
            }
            _ => Some(Target::Schedule(id.to_owned())),
        }
    }

    /// Email needs a mail relay; report `what` at `key` of `table` when there is none.
    pub(super) fn require_smtp(&mut self, table: &Table<'_, '_>, key: &str, what: &str) {
        if !self.known.has_smtp {
            self.cx.error(
                table.key_at(key),
                format!("{} uses email, but there is no [smtp] section", table.label),
                Some(format!(
                    "{what} are sent through [smtp]; add it with host, port and from"
                )),
            );
        }
    }
}
