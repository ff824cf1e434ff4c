//! `${NAME}` and `${NAME:-default}` references to environment variables inside string values.

/// A problem with one `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError {
    pub(crate) message: String,
    pub(crate) help: String,
}

/// Replaces every `${NAME}` with the variable's value, and every `${NAME:-default}` with the
/// value or, when the variable is unset or empty, with `default` (taken literally, up to the
/// first `}`). `$${` is a literal `${`. Any other `$` is kept as it is. Every problem in the
/// string is reported; only a `${NAME}` without a default fails when the variable is unset.
pub(crate) fn interpolate(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolationError>> {
    let mut output = String::with_capacity(raw.len());
    let mut errors = Vec::new();
    let mut rest = raw;
    while let Some(dollar) = rest.find('$') {
        output.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            output.push_str("${");
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix("${") {
            let Some(end) = reference.find('}') else {
                errors.push(InterpolationError {
                    message: "`${` is not closed".to_owned(),
                    help: "write `${NAME}` to read a variable, or `$${` for a literal `${`"
                        .to_owned(),
                });
                return Err(errors);
            };
            let inside = &reference[..end];
            let (name, default) = match inside.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inside, None),
            };
            if is_variable_name(name) {
                match (env(name), default) {
                    (Some(value), Some(default)) if value.is_empty() => output.push_str(default),
                    (Some(value), _) => output.push_str(&value),
                    (None, Some(default)) => output.push_str(default),
                    (None, None) => errors.push(InterpolationError {
                        message: format!("environment variable `{name}` is not set"),
                        help: format!(
                            "export {name}=..., write `${{{name}:-default}}` to fall back to a \
                             default, or remove the reference"
                        ),
                    }),
                }
            } else {
                errors.push(InterpolationError {
                    message: format!("`${{{inside}}}` is not a valid variable reference"),
                    help: "write `${NAME}` or `${NAME:-default}`; variable names are letters, \
                           digits and `_`, not starting with a digit; write `$${` for a literal \
                           `${`"
                        .to_owned(),
                });
            }
            rest = &reference[end + 1..];
        } else {
            output.push('$');
            rest = &after[1..];
        }
    }
    output.push_str(rest);
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(errors)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_references_and_keeps_other_dollars() {
        assert_eq!(
            interpolate("postgres://${HOST}/tocsin", &env).unwrap(),
            "postgres://db.internal/tocsin"
        );
        assert_eq!(
            interpolate("${HOST}${HOST}", &env).unwrap(),
            "db.internaldb.internal"
        );
        assert_eq!(interpolate("a${EMPTY}b", &env).unwrap(), "ab");
        assert_eq!(interpolate("costs $5 or $", &env).unwrap(), "costs $5 or $");
        assert_eq!(interpolate("no references", &env).unwrap(), "no references");
    }

    #[test]
    fn double_dollar_brace_is_a_literal() {
        assert_eq!(interpolate("$${HOST}", &env).unwrap(), "${HOST}");
        // A lone `$` stays, then `$${` is the escape.
        assert_eq!(interpolate("$$${HOST}", &env).unwrap(), "$${HOST}");
        assert_eq!(
            interpolate("$${HOST} ${HOST}", &env).unwrap(),
            "${HOST} db.internal"
        );
    }

    #[test]
    fn reports_every_unset_variable() {
        let errors = interpolate("${A}-${HOST}-${B}", &env).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "environment variable `A` is not set",
                "environment variable `B` is not set"
            ]
        );
        assert_eq!(
            errors[0].help,
            "export A=..., write `${A:-default}` to fall back to a default, or remove the reference"
        );
    }

    #[test]
    fn a_default_stands_in_for_an_unset_or_empty_variable() {
        assert_eq!(
            interpolate("${SMTP_PASSWORD:-change-me}", &env).unwrap(),
            "change-me"
        );
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        // A set variable wins over the default.
        assert_eq!(
            interpolate("postgres://${HOST:-localhost}/tocsin", &env).unwrap(),
            "postgres://db.internal/tocsin"
        );
        // The default is literal, may be empty, and may hold `:-`, `$` and spaces.
        assert_eq!(interpolate("a${UNSET:-}b", &env).unwrap(), "ab");
        assert_eq!(
            interpolate("${UNSET:-https://x.example/a:-b $5}", &env).unwrap(),
            "https://x.example/a:-b $5"
        );
        // Without a default, an unset variable still fails, beside one that has a default.
        let errors = interpolate("${UNSET:-ok} ${ALSO_UNSET}", &env).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "environment variable `ALSO_UNSET` is not set"
        );
        // The name before `:-` is checked like any other.
        assert!(interpolate("${1X:-default}", &env).unwrap_err()[0]
            .message
            .contains("not a valid variable reference"));
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(interpolate("${HOST", &env).unwrap_err()[0]
            .message
            .contains("not closed"));
        assert!(interpolate("${1X}", &env).unwrap_err()[0]
            .message
            .contains("not a valid variable reference"));
        assert!(interpolate("${}", &env).unwrap_err()[0]
            .message
            .contains("not a valid variable reference"));
    }
}
