//! Who is on call: schedules made of layers, each a rotation of members with optional weekly
//! windows. Pure functions of the schedule, its time zone and `now`.

use std::time::Duration;

use jiff::civil;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, Unit, Zoned};

/// `[[schedules]]`: who is on call, as layers of rotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: String,
    /// Default: the id.
    pub name: String,
    /// An IANA time zone name; hand-off times and restrictions are read in it. Default `UTC`.
    pub time_zone: String,
    /// Lowest first: where a later layer has someone on call, it wins over earlier layers.
    pub layers: Vec<Layer>,
}

impl Schedule {
    /// The member on call at `now`: the one of the highest layer that has someone on call then,
    /// or `None` when no layer does. `time_zone` is the schedule's own zone, resolved by the
    /// caller (looking it up reads the time zone database, which this crate does not do).
    pub fn on_call_at(&self, time_zone: &TimeZone, now: Timestamp) -> Option<&str> {
        self.layers
            .iter()
            .rev()
            .find_map(|layer| layer.on_call_at(time_zone, now))
    }
}

/// One rotation of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// User ids, in rotation order. Never empty and never a bot.
    pub members: Vec<String>,
    /// How long each member is on call before the next one takes over.
    pub rotation: Duration,
    /// When the first member's first turn starts, in the schedule's time zone.
    pub handoff: civil::DateTime,
    /// When this layer applies; empty means always.
    pub only: Vec<Restriction>,
}

impl Layer {
    /// The rotation length as calendar units: whole days stay whole days, so a weekly hand-off
    /// at 09:00 stays at 09:00 local time across daylight-saving changes.
    pub fn rotation_span(&self) -> jiff::Span {
        let seconds = self.rotation.as_secs();
        let days = seconds / 86_400;
        if seconds % 86_400 == 0 && self.rotation.subsec_nanos() == 0 {
            jiff::Span::new().days(days as i64)
        } else {
            jiff::Span::new()
                .seconds(seconds as i64)
                .nanoseconds(i64::from(self.rotation.subsec_nanos()))
        }
    }

    /// The index into `members` of whoever's turn it is at `now`, restrictions aside; `None`
    /// before the first hand-off.
    ///
    /// Rotations of whole days count calendar days in `time_zone` (a day across a
    /// daylight-saving change is 23 or 25 hours); other rotations count elapsed time. A
    /// hand-off at a time the clock skips happens as much later as the clock jumped (02:30
    /// becomes 03:30 when it jumps from 02:00 to 03:00).
    pub fn turn_at(&self, time_zone: &TimeZone, now: Timestamp) -> Option<usize> {
        if self.members.is_empty() || self.rotation.is_zero() {
            return None;
        }
        let start = self.handoff.to_zoned(time_zone.clone()).ok()?;
        let now = now.to_zoned(time_zone.clone());
        if now < start {
            return None;
        }
        let seconds = self.rotation.as_secs();
        let turns = if seconds % 86_400 == 0 && self.rotation.subsec_nanos() == 0 {
            let days = start.until((Unit::Day, &now)).ok()?.get_days();
            u64::try_from(days).ok()? / (seconds / 86_400)
        } else {
            let elapsed = now.timestamp().duration_since(start.timestamp());
            let elapsed = u128::try_from(elapsed.as_nanos()).ok()?;
            u64::try_from(elapsed / self.rotation.as_nanos()).ok()?
        };
        let members = self.members.len() as u64;
        Some((turns % members) as usize)
    }

    /// Whether the layer applies at this local time: always without restrictions, otherwise
    /// inside one of their windows.
    pub fn applies_at(&self, local: civil::DateTime) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|restriction| restriction.contains(local))
    }

    /// Whether the layer applies at the instant `now`: always without restrictions, otherwise
    /// inside one of their windows (see [`Restriction::window_on`]).
    pub fn applies_at_instant(&self, time_zone: &TimeZone, now: Timestamp) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|restriction| restriction.is_open(time_zone, now))
    }

    /// The member on call at `now` in this layer, or `None` before its first hand-off and
    /// outside its restrictions.
    pub fn on_call_at(&self, time_zone: &TimeZone, now: Timestamp) -> Option<&str> {
        if !self.applies_at_instant(time_zone, now) {
            return None;
        }
        let turn = self.turn_at(time_zone, now)?;
        self.members.get(turn).map(String::as_str)
    }
}

/// A weekly window such as `mon-fri 18:00-02:00`: it opens on each of `days` at `start` and
/// closes at the next `end`, which is on the following day when `end` is not after `start`.
/// `start == end` means 24 hours; a restriction written without times (`sat,sun`) is
/// `00:00-00:00`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// Sorted Monday first, without repeats.
    pub days: Vec<civil::Weekday>,
    pub start: civil::Time,
    pub end: civil::Time,
}

impl Restriction {
    /// How long each window lasts.
    pub fn length(&self) -> Duration {
        let start = i64::from(self.start.hour()) * 60 + i64::from(self.start.minute());
        let end = i64::from(self.end.hour()) * 60 + i64::from(self.end.minute());
        let minutes = (end - start).rem_euclid(24 * 60);
        let minutes = if minutes == 0 { 24 * 60 } else { minutes };
        Duration::from_secs(minutes as u64 * 60)
    }

    /// The window that opens on `date` (whatever its weekday), as instants: it opens when the
    /// wall clock first shows `start` or later on that date and closes when it first shows
    /// `end` or later, so `18:00-02:00` lasts 7 or 9 hours across a daylight-saving change and
    /// closes once even when the clock shows 01:30 twice. A time the clock skips (02:30 when
    /// it jumps from 02:00 to 03:00) is reached at the jump.
    pub fn window_on(
        &self,
        time_zone: &TimeZone,
        date: civil::Date,
    ) -> Option<(Timestamp, Timestamp)> {
        let opens = date.to_datetime(self.start);
        let length = jiff::SignedDuration::from_secs(self.length().as_secs() as i64);
        let closes = opens.checked_add(length).ok()?;
        Some((
            first_instant_at_or_after(time_zone, opens)?,
            first_instant_at_or_after(time_zone, closes)?,
        ))
    }

    /// Whether one of the windows is open at the instant `now` (see [`Restriction::window_on`]).
    pub fn is_open(&self, time_zone: &TimeZone, now: Timestamp) -> bool {
        let today = Zoned::new(now, time_zone.clone()).date();
        // A window lasts at most a day (plus an hour or so across a change), so only one that
        // opened on a day around today's local date can be open.
        (-2..=1).any(|offset| {
            today
                .checked_add(jiff::Span::new().days(offset))
                .ok()
                .filter(|date| self.days.contains(&date.weekday()))
                .and_then(|date| self.window_on(time_zone, date))
                .is_some_and(|(opens, closes)| opens <= now && now < closes)
        })
    }

    /// Whether a window is open at this local (wall-clock) time. Windows are read on the wall
    /// clock: `18:00-02:00` closes at 02:00 local time even when the night was an hour shorter.
    pub fn contains(&self, local: civil::DateTime) -> bool {
        let length = jiff::SignedDuration::from_secs(self.length().as_secs() as i64);
        // A window lasts at most a day, so only one opened today or yesterday can be open.
        [Some(local.date()), local.date().yesterday().ok()]
            .into_iter()
            .flatten()
            .filter(|date| self.days.contains(&date.weekday()))
            .any(|date| {
                let opens = date.to_datetime(self.start);
                opens
                    .checked_add(length)
                    .is_ok_and(|closes| opens <= local && local < closes)
            })
    }
}

/// The first instant at which the wall clock in `time_zone` shows `local` or a later time:
/// the one instant of an ordinary time, the first of a time shown twice (the clock went back),
/// and the moment of the jump for a time the clock skips.
pub fn first_instant_at_or_after(
    time_zone: &TimeZone,
    local: civil::DateTime,
) -> Option<Timestamp> {
    match time_zone.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, after } => {
            let first = before.to_timestamp(local).ok()?;
            let second = after.to_timestamp(local).ok()?;
            Some(first.min(second))
        }
        AmbiguousOffset::Gap { before, after } => {
            let first = before.to_timestamp(local).ok()?;
            let second = after.to_timestamp(local).ok()?;
            // The jump is the one transition between the two readings of the skipped time.
            time_zone
                .following(first.min(second))
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civil::Weekday::*;

    fn layer(members: &[&str], rotation_hours: u64, handoff: civil::DateTime) -> Layer {
        Layer {
            members: members.iter().map(|member| (*member).to_owned()).collect(),
            rotation: Duration::from_secs(rotation_hours * 3600),
            handoff,
            only: Vec::new(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn restriction_length_wraps_past_midnight() {
        let night = Restriction {
            days: vec![Monday],
            start: civil::time(18, 0, 0, 0),
            end: civil::time(2, 0, 0, 0),
        };
        assert_eq!(night.length(), Duration::from_secs(8 * 3600));
        let whole_day = Restriction {
            days: vec![Saturday],
            start: civil::Time::midnight(),
            end: civil::Time::midnight(),
        };
        assert_eq!(whole_day.length(), Duration::from_secs(24 * 3600));
    }

    #[test]
    fn a_night_window_is_open_until_the_next_morning() {
        let night = Restriction {
            days: vec![Monday, Tuesday, Wednesday, Thursday, Friday],
            start: civil::time(18, 0, 0, 0),
            end: civil::time(2, 0, 0, 0),
        };
        // 2026-11-06 is a Friday.
        assert!(night.contains(civil::date(2026, 11, 6).at(18, 0, 0, 0)));
        assert!(night.contains(civil::date(2026, 11, 7).at(1, 59, 0, 0)));
        assert!(!night.contains(civil::date(2026, 11, 7).at(2, 0, 0, 0)));
        assert!(!night.contains(civil::date(2026, 11, 7).at(18, 0, 0, 0)));
        assert!(!night.contains(civil::date(2026, 11, 6).at(17, 59, 0, 0)));
    }

    #[test]
    fn rotation_span_keeps_whole_days_calendar_days() {
        let weekly = layer(&["ana"], 7 * 24, civil::date(2026, 11, 2).at(9, 0, 0, 0));
        assert_eq!(weekly.rotation_span().get_days(), 7);
        let twelve_hours = layer(&["ana"], 12, civil::date(2026, 11, 2).at(9, 0, 0, 0));
        assert_eq!(twelve_hours.rotation_span().get_seconds(), 12 * 3600);
    }

    #[test]
    fn weekly_rotation_hands_off_at_local_nine_across_daylight_saving() {
        let zone = TimeZone::get("America/Los_Angeles").expect("the time zone database");
        let weekly = layer(
            &["ana", "ben"],
            7 * 24,
            civil::date(2026, 10, 26).at(9, 0, 0, 0),
        );
        assert_eq!(weekly.turn_at(&zone, at("2026-10-26T15:59:59Z")), None);
        assert_eq!(
            weekly.on_call_at(&zone, at("2026-10-26T16:00:00Z")),
            Some("ana")
        );
        // Clocks go back on 2026-11-01: 09:00 on 2026-11-02 is 17:00 UTC, not 16:00.
        assert_eq!(
            weekly.on_call_at(&zone, at("2026-11-02T16:30:00Z")),
            Some("ana")
        );
        assert_eq!(
            weekly.on_call_at(&zone, at("2026-11-02T17:00:00Z")),
            Some("ben")
        );
        assert_eq!(
            weekly.on_call_at(&zone, at("2026-11-09T17:00:00Z")),
            Some("ana")
        );
    }

    #[test]
    fn hourly_rotations_count_elapsed_time() {
        let zone = TimeZone::UTC;
        let shifts = layer(&["a", "b", "c"], 8, civil::date(2026, 1, 1).at(0, 0, 0, 0));
        assert_eq!(
            shifts.on_call_at(&zone, at("2026-01-01T07:59:59Z")),
            Some("a")
        );
        assert_eq!(
            shifts.on_call_at(&zone, at("2026-01-01T08:00:00Z")),
            Some("b")
        );
        assert_eq!(
            shifts.on_call_at(&zone, at("2026-01-01T16:00:00Z")),
            Some("c")
        );
        assert_eq!(
            shifts.on_call_at(&zone, at("2026-01-02T00:00:00Z")),
            Some("a")
        );
    }

    #[test]
    fn a_higher_layer_wins_inside_its_window() {
        let zone = TimeZone::UTC;
        let mut nights = layer(&["chen"], 24, civil::date(2026, 11, 2).at(18, 0, 0, 0));
        nights.only = vec![Restriction {
            days: vec![Monday, Tuesday, Wednesday, Thursday, Friday],
            start: civil::time(18, 0, 0, 0),
            end: civil::time(2, 0, 0, 0),
        }];
        let schedule = Schedule {
            id: "primary".to_owned(),
            name: "primary".to_owned(),
            time_zone: "UTC".to_owned(),
            layers: vec![
                layer(
                    &["ana", "ben"],
                    7 * 24,
                    civil::date(2026, 11, 2).at(9, 0, 0, 0),
                ),
                nights,
            ],
        };
        assert_eq!(
            schedule.on_call_at(&zone, at("2026-11-03T12:00:00Z")),
            Some("ana")
        );
        assert_eq!(
            schedule.on_call_at(&zone, at("2026-11-03T19:00:00Z")),
            Some("chen")
        );
        assert_eq!(
            schedule.on_call_at(&zone, at("2026-11-04T01:59:00Z")),
            Some("chen")
        );
        assert_eq!(
            schedule.on_call_at(&zone, at("2026-11-04T02:00:00Z")),
            Some("ana")
        );
        // Saturday night is outside the window.
        assert_eq!(
            schedule.on_call_at(&zone, at("2026-11-07T19:00:00Z")),
            Some("ana")
        );
        // Before any hand-off nobody is on call.
        assert_eq!(schedule.on_call_at(&zone, at("2026-11-01T12:00:00Z")), None);
    }
}
