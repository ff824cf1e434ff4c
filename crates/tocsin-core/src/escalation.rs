//! Escalation ladders: which level is paged when, as pure functions of the policy and the
//! minutes since the incident opened.

/// The due-work kind of an incident's next escalation step; its key is the incident number.
pub const ESCALATION_STEP_KIND: &str = "escalation.step";

/// The due-work kind of an acknowledged incident's acknowledgement timeout (its service's
/// `ack_timeout_minutes` after the acknowledgement); its key is the incident number.
pub const ACK_TIMEOUT_KIND: &str = "incident.ack_timeout";

/// `[[escalation_policies]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub id: String,
    /// Default: the id.
    pub name: String,
    /// How many more times to run the whole ladder when nobody acknowledges. Default 0.
    pub repeat: u32,
    /// Never empty.
    pub levels: Vec<EscalationLevel>,
}

/// Where a ladder is `minutes` after it started: which pass and level is notified, and when
/// that level was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationStep {
    /// 0 for the first run of the ladder, 1 for the first repeat, and so on.
    pub pass: u32,
    /// Index into `levels`.
    pub level: usize,
    /// Minutes after the start at which this level was notified.
    pub since_minutes: u64,
}

impl EscalationPolicy {
    /// The wait before repeating the ladder when the last level does not say.
    pub const DEFAULT_REPEAT_AFTER_MINUTES: u32 = 30;

    /// Minutes to wait after notifying level `index` before moving on: to the next level, or
    /// (after the last level) to the next repeat.
    pub fn minutes_after_level(&self, index: usize) -> u32 {
        self.levels
            .get(index)
            .and_then(|level| level.escalate_after_minutes)
            .unwrap_or(Self::DEFAULT_REPEAT_AFTER_MINUTES)
    }

    /// Every step of the ladder in order, repeats included, with the minute each is reached.
    pub fn steps(&self) -> impl Iterator<Item = EscalationStep> + '_ {
        let mut since_minutes = 0u64;
        (0..=self.repeat)
            .flat_map(move |pass| (0..self.levels.len()).map(move |level| (pass, level)))
            .map(move |(pass, level)| {
                let step = EscalationStep {
                    pass,
                    level,
                    since_minutes,
                };
                since_minutes += u64::from(self.minutes_after_level(level));
                step
            })
    }

    /// The step notified last at `minutes` after the ladder started (the first level at
    /// minute 0), or `None` for a policy without levels. After the last step of the last pass
    /// the ladder stays there: nobody new is paged.
    pub fn step_at(&self, minutes: u64) -> Option<EscalationStep> {
        self.steps()
            .take_while(|step| step.since_minutes <= minutes)
            .last()
    }

    /// When the step after `step` is due, in minutes after the start; `None` after the last.
    pub fn next_step_after(&self, step: EscalationStep) -> Option<EscalationStep> {
        self.steps()
            .skip_while(|candidate| (candidate.pass, candidate.level) != (step.pass, step.level))
            .nth(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationLevel {
    /// Never empty.
    pub targets: Vec<Target>,
    /// At least 1. Always set on every level but the last; on the last level it is the wait
    /// before the next repeat.
    pub escalate_after_minutes: Option<u32>,
    /// Page one person of the level's targets each time it is reached, taking turns across
    /// incidents (and repeats), instead of everyone.
    pub round_robin: bool,
}

/// Who an escalation level pages. Always a human (or a schedule or team of humans).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    User(String),
    Schedule(String),
    Team(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(id) => write!(f, "user:{id}"),
            Target::Schedule(id) => write!(f, "schedule:{id}"),
            Target::Team(id) => write!(f, "team:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(waits: &[Option<u32>], repeat: u32) -> EscalationPolicy {
        EscalationPolicy {
            id: "payments".to_owned(),
            name: "payments".to_owned(),
            repeat,
            levels: waits
                .iter()
                .enumerate()
                .map(|(index, wait)| EscalationLevel {
                    targets: vec![Target::User(format!("user-{index}"))],
                    escalate_after_minutes: *wait,
                    round_robin: false,
                })
                .collect(),
        }
    }

    #[test]
    fn the_last_level_waits_the_default_before_a_repeat() {
        let ladder = policy(&[Some(5), Some(10), None], 2);
        assert_eq!(ladder.minutes_after_level(0), 5);
        assert_eq!(
            ladder.minutes_after_level(2),
            EscalationPolicy::DEFAULT_REPEAT_AFTER_MINUTES
        );
    }

    #[test]
    fn steps_walk_the_ladder_and_its_repeats() {
        let ladder = policy(&[Some(5), Some(10), None], 1);
        let steps: Vec<(u32, usize, u64)> = ladder
            .steps()
            .map(|step| (step.pass, step.level, step.since_minutes))
            .collect();
        assert_eq!(
            steps,
            [
                (0, 0, 0),
                (0, 1, 5),
                (0, 2, 15),
                (1, 0, 45),
                (1, 1, 50),
                (1, 2, 60)
            ]
        );
    }

    #[test]
    fn step_at_a_minute_is_the_last_one_reached() {
        let ladder = policy(&[Some(5), Some(10), None], 1);
        let at = |minutes| ladder.step_at(minutes).map(|step| (step.pass, step.level));
        assert_eq!(at(0), Some((0, 0)));
        assert_eq!(at(4), Some((0, 0)));
        assert_eq!(at(5), Some((0, 1)));
        assert_eq!(at(44), Some((0, 2)));
        assert_eq!(at(45), Some((1, 0)));
        assert_eq!(at(10_000), Some((1, 2)));
        assert_eq!(policy(&[], 0).step_at(0), None);
    }

    #[test]
    fn the_next_step_follows_and_ends_after_the_last_pass() {
        let ladder = policy(&[Some(5), None], 0);
        let first = ladder.step_at(0).expect("a first step");
        let second = ladder.next_step_after(first).expect("a second step");
        assert_eq!((second.level, second.since_minutes), (1, 5));
        assert_eq!(ladder.next_step_after(second), None);
    }

    #[test]
    fn targets_print_with_their_prefix() {
        assert_eq!(
            Target::Schedule("primary".to_owned()).to_string(),
            "schedule:primary"
        );
        assert_eq!(
            Target::Team("payments".to_owned()).to_string(),
            "team:payments"
        );
        assert_eq!(Target::User("ana".to_owned()).to_string(), "user:ana");
    }
}
