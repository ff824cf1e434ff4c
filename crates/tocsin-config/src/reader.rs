//! Reading typed values out of the spanned TOML tree while collecting every error.
//!
//! Each getter returns `None` when the value is missing or wrong and has then already recorded
//! an error, so callers simply skip what they cannot build and go on to the next field.

use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::duration::{format_duration, parse_duration, DURATION_HELP};
use crate::error::ConfigError;
use crate::interpolate::interpolate;
use crate::secret::Secret;
use crate::suggest::{closest, help_with_suggestion};

pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// The parsing context: where errors go and how positions and `${NAME}` are resolved.
pub(crate) struct Ctx<'s> {
    source: &'s str,
    line_starts: Vec<usize>,
    origin: &'s str,
    env: &'s dyn Fn(&str) -> Option<String>,
    pub(crate) errors: Vec<ConfigError>,
}

/// A string value after interpolation, with the byte offset of its literal in the file.
#[derive(Debug, Clone)]
pub(crate) struct Str {
    pub(crate) text: String,
    pub(crate) at: usize,
}

/// A table of the document with a label that names it in messages, like
/// `[[services]] "checkout-api"`.
#[derive(Clone)]
pub(crate) struct Table<'t, 'i> {
    entries: &'t DeTable<'i>,
    pub(crate) at: usize,
    pub(crate) label: String,
}

/// Field names allowed in a table whose fields depend on its `kind`.
pub(crate) struct KindFields<'a> {
    /// The noun for one of these tables, e.g. `monitor`.
    pub(crate) noun: &'a str,
    pub(crate) common: &'a [&'a str],
    pub(crate) by_kind: &'a [(&'a str, &'a [&'a str])],
}

impl<'t, 'i> Table<'t, 'i> {
    pub(crate) fn root(entries: &'t DeTable<'i>) -> Self {
        Table {
            entries,
            at: 0,
            label: "the top level".to_owned(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'t Node<'i>> {
        self.entries
            .iter()
            .find(|(name, _)| name.get_ref() == key)
            .map(|(_, value)| value)
    }

    /// Every key with its offset in the file.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&'t str, usize)> + 't {
        self.entries
            .iter()
            .map(|(name, _)| (name.get_ref().as_ref(), name.span().start))
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Whether `key` holds an empty array.
    pub(crate) fn is_empty_array(&self, key: &str) -> bool {
        matches!(self.get(key).map(Spanned::get_ref), Some(DeValue::Array(items)) if items.is_empty())
    }

    /// The offset of `key` in the file, or of the table when the key is absent.
    pub(crate) fn key_at(&self, key: &str) -> usize {
        self.entries
            .iter()
            .find(|(name, _)| name.get_ref() == key)
            .map_or(self.at, |(name, _)| name.span().start)
    }

    pub(crate) fn with_label(mut self, label: String) -> Self {
        self.label = label;
        self
    }
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(
        source: &'s str,
        origin: &'s str,
        env: &'s dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, byte)| *byte == b'\n')
                .map(|(index, _)| index + 1),
        );
        Ctx {
            source,
            line_starts,
            origin,
            env,
            errors: Vec::new(),
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.source[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    pub(crate) fn error(&mut self, at: usize, message: impl Into<String>, help: Option<String>) {
        let (line, column) = self.position(at);
        self.errors.push(ConfigError {
            file: self.origin.to_owned(),
            line,
            column,
            message: message.into(),
            help,
        });
    }

    // ------------------------------------------------------------------ fields

    /// Reports every key of `table` that is not in `allowed`.
    pub(crate) fn check_fields(&mut self, table: &Table<'_, '_>, allowed: &[&str]) {
        for (key, _) in table.entries.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let list = format!("allowed fields: {}", allowed.join(", "));
            self.error(
                key.span().start,
                format!("unknown field `{name}` in {}", table.label),
                Some(help_with_suggestion(name, allowed.iter().copied(), &list)),
            );
        }
    }

    /// Like [`Ctx::check_fields`] for tables whose fields depend on `kind`. With an unknown
    /// kind, fields of every kind are accepted so one mistake does not cause a dozen errors.
    pub(crate) fn check_kind_fields(
        &mut self,
        table: &Table<'_, '_>,
        fields: &KindFields<'_>,
        kind: Option<&str>,
    ) {
        let specific = kind.and_then(|kind| {
            fields
                .by_kind
                .iter()
                .find(|(name, _)| *name == kind)
                .map(|(name, specific)| (*name, *specific))
        });
        let Some((kind, specific)) = specific else {
            let mut allowed: Vec<&str> = fields.common.to_vec();
            for (_, specific) in fields.by_kind {
                allowed.extend(specific.iter().copied());
            }
            self.check_fields(table, &allowed);
            return;
        };
        let allowed: Vec<&str> = fields.common.iter().chain(specific).copied().collect();
        for (key, _) in table.entries.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let list = format!("fields of {kind} {}s: {}", fields.noun, allowed.join(", "));
            let other_kinds: Vec<&str> = fields
                .by_kind
                .iter()
                .filter(|(_, specific)| specific.contains(&name))
                .map(|(kind, _)| *kind)
                .collect();
            if other_kinds.is_empty() {
                self.error(
                    key.span().start,
                    format!("unknown field `{name}` in {}", table.label),
                    Some(help_with_suggestion(name, allowed.iter().copied(), &list)),
                );
            } else {
                self.error(
                    key.span().start,
                    format!(
                        "field `{name}` does not apply to {kind} {}s (it belongs to kind {})",
                        fields.noun,
                        other_kinds.join(", ")
                    ),
                    Some(format!("remove it or change `kind`; {list}")),
                );
            }
        }
    }

    pub(crate) fn missing(&mut self, table: &Table<'_, '_>, key: &str, help: Option<String>) {
        self.error(
            table.at,
            format!("missing required field `{key}` in {}", table.label),
            help,
        );
    }

    fn wrong_type(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        node: &Node<'_>,
        expected: &str,
        help: Option<String>,
    ) {
        self.error(
            node.span().start,
            format!(
                "wrong type for `{key}` in {}: expected {expected}, found {}",
                table.label,
                type_name(node.get_ref())
            ),
            help,
        );
    }

    // ------------------------------------------------------------------ scalars

    /// Interpolates a string node; `None` (after reporting) when it is not a string or names
    /// an unset variable.
    fn string_node(&mut self, node: &Node<'_>) -> Option<Str> {
        let DeValue::String(raw) = node.get_ref() else {
            return None;
        };
        let at = node.span().start;
        match interpolate(raw, self.env) {
            Ok(text) => Some(Str { text, at }),
            Err(errors) => {
                for error in errors {
                    self.error(at, error.message, Some(error.help));
                }
                None
            }
        }
    }

    pub(crate) fn string(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Str> {
        let node = table.get(key)?;
        if !matches!(node.get_ref(), DeValue::String(_)) {
            let help = match node.get_ref() {
                DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                    Some("put the value in double quotes".to_owned())
                }
                DeValue::Array(_) => Some(format!("`{key}` takes one value, not a list")),
                _ => None,
            };
            self.wrong_type(table, key, node, "a string", help);
            return None;
        }
        self.string_node(node)
    }

    pub(crate) fn required_string(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<Str> {
        if !table.has(key) {
            self.missing(table, key, Some(format!("add `{key} = {example}`")));
            return None;
        }
        self.string(table, key)
    }

    /// A string that must not be empty.
    pub(crate) fn text(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Str> {
        let value = self.string(table, key)?;
        if value.text.trim().is_empty() {
            self.error(
                value.at,
                format!("`{key}` in {} is empty", table.label),
                Some(format!("write a value or remove `{key}`")),
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn secret(&mut self, table: &Table<'_, '_>, key: &str) -> Option<(Secret, usize)> {
        self.string(table, key)
            .map(|value| (Secret::new(value.text), value.at))
    }

    pub(crate) fn boolean(&mut self, table: &Table<'_, '_>, key: &str) -> Option<bool> {
        let node = table.get(key)?;
        match node.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                self.wrong_type(
                    table,
                    key,
                    node,
                    "a boolean",
                    Some("write true or false, without quotes".to_owned()),
                );
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub(crate) fn integer(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let node = table.get(key)?;
        let value = match node.get_ref() {
            DeValue::Integer(integer) => {
                i64::from_str_radix(integer.as_str(), integer.radix()).ok()
            }
            DeValue::String(text) if text.trim().parse::<i64>().is_ok() => {
                self.wrong_type(
                    table,
                    key,
                    node,
                    "an integer",
                    Some("remove the quotes".to_owned()),
                );
                return None;
            }
            _ => {
                self.wrong_type(table, key, node, "an integer", None);
                return None;
            }
        };
        match value {
            Some(value) if (min..=max).contains(&value) => Some(value),
            _ => {
                let shown = match node.get_ref() {
                    DeValue::Integer(integer) => integer.to_string(),
                    _ => String::new(),
                };
                self.error(
                    node.span().start,
                    format!(
                        "`{key}` in {} is {shown}, which is out of range",
                        table.label
                    ),
                    Some(format!("use a value from {min} to {max}")),
                );
                None
            }
        }
    }

    /// A duration string within `min..=max`.
    pub(crate) fn duration(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let node = table.get(key)?;
        if let DeValue::Integer(integer) = node.get_ref() {
            self.wrong_type(
                table,
                key,
                node,
                "a duration string",
                Some(format!(
                    "durations need a unit and quotes, e.g. `{key} = \"{integer}s\"`; {DURATION_HELP}"
                )),
            );
            return None;
        }
        let value = self.string(table, key)?;
        match parse_duration(&value.text) {
            Ok(duration) if duration >= min && duration <= max => Some(duration),
            Ok(_) => {
                self.error(
                    value.at,
                    format!(
                        "`{key}` in {} is {}, which is out of range",
                        table.label, value.text
                    ),
                    Some(format!(
                        "use a duration from {} to {}",
                        format_duration(min),
                        format_duration(max)
                    )),
                );
                None
            }
            Err(reason) => {
                self.error(
                    value.at,
                    format!(
                        "invalid duration `{}` for `{key}` in {}: {reason}",
                        value.text, table.label
                    ),
                    Some(DURATION_HELP.to_owned()),
                );
                None
            }
        }
    }

    /// One of a fixed set of strings.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let value = self.string(table, key)?;
        if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == value.text) {
            return Some(*choice);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        self.error(
            value.at,
            format!(
                "invalid value `{}` for `{key}` in {}",
                value.text, table.label
            ),
            Some(help_with_suggestion(
                &value.text,
                names.iter().copied(),
                &format!("allowed values: {}", names.join(", ")),
            )),
        );
        None
    }

    /// Like [`Ctx::choice`], reporting a missing key with the allowed values.
    pub(crate) fn required_choice<T: Copy>(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        if !table.has(key) {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            self.missing(
                table,
                key,
                Some(format!(
                    "add `{key} = \"...\"`, one of: {}",
                    names.join(", ")
                )),
            );
            return None;
        }
        self.choice(table, key, choices)
    }

    /// A local date and time, as a string (`"2026-11-02T09:00"`) or a TOML local date-time
    /// (`2026-11-02T09:00:00`).
    pub(crate) fn civil_datetime(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Option<jiff::civil::DateTime> {
        let node = table.get(key)?;
        let (text, at) = match node.get_ref() {
            DeValue::Datetime(datetime) => (datetime.to_string(), node.span().start),
            DeValue::String(_) => {
                let value = self.string(table, key)?;
                (value.text, value.at)
            }
            _ => {
                self.wrong_type(
                    table,
                    key,
                    node,
                    "a date and time",
                    Some("write e.g. \"2026-11-02T09:00\"".to_owned()),
                );
                return None;
            }
        };
        match crate::values::parse_civil_datetime(&text) {
            Ok(datetime) => Some(datetime),
            Err(reason) => {
                self.error(
                    at,
                    format!("invalid `{key}` in {}: {reason}", table.label),
                    None,
                );
                None
            }
        }
    }

    // ------------------------------------------------------------------ compound values

    /// An array of strings; a missing key is an empty list.
    pub(crate) fn string_list(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Vec<Str>> {
        let Some(node) = table.get(key) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = node.get_ref() else {
            let help = matches!(node.get_ref(), DeValue::String(_))
                .then(|| format!("wrap it in brackets: `{key} = [\"...\"]`"));
            self.wrong_type(table, key, node, "an array of strings", help);
            return None;
        };
        let mut values = Vec::with_capacity(items.len());
        let mut complete = true;
        for item in items.iter() {
            if !matches!(item.get_ref(), DeValue::String(_)) {
                self.error(
                    item.span().start,
                    format!(
                        "wrong type in `{key}` of {}: expected a string, found {}",
                        table.label,
                        type_name(item.get_ref())
                    ),
                    None,
                );
                complete = false;
                continue;
            }
            match self.string_node(item) {
                Some(value) => values.push(value),
                None => complete = false,
            }
        }
        complete.then_some(values)
    }

    /// A sub-table such as `[server.tls]` or `grafana = { ... }`.
    pub(crate) fn table<'t, 'i>(
        &mut self,
        parent: &Table<'t, 'i>,
        key: &str,
        label: String,
    ) -> Option<Table<'t, 'i>> {
        let node = parent.get(key)?;
        match node.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                at: node.span().start,
                label,
            }),
            _ => {
                self.wrong_type(parent, key, node, "a table", None);
                None
            }
        }
    }

    /// An array of tables: `[[users]]` sections or `levels = [{ ... }, { ... }]`. A missing key
    /// is an empty list. Labels are `{noun} 1`, `{noun} 2`, ... until the caller relabels them.
    pub(crate) fn table_list<'t, 'i>(
        &mut self,
        parent: &Table<'t, 'i>,
        key: &str,
        noun: &str,
    ) -> Vec<Table<'t, 'i>> {
        let Some(node) = parent.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = node.get_ref() else {
            let help = matches!(node.get_ref(), DeValue::Table(_))
                .then(|| format!("write `[[{key}]]` (double brackets) for each entry"));
            self.wrong_type(parent, key, node, "an array of tables", help);
            return Vec::new();
        };
        let mut tables = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    entries,
                    at: item.span().start,
                    label: format!("{noun} {}", index + 1),
                }),
                other => self.error(
                    item.span().start,
                    format!(
                        "wrong type in `{key}` of {}: expected a table, found {}",
                        parent.label,
                        type_name(other)
                    ),
                    Some("write each entry as `{ field = value, ... }`".to_owned()),
                ),
            }
        }
        tables
    }

    /// Reports a reference to an id that is not defined.
    pub(crate) fn unknown_reference<'a>(
        &mut self,
        at: usize,
        message: String,
        noun_plural: &str,
        section: &str,
        wanted: &str,
        defined: impl Iterator<Item = &'a str> + Clone,
    ) {
        let mut names: Vec<&str> = defined.clone().collect();
        names.sort_unstable();
        let help = if names.is_empty() {
            format!("no {noun_plural} are defined; add a [[{section}]] entry")
        } else {
            let shown: Vec<&str> = names.iter().take(12).copied().collect();
            let more = if names.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            let list = format!("defined {noun_plural}: {}{more}", shown.join(", "));
            match closest(wanted, names.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`? {list}"),
                None => list,
            }
        };
        self.error(at, message, Some(help));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let source = "a = 1\nnamé = \"x\"\r\nlast";
        let env = |_: &str| None;
        let cx = Ctx::new(source, "f", &env);
        assert_eq!(cx.position(0), (1, 1));
        assert_eq!(cx.position(4), (1, 5));
        assert_eq!(cx.position(6), (2, 1));
        // `=` after "namé " is the 6th character but the 7th byte of the line.
        assert_eq!(cx.position(6 + 6), (2, 6));
        assert_eq!(cx.position(source.len()), (3, 5));
        // Offsets inside a character or past the end do not panic.
        assert_eq!(cx.position(6 + 4), (2, 4));
        assert_eq!(cx.position(10_000), (3, 5));
    }
}
