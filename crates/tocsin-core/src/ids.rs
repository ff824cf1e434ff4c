use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {length} characters long; the limit is {limit}")]
    TooLong { length: usize, limit: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// The id of a service declared in the config file (`[[services]] id = "..."`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(String);

impl ServiceId {
    pub fn new(id: impl Into<String>) -> Self {
        ServiceId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key that folds events into one alert, per service. 1 to 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(String);

impl DedupKey {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(key: &str) -> Result<Self, IdError> {
        if key.is_empty() {
            return Err(IdError::Empty);
        }
        let length = key.chars().count();
        if length > Self::MAX_CHARS {
            return Err(IdError::TooLong {
                length,
                limit: Self::MAX_CHARS,
            });
        }
        if key.chars().any(char::is_control) {
            return Err(IdError::ControlCharacter);
        }
        Ok(DedupKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An incident's number: sequential, shown to people ("incident #42").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentNumber(pub i64);

impl fmt::Display for IncidentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An alert's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId(pub i64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_limits_are_counted_in_characters() {
        assert!(DedupKey::parse(&"é".repeat(255)).is_ok());
        assert_eq!(
            DedupKey::parse(&"a".repeat(256)),
            Err(IdError::TooLong {
                length: 256,
                limit: 255
            })
        );
        assert_eq!(DedupKey::parse(""), Err(IdError::Empty));
        assert_eq!(DedupKey::parse("a\nb"), Err(IdError::ControlCharacter));
    }
}
