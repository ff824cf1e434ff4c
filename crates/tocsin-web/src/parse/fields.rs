//! Building blocks shared by the parsers: decoding the body, reading typed fields while
//! collecting every problem, lenient timestamps and the limits the wire formats impose.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::{civil, Timestamp};
use serde_json::{Map, Value};
use tocsin_core::{DedupKey, EventAction, ServiceId, Severity};

/// Every problem found in a request body, each naming the field it is about.
///
/// Never empty when returned by a parser. The messages are meant for the sender and go
/// unchanged into the `errors` array of a `400` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors(pub Vec<String>);

impl ParseErrors {
    pub(crate) fn one(message: impl Into<String>) -> Self {
        ParseErrors(vec![message.into()])
    }

    pub fn messages(&self) -> &[String] {
        &self.0
    }

    pub fn into_messages(self) -> Vec<String> {
        self.0
    }
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ParseErrors {}

/// Finds the service an integration key belongs to (`routing_key`, `service_key`).
pub type ServiceLookup<'a> = &'a dyn Fn(&str) -> Option<ServiceId>;

/// The longest summary any format accepts, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// The largest body the ingestion endpoints accept, in bytes. The HTTP layer enforces it before
/// a parser runs.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// How many characters of an offending value an error message repeats back.
const ECHO_CHARS: usize = 64;

pub(crate) const ACTIONS_ALLOWED: &str = "trigger, acknowledge, resolve";

/// Decodes a body into its top-level JSON object, or the one problem that stops us looking
/// further.
pub(crate) fn decode_object(body: &[u8]) -> Result<Map<String, Value>, ParseErrors> {
    // Some senders (PowerShell, a few .NET clients) start the body with a byte order mark.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|error| {
        ParseErrors::one(format!(
            "body is not valid UTF-8 (at byte {})",
            error.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|error| ParseErrors::one(format!("body is not valid JSON: {error}")))?;
    let object = match value {
        Value::Object(object) => object,
        other => {
            return Err(ParseErrors::one(format!(
                "body must be a JSON object (got {})",
                kind_of(&other)
            )))
        }
    };
    let nul_paths = paths_with_nul(&object);
    if nul_paths.is_empty() {
        Ok(object)
    } else {
        Err(ParseErrors(
            nul_paths
                .into_iter()
                .map(|path| {
                    format!("'{path}' contains a NUL character (\\u0000); remove it and send again")
                })
                .collect(),
        ))
    }
}

/// At most this many fields holding a NUL are named in one answer.
const MAX_NUL_PATHS: usize = 10;

/// The fields (keys or string values, at any depth) that contain U+0000.
///
/// NUL is refused everywhere in a body, details included: PostgreSQL can store it neither in
/// `text` nor in `jsonb`, and both stores must keep the same bytes. Iterative, so the depth of
/// the document (bounded by the JSON parser) does not matter.
fn paths_with_nul(root: &Map<String, Value>) -> Vec<String> {
    fn child(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }
    let mut found = Vec::new();
    let mut pending: Vec<(String, &Value)> = root
        .iter()
        .rev()
        .map(|(key, value)| (child("", key), value))
        .collect();
    while let Some((path, value)) = pending.pop() {
        if found.len() >= MAX_NUL_PATHS {
            break;
        }
        if path.contains('\0') {
            found.push(path.replace('\0', "\\u0000"));
            continue;
        }
        match value {
            Value::String(text) if text.contains('\0') => found.push(path),
            Value::Array(items) => pending.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(index, item)| (format!("{path}[{index}]"), item)),
            ),
            Value::Object(map) => pending.extend(
                map.iter()
                    .rev()
                    .map(|(key, item)| (child(&path, key), item)),
            ),
            _ => {}
        }
    }
    found
}

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    pub(crate) fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors to return. Callers only get here when something required is missing, and
    /// every such case has pushed a message; the fallback keeps the result non-empty regardless.
    pub(crate) fn into_errors(mut self) -> ParseErrors {
        if self.0.is_empty() {
            self.0.push("event is invalid".to_owned());
        }
        ParseErrors(self.0)
    }

    pub(crate) fn required(&mut self, path: &str) {
        self.push(format!("'{path}' is required"));
    }

    pub(crate) fn wrong_type(&mut self, path: &str, expected: &str) {
        self.push(format!("'{path}' must be {expected}"));
    }

    pub(crate) fn not_one_of(&mut self, path: &str, allowed: &str, got: &str) {
        self.push(format!(
            "'{path}' must be one of {allowed} (got {})",
            echo(got)
        ));
    }
}

/// A JSON object being read, with the path that names it in error messages.
#[derive(Debug, Clone)]
pub(crate) struct Object<'v> {
    map: &'v Map<String, Value>,
    path: String,
}

impl<'v> Object<'v> {
    pub(crate) fn root(map: &'v Map<String, Value>) -> Self {
        Object {
            map,
            path: String::new(),
        }
    }

    pub(crate) fn at(map: &'v Map<String, Value>, path: String) -> Self {
        Object { map, path }
    }

    /// The path of one of this object's fields, as error messages name it.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A field's value; an explicit `null` counts as absent, as senders built on optional types
    /// emit it for "not set".
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    pub(crate) fn string(&self, key: &str, problems: &mut Problems) -> Option<&'v str> {
        match self.get(key)? {
            Value::String(text) => Some(text),
            _ => {
                problems.wrong_type(&self.path(key), "a string");
                None
            }
        }
    }

    /// An optional string that counts as absent when empty.
    pub(crate) fn non_empty_string(&self, key: &str, problems: &mut Problems) -> Option<&'v str> {
        self.string(key, problems).filter(|text| !text.is_empty())
    }

    pub(crate) fn required_string(&self, key: &str, problems: &mut Problems) -> Option<&'v str> {
        let text = self.string(key, problems);
        if self.get(key).is_none() {
            problems.required(&self.path(key));
        }
        text
    }

    /// A required string that must hold something other than white space, at most `limit`
    /// characters long.
    pub(crate) fn required_text(
        &self,
        key: &str,
        limit: Option<usize>,
        problems: &mut Problems,
    ) -> Option<&'v str> {
        let text = self.required_string(key, problems)?;
        let path = self.path(key);
        if text.trim().is_empty() {
            problems.push(format!("'{path}' must not be blank"));
            return None;
        }
        if let Some(limit) = limit {
            check_length(&path, text, limit, problems)?;
        }
        Some(text)
    }

    pub(crate) fn object(&self, key: &str, problems: &mut Problems) -> Option<Object<'v>> {
        match self.get(key)? {
            Value::Object(map) => Some(Object::at(map, self.path(key))),
            _ => {
                problems.wrong_type(&self.path(key), "an object");
                None
            }
        }
    }

    pub(crate) fn array(&self, key: &str, problems: &mut Problems) -> Option<&'v [Value]> {
        match self.get(key)? {
            Value::Array(items) => Some(items),
            _ => {
                problems.wrong_type(&self.path(key), "an array");
                None
            }
        }
    }

    pub(crate) fn number(&self, key: &str, problems: &mut Problems) -> Option<&'v Value> {
        match self.get(key)? {
            value @ Value::Number(_) => Some(value),
            _ => {
                problems.wrong_type(&self.path(key), "a number");
                None
            }
        }
    }

    /// Calls `each` with the elements of an array field that are objects, in order, and
    /// reports the others where they stand.
    pub(crate) fn for_each_object(
        &self,
        key: &str,
        problems: &mut Problems,
        mut each: impl FnMut(Object<'v>, &mut Problems),
    ) {
        let Some(items) = self.array(key, problems) else {
            return;
        };
        let path = self.path(key);
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item {
                Value::Object(map) => each(Object::at(map, item_path), problems),
                _ => problems.wrong_type(&item_path, "an object"),
            }
        }
    }

    /// The field's value as sent, for keeping in an event's details.
    pub(crate) fn raw(&self, key: &str) -> Option<Value> {
        self.get(key).cloned()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'v String, &'v Value)> {
        self.map.iter()
    }

    pub(crate) fn as_value(&self) -> Value {
        Value::Object(self.map.clone())
    }
}

/// Reports a string longer than `limit` characters.
pub(crate) fn check_length(
    path: &str,
    text: &str,
    limit: usize,
    problems: &mut Problems,
) -> Option<()> {
    let length = text.chars().count();
    if length > limit {
        problems.push(format!(
            "'{path}' must be at most {limit} characters (got {length})"
        ));
        return None;
    }
    Some(())
}

/// Cuts a text to at most `limit` characters, for formats whose senders do not promise a limit.
pub(crate) fn truncate_chars(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// An offending value as an error message repeats it: JSON-quoted and cut short.
pub(crate) fn echo(value: &str) -> String {
    let shown = truncate_chars(value, ECHO_CHARS);
    let mut quoted = Value::String(shown).to_string();
    if value.chars().count() > ECHO_CHARS {
        quoted.push('…');
    }
    quoted
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn parse_action(value: &str) -> Option<EventAction> {
    match value {
        "trigger" => Some(EventAction::Trigger),
        "acknowledge" => Some(EventAction::Acknowledge),
        "resolve" => Some(EventAction::Resolve),
        _ => None,
    }
}

/// Reads a required action field (`event_action`, `event_type`, `action`).
pub(crate) fn required_action(
    object: &Object<'_>,
    key: &str,
    problems: &mut Problems,
) -> Option<EventAction> {
    let text = object.required_string(key, problems)?;
    let action = parse_action(text);
    if action.is_none() {
        problems.not_one_of(&object.path(key), ACTIONS_ALLOWED, text);
    }
    action
}

/// Reads a dedup key field: required for acknowledge and resolve, generated for a trigger that
/// has none (or an empty one). Keys are never cut short: a key over the limit is an error.
pub(crate) fn dedup_key(
    object: &Object<'_>,
    key: &str,
    action: Option<EventAction>,
    action_key: &str,
    problems: &mut Problems,
) -> Option<DedupKey> {
    let path = object.path(key);
    let sent = object.string(key, problems);
    if sent.is_none() && object.get(key).is_some() {
        // Wrong type, already reported.
        return None;
    }
    match (sent, action) {
        (None | Some(""), Some(EventAction::Trigger)) => Some(generated_dedup_key()),
        (None, Some(action)) => {
            problems.push(format!(
                "'{path}' is required when '{action_key}' is {action}"
            ));
            None
        }
        (None, None) => None,
        (Some(text), _) => match DedupKey::parse(text) {
            Ok(dedup_key) => Some(dedup_key),
            Err(error) => {
                problems.push(format!("'{path}' {error}"));
                None
            }
        },
    }
}

pub(crate) fn generated_dedup_key() -> DedupKey {
    let key = uuid::Uuid::new_v4().hyphenated().to_string();
    DedupKey::parse(&key).expect("a hyphenated UUID is a valid dedup key")
}

/// Reads an integration key field and finds its service. `length` is the exact length the
/// format requires, when it requires one.
pub(crate) fn integration_key(
    object: &Object<'_>,
    key: &str,
    length: Option<usize>,
    lookup: crate::parse::ServiceLookup<'_>,
    problems: &mut Problems,
) -> Option<ServiceId> {
    let text = object.required_string(key, problems)?;
    let path = object.path(key);
    if let Some(length) = length {
        if text.chars().count() != length {
            problems.push(format!(
                "Length of '{path}' is incorrect (should be {length} characters)"
            ));
            return None;
        }
    }
    let service = lookup(text);
    if service.is_none() {
        problems.push(format!(
            "'{path}' does not match any service's integration key"
        ));
    }
    service
}

/// Reads an optional severity field in the Events API vocabulary.
pub(crate) fn severity(
    object: &Object<'_>,
    key: &str,
    problems: &mut Problems,
) -> Option<Severity> {
    let text = object.string(key, problems)?;
    let severity = text.parse::<Severity>().ok();
    if severity.is_none() {
        problems.not_one_of(&object.path(key), Severity::ALLOWED, text);
    }
    severity
}

/// Reads an optional timestamp field, reporting one that cannot be understood.
pub(crate) fn timestamp(
    object: &Object<'_>,
    key: &str,
    problems: &mut Problems,
) -> Option<Timestamp> {
    let text = object.string(key, problems)?;
    let parsed = parse_timestamp_leniently(text);
    if parsed.is_none() {
        problems.push(format!(
            "'{}' must be an ISO 8601 timestamp such as \"2026-01-31T23:59:59Z\" (got {})",
            object.path(key),
            echo(text)
        ));
    }
    parsed
}

/// Parses an ISO 8601 / RFC 3339 timestamp the way senders really write them: with or without
/// fractional seconds, with `Z`, a numeric offset, both at once (`+00:00Z`, from Python's
/// `isoformat() + "Z"`), or no offset at all (taken as UTC).
pub(crate) fn parse_timestamp_leniently(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp);
    }
    let without_zulu = text.strip_suffix(['Z', 'z']);
    if let Some(without_zulu) = without_zulu.filter(|rest| !rest.ends_with(['Z', 'z'])) {
        if let Ok(timestamp) = without_zulu.parse::<Timestamp>() {
            return Some(timestamp);
        }
    }
    let civil = text.parse::<civil::DateTime>().ok()?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn timestamps_parse_in_the_forms_senders_use() {
        let whole = at("2026-11-22T02:20:13Z");
        let nanos = at("2026-11-22T02:20:13.97704578Z");
        for (text, expected) in [
            ("2026-11-22T02:20:13Z", whole),
            ("2026-11-22T02:20:13z", whole),
            ("2026-11-22T02:20:13+00:00", whole),
            ("2026-11-22T02:20:13+00:00Z", whole),
            ("2026-11-22T03:20:13+01:00", whole),
            ("2026-11-22T03:20:13+01:00Z", whole),
            ("2026-11-22T02:20:13", whole),
            ("2026-11-22 02:20:13", whole),
            (" 2026-11-22T02:20:13Z ", whole),
            ("2026-11-22T02:20:13.97704578Z", nanos),
            ("2026-11-22T02:20:13.97704578+00:00Z", nanos),
            ("2026-11-22T02:20:13.97704578", nanos),
            ("2026-11-22T02:20:13.000Z", whole),
            ("2026-11-22T02:20:13.000000+00:00", whole),
        ] {
            assert_eq!(parse_timestamp_leniently(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_timestamp_leniently("0001-01-01T00:00:00Z"),
            Some(Timestamp::new(-62_135_596_800, 0).unwrap())
        );
    }

    #[test]
    fn nonsense_timestamps_are_rejected() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-22T25:00:00Z",
            "1700000000",
            "2026-11-22T02:20:13ZZ",
        ] {
            assert_eq!(parse_timestamp_leniently(text), None, "{text}");
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_named() {
        assert_eq!(
            decode_object(b"{\"a\":\xff}").unwrap_err(),
            ParseErrors::one("body is not valid UTF-8 (at byte 5)")
        );
        let error = decode_object(b"{\"a\":").unwrap_err();
        assert!(
            error.0[0].starts_with("body is not valid JSON: "),
            "{error}"
        );
        assert_eq!(
            decode_object(b"[1,2]").unwrap_err(),
            ParseErrors::one("body must be a JSON object (got an array)")
        );
        assert_eq!(
            decode_object(b"\"text\"").unwrap_err(),
            ParseErrors::one("body must be a JSON object (got a string)")
        );
        assert!(decode_object(b"\xEF\xBB\xBF{}").is_ok());
    }

    #[test]
    fn deeply_nested_bodies_are_rejected_without_overflowing_the_stack() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let error = decode_object(deep.as_bytes()).unwrap_err();
        assert!(error.0[0].contains("recursion limit exceeded"), "{error}");
    }

    #[test]
    fn nul_is_refused_anywhere_in_a_body_naming_the_field() {
        let errors = decode_object(
            br#"{"summary":"a\u0000b","payload":{"custom_details":{"ok":"x","k\u0000":1,"list":["y","\u0000"]}}}"#,
        )
        .unwrap_err()
        .into_messages();
        assert_eq!(errors.len(), 3, "{errors:?}");
        for field in [
            "'summary' contains a NUL character",
            "'payload.custom_details.k\\u0000' contains a NUL character",
            "'payload.custom_details.list[1]' contains a NUL character",
        ] {
            assert!(
                errors.iter().any(|error| error.starts_with(field)),
                "{field} in {errors:?}"
            );
        }
        assert!(decode_object(br#"{"summary":"a\u0001b"}"#).is_ok());
    }

    #[test]
    fn echoed_values_are_quoted_and_cut_short() {
        assert_eq!(echo("fatal"), "\"fatal\"");
        let long = "x".repeat(100);
        assert_eq!(echo(&long), format!("\"{}\"…", "x".repeat(64)));
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
    }
}
