//! Five-field cron expressions for heartbeat monitors, with the usual `@daily`-style aliases.

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::Zoned;

/// Shown with every cron error.
pub(crate) const CRON_HELP: &str =
    "a cron expression has five fields: minute (0-59), hour (0-23), \
     day of month (1-31), month (1-12 or jan-dec), day of week (0-7 or sun-sat, 0 and 7 are \
     Sunday); each field is `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma \
     list of those; @hourly, @daily, @weekly, @monthly and @yearly also work";

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed cron expression such as `0 3 * * *`.
///
/// As in Vixie cron, when both day of month and day of week are restricted (neither starts
/// with `*`), a day matches if either matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    day_of_month_restricted: bool,
    day_of_week_restricted: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The longest a search for the next run goes on: leap days can be up to eight years apart.
const SEARCH_DAYS: i32 = 8 * 366 + 1;

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let expanded = match text.trim() {
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
        if fields.len() != 5 {
            return Err(CronError(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let minutes = parse_field(fields[0], "minute", 0, 59, &[])?;
        let hours = parse_field(fields[1], "hour", 0, 23, &[])?;
        let days_of_month = parse_field(fields[2], "day of month", 1, 31, &[])?;
        let months = parse_field(fields[3], "month", 1, 12, &MONTH_NAMES)?;
        let mut days_of_week = parse_field(fields[4], "day of week", 0, 7, &WEEKDAY_NAMES)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let cron = Cron {
            source: text.trim().to_owned(),
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week: days_of_week as u8,
            day_of_month_restricted: !fields[2].starts_with('*'),
            day_of_week_restricted: !fields[4].starts_with('*'),
        };
        if cron.day_of_month_restricted && !cron.day_of_week_restricted && !cron.any_valid_day() {
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
        self.matches_day(at.date())
            && self.hours & (1 << at.hour()) != 0
            && self.minutes & (1 << at.minute()) != 0
    }

    /// The first time strictly after `after`, in `after`'s time zone, when the expression fires.
    ///
    /// A time that falls in a daylight-saving gap fires at the equivalent time after the gap; a
    /// time that occurs twice fires once, the first time.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let time_zone: TimeZone = after.time_zone().clone();
        let start = after.datetime();
        let mut date = start.date();
        for _ in 0..SEARCH_DAYS {
            if self.matches_day(date) {
                for hour in 0..24i8 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minutes & (1 << minute) == 0 {
                            continue;
                        }
                        let candidate = date.at(hour, minute, 0, 0);
                        if candidate <= start {
                            continue;
                        }
                        let zoned = candidate.to_zoned(time_zone.clone()).ok()?;
                        if zoned.timestamp() > after.timestamp() {
                            return Some(zoned);
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn matches_day(&self, date: civil::Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day_of_month = self.days_of_month & (1 << date.day()) != 0;
        let weekday = date.weekday().to_sunday_zero_offset();
        let day_of_week = self.days_of_week & (1 << weekday) != 0;
        match (self.day_of_month_restricted, self.day_of_week_restricted) {
            (true, true) => day_of_month || day_of_week,
            (true, false) => day_of_month,
            (false, true) => day_of_week,
            (false, false) => true,
        }
    }

    fn any_valid_day(&self) -> bool {
        (1..=12i8).any(|month| {
            self.months & (1 << month) != 0
                && (1..=civil::date(2024, month, 1).days_in_month())
                    .any(|day| self.days_of_month & (1 << day) != 0)
        })
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses one field into a bit set where bit `n` means value `n`.
fn parse_field(
    field: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                    CronError(format!("`{step}` is not a valid step in the {what} field"))
                })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            (
                parse_value(low, what, min, max, names)?,
                parse_value(high, what, min, max, names)?,
            )
        } else {
            let value = parse_value(range, what, min, max, names)?;
            // `5/15` means "from 5 to the end, every 15".
            (value, if item.contains('/') { max } else { value })
        };
        if low > high {
            return Err(CronError(format!(
                "the range `{range}` in the {what} field goes backwards"
            )));
        }
        let mut value = low;
        while value <= high {
            bits |= 1 << value;
            value += step;
        }
    }
    Ok(bits)
}

fn parse_value(
    text: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u32, CronError> {
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
        // Clocks go forward at 02:00 on 2026-03-08 in Los Angeles: 02:30 does not exist.
        assert_eq!(
            next(
                "30 2 * * *",
                "2026-03-08T00:00:00-08:00[America/Los_Angeles]"
            ),
            "2026-03-08T03:30:00-07:00[America/Los_Angeles]"
        );
        assert_eq!(
            next(
                "0 9 * * *",
                "2026-03-08T00:00:00-08:00[America/Los_Angeles]"
            ),
            "2026-03-08T09:00:00-07:00[America/Los_Angeles]"
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
    }

    #[test]
    fn rejects_bad_expressions() {
        let cases = [
            ("0 3 * *", "expected 5 fields"),
            ("60 * * * *", "out of range for the minute field"),
            ("* 24 * * *", "out of range for the hour"),
            ("* * 0 * *", "out of range for the day of month"),
            ("* * * 13 *", "out of range for the month"),
            ("* * * * 8", "out of range for the day of week"),
            ("*/0 * * * *", "not a valid step"),
            ("5-1 * * * *", "goes backwards"),
            ("x * * * *", "not a valid value"),
            ("0 0 30 2 *", "never runs"),
            ("@reboot", "not a cron alias"),
            ("1,,2 * * * *", "empty value"),
        ];
        for (expression, reason) in cases {
            let error = Cron::parse(expression).expect_err(expression).to_string();
            assert!(error.contains(reason), "{expression}: {error}");
        }
    }
}
