//! Durations written as `"30s"`, `"5m"`, `"1h30m"`, `"2w"`.

use std::time::Duration;

/// Shown with every duration error.
pub(crate) const DURATION_HELP: &str = "write a number followed by a unit (ms, s, m, h, d, w), \
     largest unit first when combining them: \"500ms\", \"30s\", \"5m\", \"1h30m\", \"1d\", \"2w\"";

const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration; the error says what is wrong with the text.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("the duration is empty".to_owned());
    }
    let mut total_millis: u64 = 0;
    let mut last_unit: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            let found = rest.chars().next().unwrap_or_default();
            return Err(format!("expected a number, found `{found}`"));
        }
        let (number, after_number) = rest.split_at(digits);
        let letters = after_number.len()
            - after_number
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after_unit) = after_number.split_at(letters);
        if unit.is_empty() {
            return Err(match after_number.chars().next() {
                None => format!("`{number}` has no unit"),
                Some(found) => format!("expected a unit after `{number}`, found `{found}`"),
            });
        }
        let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("`{unit}` is not a unit"));
        };
        if last_unit.is_some_and(|last| unit_index <= last) {
            return Err("units must go from largest to smallest, each at most once".to_owned());
        }
        last_unit = Some(unit_index);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{number}` is too large"))?;
        total_millis = number
            .checked_mul(UNITS[unit_index].1)
            .and_then(|millis| total_millis.checked_add(millis))
            .ok_or_else(|| "the duration is too long".to_owned())?;
        rest = after_unit;
    }
    Ok(Duration::from_millis(total_millis))
}

/// Writes a duration the way a config file would, for messages: `90s` becomes `1m30s`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (name, size) in UNITS {
        let size = u128::from(size);
        if millis >= size {
            text.push_str(&format!("{}{name}", millis / size));
            millis %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_single_units_and_combinations() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1h30m", 5_400_000),
            ("2d12h", 216_000_000),
            ("250ms", 250),
            ("1m30s500ms", 90_500),
            ("0s", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("30", "no unit"),
            ("5 m", "expected a unit after `5`, found ` `"),
            ("5min", "`min` is not a unit"),
            ("m", "expected a number"),
            ("30m1h", "largest to smallest"),
            ("1h1h", "largest to smallest"),
            ("-5s", "expected a number, found `-`"),
            ("1.5h", "expected a unit after `1`, found `.`"),
            ("99999999999999999999s", "too large"),
            ("9999999999999999w", "too long"),
        ];
        for (text, reason) in cases {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn formats_back_to_config_syntax() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(86_400 * 8)), "1w1d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }
}
