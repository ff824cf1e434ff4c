//! Who is on call over time: a schedule with the overrides made at run time on top of it, who
//! is on call at an instant, and the shifts and gaps of a range. Pure functions of the
//! schedule, its time zone, its overrides and the range; the caller passes `now`.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Unit};

use crate::schedule::{Layer, Restriction, Schedule};

/// Someone on call instead of the schedule for a while, made at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive; after `start`.
    pub end: Timestamp,
    /// The user on call instead.
    pub user: String,
    /// `None`: `user` covers the whole range, whoever the schedule has (nobody included).
    /// `Some(id)`: `user` takes the turns of `id` only, where the schedule has `id` on call.
    pub replaces: Option<String>,
}

impl Override {
    pub fn covers(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }
}

/// What puts someone on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnCallSource {
    /// The layer at this index of `Schedule::layers` (its rotation and restrictions).
    Layer(usize),
    /// The override at this index of the overrides given.
    Override(usize),
}

/// Who is on call, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnCall<'a> {
    pub user: &'a str,
    pub source: OnCallSource,
}

/// A stretch of time with one answer to "who is on call": `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub start: Timestamp,
    pub end: Timestamp,
    /// `None`: nobody (a gap).
    pub on_call: Option<OnCall<'a>>,
}

/// A range `[start, end)` in which one user is on call without a break (adjacent turns of the
/// same user, from layers or overrides, are one shift).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub start: Timestamp,
    pub end: Timestamp,
    pub user: String,
}

/// A range `[start, end)` in which a schedule has nobody on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The most change points one timeline computes; a range that needs more is cut short at the
/// last of them (the timeline ends before `to`). A one-minute rotation over 90 days needs about
/// 130,000.
pub const MAX_CHANGE_POINTS: usize = 1_000_000;

/// A schedule as it runs: its layers, its time zone (resolved by the caller) and its overrides,
/// in the order they were made. Where overrides overlap, the later one wins.
#[derive(Debug, Clone, Copy)]
pub struct Roster<'a> {
    pub schedule: &'a Schedule,
    pub time_zone: &'a TimeZone,
    pub overrides: &'a [Override],
}

impl<'a> Roster<'a> {
    pub fn new(schedule: &'a Schedule, time_zone: &'a TimeZone, overrides: &'a [Override]) -> Self {
        Roster {
            schedule,
            time_zone,
            overrides,
        }
    }

    /// Who is on call at `at`: the highest layer with someone on call, then each override
    /// covering `at` in the order they were made (one without `replaces` always takes over;
    /// one with it only from the person it replaces).
    pub fn on_call_at(&self, at: Timestamp) -> Option<OnCall<'a>> {
        let schedule: &'a Schedule = self.schedule;
        let mut current = schedule
            .layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(index, layer)| {
                layer.on_call_at(self.time_zone, at).map(|user| OnCall {
                    user,
                    source: OnCallSource::Layer(index),
                })
            });
        let overrides: &'a [Override] = self.overrides;
        for (index, entry) in overrides.iter().enumerate() {
            if !entry.covers(at) {
                continue;
            }
            let takes_over = match &entry.replaces {
                None => true,
                Some(replaced) => current.is_some_and(|on_call| on_call.user == replaced),
            };
            if takes_over {
                current = Some(OnCall {
                    user: &entry.user,
                    source: OnCallSource::Override(index),
                });
            }
        }
        current
    }

    /// Who is on call over `[from, to)`, as consecutive segments covering the whole range
    /// (empty when `to <= from`; shorter only past [`MAX_CHANGE_POINTS`]); neighbours always
    /// differ.
    pub fn timeline(&self, from: Timestamp, to: Timestamp) -> Vec<Segment<'a>> {
        if to <= from {
            return Vec::new();
        }
        // Past the cap the answer is not known: the timeline ends at the first point left out.
        let (points, to) = self.change_points(from, to);
        let mut segments: Vec<Segment<'a>> = Vec::new();
        for (index, start) in points.iter().enumerate() {
            let end = points.get(index + 1).copied().unwrap_or(to);
            let on_call = self.on_call_at(*start);
            match segments.last_mut() {
                Some(last) if last.on_call == on_call => last.end = end,
                _ => segments.push(Segment {
                    start: *start,
                    end,
                    on_call,
                }),
            }
        }
        segments
    }

    /// The ranges of `[from, to)` where nobody is on call.
    pub fn gaps(&self, from: Timestamp, to: Timestamp) -> Vec<Gap> {
        let mut gaps: Vec<Gap> = Vec::new();
        for segment in self.timeline(from, to) {
            if segment.on_call.is_some() {
                continue;
            }
            match gaps.last_mut() {
                Some(last) if last.end == segment.start => last.end = segment.end,
                _ => gaps.push(Gap {
                    start: segment.start,
                    end: segment.end,
                }),
            }
        }
        gaps
    }

    /// Every shift in `[from, to)`, in order, each user's adjacent turns joined. A shift in
    /// progress at `from` is reported from `from`; one still running at `to` until `to`.
    pub fn shifts(&self, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        let mut shifts: Vec<Shift> = Vec::new();
        for segment in self.timeline(from, to) {
            let Some(on_call) = segment.on_call else {
                continue;
            };
            match shifts.last_mut() {
                Some(last) if last.end == segment.start && last.user == on_call.user => {
                    last.end = segment.end;
                }
                _ => shifts.push(Shift {
                    start: segment.start,
                    end: segment.end,
                    user: on_call.user.to_owned(),
                }),
            }
        }
        shifts
    }

    /// The shifts of one user in `[from, to)` (see [`Roster::shifts`]).
    pub fn shifts_of(&self, user: &str, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        self.shifts(from, to)
            .into_iter()
            .filter(|shift| shift.user == user)
            .collect()
    }

    /// Every instant of `[from, to)` at which the answer may change, sorted, starting with
    /// `from`: hand-offs, restriction windows opening and closing, time zone transitions,
    /// overrides starting and ending. Between two of them nobody's turn begins or ends. Also
    /// returns where they are complete: `to`, or the first instant left out past
    /// [`MAX_CHANGE_POINTS`].
    fn change_points(&self, from: Timestamp, to: Timestamp) -> (Vec<Timestamp>, Timestamp) {
        let mut points = vec![from];
        let mut complete_until = to;
        let mut push = |at: Timestamp| {
            if from < at && at < to {
                if points.len() < MAX_CHANGE_POINTS {
                    points.push(at);
                } else {
                    complete_until = complete_until.min(at);
                }
            }
        };
        for layer in &self.schedule.layers {
            handoffs(layer, self.time_zone, from, to, &mut push);
            for restriction in &layer.only {
                window_edges(restriction, self.time_zone, from, to, &mut push);
            }
        }
        for transition in self.time_zone.following(from) {
            if transition.timestamp() >= to {
                break;
            }
            push(transition.timestamp());
        }
        for entry in self.overrides {
            push(entry.start);
            push(entry.end);
        }
        points.retain(|point| *point < complete_until);
        points.sort_unstable();
        points.dedup();
        (points, complete_until)
    }
}

/// Calls `push` with the layer's hand-offs from the last one at or before `from` (or its first)
/// until `to`.
fn handoffs(
    layer: &Layer,
    time_zone: &TimeZone,
    from: Timestamp,
    to: Timestamp,
    push: &mut impl FnMut(Timestamp),
) {
    if layer.members.is_empty() || layer.rotation.is_zero() {
        return;
    }
    let Ok(start) = layer.handoff.to_zoned(time_zone.clone()) else {
        return;
    };
    if let Some(days) = whole_days(layer.rotation) {
        // Calendar days in the schedule's zone, as `Layer::turn_at` counts them.
        let first_turn = if from <= start.timestamp() {
            0
        } else {
            let elapsed = start
                .until((Unit::Day, &from.to_zoned(time_zone.clone())))
                .map_or(0, |span| span.get_days());
            i64::from(elapsed) / days
        };
        for turn in first_turn.. {
            let Some(handoff) = turn
                .checked_mul(days)
                .and_then(|total| Span::new().try_days(total).ok())
                .and_then(|span| start.checked_add(span).ok())
            else {
                return;
            };
            if handoff.timestamp() >= to {
                return;
            }
            push(handoff.timestamp());
        }
    } else {
        let rotation =
            jiff::SignedDuration::try_from(layer.rotation).unwrap_or(jiff::SignedDuration::MAX);
        let first_turn = if from <= start.timestamp() {
            0
        } else {
            let elapsed = from.duration_since(start.timestamp());
            i64::try_from(elapsed.as_nanos() / rotation.as_nanos()).unwrap_or(i64::MAX)
        };
        for turn in first_turn.. {
            let Some(handoff) = i32::try_from(turn)
                .ok()
                .and_then(|turn| rotation.checked_mul(turn))
                .and_then(|offset| start.timestamp().checked_add(offset).ok())
            else {
                return;
            };
            if handoff >= to {
                return;
            }
            push(handoff);
        }
    }
}

/// Calls `push` with each opening and closing of the restriction's windows around `[from, to)`.
fn window_edges(
    restriction: &Restriction,
    time_zone: &TimeZone,
    from: Timestamp,
    to: Timestamp,
    push: &mut impl FnMut(Timestamp),
) {
    let (Ok(first), Ok(last)) = (
        from.to_zoned(time_zone.clone())
            .date()
            .checked_sub(Span::new().days(2)),
        to.to_zoned(time_zone.clone())
            .date()
            .checked_add(Span::new().days(1)),
    ) else {
        return;
    };
    let mut date = first;
    while date <= last {
        if restriction.days.contains(&date.weekday()) {
            if let Some((opens, closes)) = restriction.window_on(time_zone, date) {
                push(opens);
                push(closes);
            }
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => return,
        }
    }
}

/// The number of days of a rotation of whole days.
fn whole_days(rotation: Duration) -> Option<i64> {
    let seconds = rotation.as_secs();
    (seconds % 86_400 == 0 && rotation.subsec_nanos() == 0 && seconds > 0)
        .then_some((seconds / 86_400) as i64)
}

#[cfg(test)]
mod tests;
