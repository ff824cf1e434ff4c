//! Parsers for the inbound wire formats. Each takes the raw body and returns domain events or
//! every problem found, each naming the field.

mod alertmanager;
mod events_v1;
mod events_v2;
mod fields;
mod generic;
mod grafana;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testing;

pub use alertmanager::{label_set_dedup_key, parse_alertmanager, severity_from_label};
pub use events_v1::{parse_event_v1, V1_DEFAULT_SOURCE};
pub use events_v2::{parse_change_event, parse_event_v2, ROUTING_KEY_CHARS};
pub use fields::{ParseErrors, ServiceLookup, MAX_BODY_BYTES, MAX_SUMMARY_CHARS};
pub use generic::{parse_generic, GENERIC_DEFAULT_SOURCE};
pub use grafana::{parse_grafana, verify_grafana_signature};
