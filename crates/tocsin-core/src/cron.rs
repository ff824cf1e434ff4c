//! Five-field cron expressions (heartbeat monitors), with the usual `@daily`-style aliases.
//!
//! Matching and the search for the next run, daylight-saving changes included, are the `croner`
//! crate's. This module restricts it to the classic five fields and explains a rejected
//! expression field by field, naming the field and the allowed range.

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::Zoned;

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed cron expression such as `0 3 * * *`.
///
/// As in Vixie cron, when both day of month and day of week are restricted (neither starts
/// with `*`), a day matches if either matches.
#[derive(Debug, Clone)]
pub struct Cron {
    source: String,
    /// Boxed: the parsed pattern is a few hundred bytes, and configs hold many monitors.
    schedule: Box<croner::Cron>,
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Cron {}

/// One of the five fields: its name in messages, its range and its value names.
struct Field {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        what: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        what: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        what: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        what: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        what: "day of week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Cron {
    /// What a cron expression may contain, for help texts.
    pub const SYNTAX: &'static str = "a cron expression has five fields: minute (0-59), hour \
     (0-23), day of month (1-31), month (1-12 or jan-dec), day of week (0-7 or sun-sat, 0 and 7 \
     are Sunday); each field is `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma \
     list of those; @hourly, @daily, @weekly, @monthly and @yearly also work";

    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let source = text.trim();
        let expanded = match source {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError(format!("`{other}` is not a cron alias")));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(CronError(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        for (text, field) in fields.iter().zip(&FIELDS) {
            check_field(text, field)?;
        }
        let schedule = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            // `5/15` means "from 5 to the end, every 15", as in Vixie cron.
            .sloppy_ranges(true)
            .build()
            .parse(expanded)
            .map_err(|error| CronError(format!("not a valid cron expression: {error}")))?;
        let cron = Cron {
            source: source.to_owned(),
            schedule: Box::new(schedule),
        };
        // Only a restricted day of month without a restricted day of week can select no day
        // at all (`0 0 30 2 *`); leap days come at least every eight years.
        let start = civil::date(2024, 1, 1).at(0, 0, 0, 0);
        let horizon = civil::date(2033, 1, 1).at(0, 0, 0, 0);
        let runs = start
            .to_zoned(TimeZone::UTC)
            .ok()
            .and_then(|start| cron.next_after(&start))
            .is_some_and(|next| next.datetime() < horizon);
        if !runs {
            return Err(CronError(
                "the expression never runs: no selected month has the selected days".to_owned(),
            ));
        }
        Ok(cron)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression fires at this minute (seconds are ignored).
    pub fn matches(&self, at: civil::DateTime) -> bool {
        let minute = at.date().at(at.hour(), at.minute(), 0, 0);
        self.schedule.is_time_matching(&minute).unwrap_or(false)
    }

    /// The first time strictly after `after`, in `after`'s time zone, when the expression fires.
    ///
    /// A time that falls in a daylight-saving gap fires at the first instant after the gap
    /// (when the clocks go forward at 02:00, a 02:30 job runs at 03:00, as cron itself runs
    /// it); a time that occurs twice fires once, the first time.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        self.schedule.find_next_occurrence(after, false).ok()
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Checks one field against the classic syntax, so that a mistake is reported with the field
/// it is in and the range allowed there.
fn check_field(text: &str, field: &Field) -> Result<(), CronError> {
    let what = field.what;
    for item in text.split(',') {
        let range = match item.split_once('/') {
            Some((range, step)) => {
                step.parse::<u32>()
                    .ok()
                    .filter(|step| *step > 0)
                    .ok_or_else(|| {
                        CronError(format!("`{step}` is not a valid step in the {what} field"))
                    })?;
                range
            }
            None => item,
        };
        if range == "*" {
            continue;
        }
        if let Some((low, high)) = range.split_once('-') {
            let low = value(low, field)?;
            let high = value(high, field)?;
            if low > high {
                return Err(CronError(format!(
                    "the range `{range}` in the {what} field goes backwards"
                )));
            }
        } else {
            value(range, field)?;
        }
    }
    Ok(())
}

fn value(text: &str, field: &Field) -> Result<u32, CronError> {
    let Field {
        what,
        min,
        max,
        names,
    } = *field;
    let lower = text.to_ascii_lowercase();
    if let Some(index) = names.iter().position(|name| *name == lower) {
        // Month names start at 1, weekday names at 0 (Sunday).
        return Ok(index as u32 + min);
    }
    match text.parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        Ok(value) => Err(CronError(format!(
            "{value} is out of range for the {what} field ({min}-{max})"
        ))),
        Err(_) if text.is_empty() => Err(CronError(format!("the {what} field has an empty value"))),
        Err(_) => Err(CronError(format!(
            "`{text}` is not a valid value for the {what} field"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expression: &str, after: &str) -> String {
        let cron = Cron::parse(expression).unwrap();
        let after: Zoned = after.parse().unwrap();
        cron.next_after(&after).unwrap().to_string()
    }

    #[test]
    fn finds_the_next_run() {
        assert_eq!(
            next("0 3 * * *", "2026-01-10T02:59:30+00:00[UTC]"),
            "2026-01-10T03:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 3 * * *", "2026-01-10T03:00:00+00:00[UTC]"),
            "2026-01-11T03:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("*/15 9-17 * * mon-fri", "2026-01-09T17:50:00+00:00[UTC]"),
            "2026-01-12T09:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("@monthly", "2026-01-31T12:00:00+00:00[UTC]"),
            "2026-02-01T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00+00:00[UTC]"),
            "2028-02-29T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-01-10T10:30:00+00:00[UTC]"),
            "2026-01-10T10:45:00+00:00[UTC]"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 13th, or any Friday.
        assert_eq!(
            next("0 0 13 * 5", "2026-01-01T00:00:00+00:00[UTC]"),
            "2026-01-02T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 13 * 5", "2026-01-10T00:00:00+00:00[UTC]"),
            "2026-01-13T00:00:00+00:00[UTC]"
        );
    }

    #[test]
    fn runs_in_the_given_time_zone_across_daylight_saving() {
        // Clocks go forward at 02:00 on 2026-03-08 in Los Angeles: 02:30 does not exist, and
        // the job runs at the first instant after the gap.
        assert_eq!(
            next(
                "30 2 * * *",
                "2026-03-08T00:00:00-08:00[America/Los_Angeles]"
            ),
            "2026-03-08T03:00:00-07:00[America/Los_Angeles]"
        );
        assert_eq!(
            next(
                "0 9 * * *",
                "2026-03-08T00:00:00-08:00[America/Los_Angeles]"
            ),
            "2026-03-08T09:00:00-07:00[America/Los_Angeles]"
        );
        // Clocks go back at 02:00 on 2026-11-01: 01:30 happens twice and runs once.
        assert_eq!(
            next(
                "30 1 * * *",
                "2026-11-01T00:00:00-07:00[America/Los_Angeles]"
            ),
            "2026-11-01T01:30:00-07:00[America/Los_Angeles]"
        );
        assert_eq!(
            next(
                "30 1 * * *",
                "2026-11-01T01:30:00-07:00[America/Los_Angeles]"
            ),
            "2026-11-02T01:30:00-08:00[America/Los_Angeles]"
        );
    }

    #[test]
    fn sunday_is_zero_or_seven() {
        let a = Cron::parse("0 0 * * 0").unwrap();
        let b = Cron::parse("0 0 * * 7").unwrap();
        let c = Cron::parse("0 0 * * SUN").unwrap();
        let sunday = civil::date(2026, 1, 11).at(0, 0, 0, 0);
        assert!(a.matches(sunday) && b.matches(sunday) && c.matches(sunday));
        assert!(!a.matches(sunday.date().tomorrow().unwrap().at(0, 0, 0, 0)));
        assert!(
            a.matches(sunday.date().at(0, 0, 42, 0)),
            "seconds are ignored"
        );
    }

    #[test]
    fn rejects_bad_expressions() {
        let cases = [
            ("0 3 * *", "expected 5 fields"),
            ("0 0 3 * * *", "expected 5 fields"),
            ("60 * * * *", "out of range for the minute field"),
            ("* 24 * * *", "out of range for the hour"),
            ("* * 0 * *", "out of range for the day of month"),
            ("* * * 13 *", "out of range for the month"),
            ("* * * * 8", "out of range for the day of week"),
            ("*/0 * * * *", "not a valid step"),
            ("5-1 * * * *", "goes backwards"),
            ("x * * * *", "not a valid value"),
            ("0 0 30 2 *", "never runs"),
            ("0 0 31 4,6,9,11 *", "never runs"),
            ("@reboot", "not a cron alias"),
            ("1,,2 * * * *", "empty value"),
            ("0 0 L * *", "not a valid value for the day of month field"),
            ("0 0 * * 5#2", "not a valid value for the day of week field"),
            ("0 0 ? * *", "not a valid value for the day of month field"),
        ];
        for (expression, reason) in cases {
            let error = Cron::parse(expression).expect_err(expression).to_string();
            assert!(error.contains(reason), "{expression}: {error}");
        }
    }
}
