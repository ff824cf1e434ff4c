use std::fmt;
use std::str::FromStr;

use crate::UnknownValue;

/// An alert's lifecycle: triggered -> acknowledged -> resolved (acknowledging is optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Triggered,
    Acknowledged,
    Resolved,
}

/// An incident's lifecycle: triggered -> acknowledged -> resolved (acknowledging is optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentState {
    Triggered,
    Acknowledged,
    Resolved,
}

macro_rules! lifecycle_strings {
    ($ty:ident) => {
        impl $ty {
            pub const ALLOWED: &'static str = "triggered, acknowledged, resolved";

            pub fn as_str(self) -> &'static str {
                match self {
                    $ty::Triggered => "triggered",
                    $ty::Acknowledged => "acknowledged",
                    $ty::Resolved => "resolved",
                }
            }

            pub fn is_open(self) -> bool {
                !matches!(self, $ty::Resolved)
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    "triggered" => Ok($ty::Triggered),
                    "acknowledged" => Ok($ty::Acknowledged),
                    "resolved" => Ok($ty::Resolved),
                    _ => Err(UnknownValue {
                        value: value.to_owned(),
                        allowed: Self::ALLOWED,
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

lifecycle_strings!(AlertState);
lifecycle_strings!(IncidentState);
