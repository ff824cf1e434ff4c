//! From source text to a validated [`Config`], collecting every error on the way.
//!
//! Sections are read in dependency order (users before the teams that list them, teams before
//! the escalation policies that target them, ...), so every reference is checked at the
//! moment it is read, with its own position in the file.

mod monitors;
mod people;
mod server;
mod services;

pub(crate) use server::{check_database_url, normalize_public_url, DATABASE_HELP, LISTEN_HELP};

use std::collections::HashMap;
use std::path::Path;

use toml::de::DeTable;

use crate::error::ConfigErrors;
use crate::model::Config;
use crate::reader::{Ctx, Str, Table};

/// The top-level sections, in the order they are documented.
const SECTIONS: &[&str] = &[
    "server",
    "ingest",
    "smtp",
    "watchdog",
    "users",
    "teams",
    "schedules",
    "escalation_policies",
    "channels",
    "services",
    "monitors",
    "rules",
    "status_page",
    "components",
];

/// Ids are used in URLs and in references like `user:ana`.
const ID_HELP: &str = "ids are 1 to 64 letters, digits, `.`, `_` and `-`, starting with a \
     letter or digit";

pub(crate) fn parse_document(
    source: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let (document, syntax_errors) = DeTable::parse_recoverable(source);
    let mut cx = Ctx::new(source, origin, env);
    if let Some(error) = syntax_errors
        .iter()
        .min_by_key(|error| error.span().map_or(0, |span| span.start))
    {
        // After a syntax error the recovered tree is incomplete, and what follows the mistake
        // is read out of step with what was meant: every later "error" is an echo of the first.
        // So the first one is reported alone, with where the construct it broke was opened.
        let at = error.span().map_or(0, |span| span.start);
        let message = error.message().trim().to_owned();
        let help = if message.starts_with("duplicate key") {
            Some(
                "a key may appear once per table; for a list of entries use `[[section]]` \
                 headers"
                    .to_owned(),
            )
        } else {
            unclosed_before(source, at).map(|(opener, offset)| {
                let (line, column) = line_and_column(source, offset);
                let closer = if opener == '[' { ']' } else { '}' };
                format!(
                    "the `{opener}` opened at line {line}, column {column} is not closed before \
                     this point: add the missing `{closer}` there"
                )
            })
        };
        cx.error(at, format!("invalid TOML: {message}"), help);
        return Err(ConfigErrors::sorted(cx.errors));
    }
    let root = Table::root(document.get_ref());
    let mut parser = Parser {
        cx,
        known: Known::default(),
        base_dir,
    };
    let config = parser.document(&root);
    if parser.cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors::sorted(parser.cx.errors))
    }
}

/// What has been declared so far, for checking references and duplicates.
#[derive(Default)]
struct Known {
    /// Section name → id → line of its first definition.
    ids: HashMap<&'static str, HashMap<String, usize>>,
    /// User id → is a bot.
    bots: HashMap<String, bool>,
    /// Team id → member user ids.
    team_members: HashMap<String, Vec<String>>,
    /// Integration key → (label of the service that uses it, line).
    integration_keys: HashMap<String, (String, usize)>,
    /// Ping key → (label of the monitor that uses it, line).
    ping_keys: HashMap<String, (String, usize)>,
    has_smtp: bool,
}

struct Parser<'s, 'p> {
    cx: Ctx<'s>,
    known: Known,
    base_dir: Option<&'p Path>,
}

/// One entry of a `[[section]]` list. `id` is `None` when it is missing, invalid or a
/// duplicate; the entry's other fields are still checked, but it is not added to the model.
struct Entry<'t, 'i> {
    table: Table<'t, 'i>,
    id: Option<String>,
}

fn noun(section: &str) -> &'static str {
    match section {
        "users" => "user",
        "teams" => "team",
        "schedules" => "schedule",
        "escalation_policies" => "escalation policy",
        "channels" => "channel",
        "services" => "service",
        "monitors" => "monitor",
        "rules" => "rule",
        "components" => "component",
        _ => "entry",
    }
}

fn plural(section: &str) -> &'static str {
    match section {
        "escalation_policies" => "escalation policies",
        "users" => "users",
        "teams" => "teams",
        "schedules" => "schedules",
        "channels" => "channels",
        "services" => "services",
        "monitors" => "monitors",
        "rules" => "rules",
        "components" => "components",
        _ => "entries",
    }
}

fn is_valid_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl<'s> Parser<'s, '_> {
    fn document(&mut self, root: &Table<'_, '_>) -> Config {
        self.check_top_level(root);
        let server = self.server(root);
        let ingest = self.ingest(root);
        let smtp = self.smtp(root);
        let watchdog = self.watchdog(root);
        let users = self.users(root);
        let teams = self.teams(root);
        let schedules = self.schedules(root);
        let escalation_policies = self.escalation_policies(root);
        let components = self.components(root);
        let channels = self.channels(root);
        let services = self.services(root);
        let monitors = self.monitors(root);
        let rules = self.rules(root);
        let status_page = self.status_page(root);
        Config {
            server,
            ingest,
            smtp,
            watchdog,
            users,
            teams,
            schedules,
            escalation_policies,
            channels,
            services,
            monitors,
            rules,
            status_page,
            components,
        }
    }

    fn check_top_level(&mut self, root: &Table<'_, '_>) {
        for (key, at) in root.keys() {
            if SECTIONS.contains(&key) {
                continue;
            }
            let list = format!("sections: {}", SECTIONS.join(", "));
            self.cx.error(
                at,
                format!("unknown section `{key}`"),
                Some(crate::suggest::help_with_suggestion(
                    key,
                    SECTIONS.iter().copied(),
                    &list,
                )),
            );
        }
    }

    /// The entries of a `[[section]]` list, each with its id read, checked and registered.
    fn entries<'t, 'i>(
        &mut self,
        root: &Table<'t, 'i>,
        section: &'static str,
    ) -> Vec<Entry<'t, 'i>> {
        let tables = self.cx.table_list(root, section, "");
        let mut entries = Vec::with_capacity(tables.len());
        for (index, table) in tables.into_iter().enumerate() {
            let fallback = format!("[[{section}]] #{}", index + 1);
            let table = table.with_label(fallback);
            let id = self.cx.required_string(&table, "id", "\"some-id\"");
            let Some(id) = id else {
                entries.push(Entry { table, id: None });
                continue;
            };
            let table = table.with_label(format!("[[{section}]] \"{}\"", id.text));
            let id = self.register(section, &id).then_some(id.text);
            entries.push(Entry { table, id });
        }
        entries
    }

    /// Checks an id's format and uniqueness within `section` and records it.
    fn register(&mut self, section: &'static str, id: &Str) -> bool {
        if !is_valid_id(&id.text) {
            self.cx.error(
                id.at,
                format!("invalid {} id `{}`", noun(section), id.text),
                Some(ID_HELP.to_owned()),
            );
            return false;
        }
        let line = self.cx.line(id.at);
        let ids = self.known.ids.entry(section).or_default();
        if let Some(first) = ids.get(&id.text) {
            let first = *first;
            self.cx.error(
                id.at,
                format!(
                    "duplicate {} id `{}`: first defined at line {first}",
                    noun(section),
                    id.text
                ),
                Some(format!(
                    "ids must be unique among {}; rename or remove one of them",
                    plural(section)
                )),
            );
            return false;
        }
        ids.insert(id.text.clone(), line);
        true
    }

    fn is_defined(&self, section: &str, id: &str) -> bool {
        self.known
            .ids
            .get(section)
            .is_some_and(|ids| ids.contains_key(id))
    }

    /// Checks that `reference` names a defined entry of `section`; `owner` is the label of the
    /// table that holds the reference.
    fn reference(&mut self, section: &'static str, reference: &Str, owner: &str) -> bool {
        if self.is_defined(section, &reference.text) {
            return true;
        }
        let empty = HashMap::new();
        let defined = self.known.ids.get(section).unwrap_or(&empty);
        self.cx.unknown_reference(
            reference.at,
            format!(
                "{owner} refers to {} `{}`, which is not defined",
                noun(section),
                reference.text
            ),
            plural(section),
            section,
            &reference.text,
            defined.keys().map(String::as_str),
        );
        false
    }

    /// A list of references to `section`; only the valid ones are returned.
    fn references(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        section: &'static str,
    ) -> Vec<String> {
        let values = self.cx.string_list(table, key).unwrap_or_default();
        values
            .into_iter()
            .filter(|value| self.reference(section, value, &table.label))
            .map(|value| value.text)
            .collect()
    }

    /// An IANA time zone name, checked against the time zone database.
    fn time_zone(&mut self, table: &Table<'_, '_>, key: &str) -> Option<String> {
        let value = self.cx.string(table, key)?;
        if let Ok(time_zone) = jiff::tz::TimeZone::get(&value.text) {
            // The database matches names case-insensitively; keep its spelling.
            return Some(time_zone.iana_name().unwrap_or(&value.text).to_owned());
        }
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|name| name.as_str().to_owned())
            .collect();
        let rest = "use an IANA time zone name such as \"Europe/Lisbon\", \
                    \"America/Los_Angeles\" or \"UTC\"";
        self.cx.error(
            value.at,
            format!(
                "unknown time zone `{}` for `{key}` in {}",
                value.text, table.label
            ),
            Some(crate::suggest::help_with_suggestion(
                &value.text,
                names.iter().map(String::as_str),
                rest,
            )),
        );
        None
    }

    /// A required URL that may carry a token, so it is kept as a [`Secret`] and never shown.
    fn required_url(&mut self, table: &Table<'_, '_>, key: &str) -> Option<crate::secret::Secret> {
        if !table.has(key) {
            self.cx.missing(
                table,
                key,
                Some(format!(
                    "add `{key} = \"${{SOME_WEBHOOK_URL}}\"` (from the environment keeps it out of the file)"
                )),
            );
            return None;
        }
        let (url, at) = self.cx.secret(table, key)?;
        match crate::values::check_http_url(url.expose()) {
            Ok(()) => Some(url),
            Err(reason) => {
                self.cx.error(
                    at,
                    format!("invalid `{key}` in {}: {reason}", table.label),
                    None,
                );
                None
            }
        }
    }

    /// `name`, defaulting to the id.
    fn name_or_id(&mut self, table: &Table<'_, '_>, id: Option<&String>) -> String {
        match self.cx.text(table, "name") {
            Some(name) => name.text,
            None => id.cloned().unwrap_or_default(),
        }
    }
}

/// The innermost `[` or `{` still open at byte `end` of `source` (outside strings and
/// comments), with its byte offset.
fn unclosed_before(source: &str, end: usize) -> Option<(char, usize)> {
    let text = source.get(..end).unwrap_or(source);
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            '#' => {
                for (_, next) in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' => {
                let triple = text[offset..].starts_with(if c == '"' { "\"\"\"" } else { "\'\'\'" });
                if triple {
                    chars.next();
                    chars.next();
                }
                let mut escaped = false;
                while let Some((at, next)) = chars.next() {
                    if escaped {
                        escaped = false;
                    } else if next == '\\' && c == '"' {
                        escaped = true;
                    } else if next == c {
                        let closing = !triple
                            || text[at..].starts_with(if c == '"' { "\"\"\"" } else { "\'\'\'" });
                        if closing {
                            if triple {
                                chars.next();
                                chars.next();
                            }
                            break;
                        }
                    } else if next == '\n' && !triple {
                        break;
                    }
                }
            }
            '[' | '{' => open.push((c, offset)),
            ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// 1-based line and column (in characters) of byte `offset` of `source`.
fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}
