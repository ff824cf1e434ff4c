use std::fmt;
use std::str::FromStr;

/// A string that is not one of the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of {allowed}")]
pub struct UnknownValue {
    pub value: String,
    pub allowed: &'static str,
}

/// How bad an event says things are (PagerDuty Events API v2 vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub const ALLOWED: &'static str = "critical, error, warning, info";

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The priority an incident opened by an event of this severity gets.
    pub fn default_priority(self) -> Priority {
        match self {
            Severity::Critical => Priority::P1,
            Severity::Error => Priority::P2,
            Severity::Warning => Priority::P3,
            Severity::Info => Priority::P4,
        }
    }
}

impl FromStr for Severity {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "critical" => Ok(Severity::Critical),
            "error" => Ok(Severity::Error),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            _ => Err(UnknownValue {
                value: value.to_owned(),
                allowed: Self::ALLOWED,
            }),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident's priority, P1 (most urgent) to P5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

impl Priority {
    pub const ALLOWED: &'static str = "P1, P2, P3, P4, P5";

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }
}

impl FromStr for Priority {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_uppercase().as_str() {
            "P1" => Ok(Priority::P1),
            "P2" => Ok(Priority::P2),
            "P3" => Ok(Priority::P3),
            "P4" => Ok(Priority::P4),
            "P5" => Ok(Priority::P5),
            _ => Err(UnknownValue {
                value: value.to_owned(),
                allowed: Self::ALLOWED,
            }),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_priorities_in_order() {
        let all = [
            Severity::Critical,
            Severity::Error,
            Severity::Warning,
            Severity::Info,
        ];
        for pair in all.windows(2) {
            assert!(pair[0].default_priority() < pair[1].default_priority());
        }
        for severity in all {
            assert_eq!(severity.as_str().parse::<Severity>(), Ok(severity));
        }
        assert!("fatal".parse::<Severity>().is_err());
        assert_eq!("p3".parse::<Priority>(), Ok(Priority::P3));
    }
}
