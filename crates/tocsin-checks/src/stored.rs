//! A monitor's state as the payload of its `monitor.check` due-work item: the state travels
//! with the item, so whichever replica runs the next check continues from it, and a reload
//! or restart loses nothing.

use std::time::Duration;

use serde_json::{json, Value};
use tocsin_core::Timestamp;

use crate::probe::CheckStatus;
use crate::state::{AlertLink, MonitorState, MonitorStatus, ResultSummary};

/// The longest error text kept in the state, in characters.
const MAX_ERROR_CHARS: usize = 500;

pub fn encode(state: &MonitorState) -> Value {
    json!({
        "v": 1,
        "status": state.status.as_str(),
        "since": state.since.map(|at| at.to_string()),
        "streak": state.streak,
        "streak_worse": state.streak_worse,
        "streak_since": state.streak_since.map(|at| at.to_string()),
        "failing_since": state.failing_since.map(|at| at.to_string()),
        "last_result": state.last_result.as_ref().map(encode_result),
        "last_good": state.last_good.as_ref().map(encode_result),
        "last_failure": state.last_failure.as_ref().map(encode_result),
        "flips": state.flips.iter().map(|at| at.to_string()).collect::<Vec<_>>(),
        "flapping": state.flapping,
        "alert": match &state.alert {
            AlertLink::None => Value::Null,
            AlertLink::Own => json!("own"),
            AlertLink::Parent(parent) => json!({ "parent": parent }),
        },
    })
}

/// The state in a payload; a payload that is not one (a new item, or one written by a version
/// that wrote something else) is a fresh state.
pub fn decode(payload: &Value) -> MonitorState {
    if payload.get("v").and_then(Value::as_i64) != Some(1) {
        return MonitorState::default();
    }
    let time = |key: &str| payload.get(key).and_then(decode_time);
    MonitorState {
        status: payload
            .get("status")
            .and_then(Value::as_str)
            .and_then(MonitorStatus::parse)
            .unwrap_or(MonitorStatus::Pending),
        since: time("since"),
        streak: payload
            .get("streak")
            .and_then(Value::as_u64)
            .and_then(|streak| u32::try_from(streak).ok())
            .unwrap_or(0),
        streak_worse: payload
            .get("streak_worse")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        streak_since: time("streak_since"),
        failing_since: time("failing_since"),
        last_result: payload.get("last_result").and_then(decode_result),
        last_good: payload.get("last_good").and_then(decode_result),
        last_failure: payload.get("last_failure").and_then(decode_result),
        flips: payload
            .get("flips")
            .and_then(Value::as_array)
            .map(|flips| flips.iter().filter_map(decode_time).collect())
            .unwrap_or_default(),
        flapping: payload
            .get("flapping")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        alert: match payload.get("alert") {
            Some(Value::String(own)) if own == "own" => AlertLink::Own,
            Some(Value::Object(link)) => match link.get("parent").and_then(Value::as_str) {
                Some(parent) => AlertLink::Parent(parent.to_owned()),
                None => AlertLink::None,
            },
            _ => AlertLink::None,
        },
    }
}

pub fn encode_result(result: &ResultSummary) -> Value {
    json!({
        "at": result.at.to_string(),
        "status": result.status.as_str(),
        "latency_ms": u64::try_from(result.latency.as_millis()).unwrap_or(u64::MAX),
        "error": result.error.as_ref().map(|error| error.chars().take(MAX_ERROR_CHARS).collect::<String>()),
        "http_status": result.http_status,
    })
}

fn decode_result(value: &Value) -> Option<ResultSummary> {
    Some(ResultSummary {
        at: value.get("at").and_then(decode_time)?,
        status: CheckStatus::parse(value.get("status")?.as_str()?)?,
        latency: Duration::from_millis(value.get("latency_ms")?.as_u64()?),
        error: value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned),
        http_status: value
            .get("http_status")
            .and_then(Value::as_u64)
            .and_then(|code| u16::try_from(code).ok()),
    })
}

fn decode_time(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_the_round_trip() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let result = ResultSummary {
            at: at(5),
            status: CheckStatus::Down,
            latency: Duration::from_millis(1234),
            error: Some("HTTP 500, expected 2xx".to_owned()),
            http_status: Some(500),
        };
        let state = MonitorState {
            status: MonitorStatus::Down,
            since: Some(at(1)),
            streak: 1,
            streak_worse: false,
            streak_since: Some(at(2)),
            failing_since: Some(at(0)),
            last_result: Some(result.clone()),
            last_good: Some(ResultSummary {
                status: CheckStatus::Up,
                error: None,
                http_status: Some(200),
                ..result.clone()
            }),
            last_failure: Some(result),
            flips: vec![at(0), at(1)],
            flapping: true,
            alert: AlertLink::Parent("db".to_owned()),
        };
        assert_eq!(decode(&encode(&state)), state);
        let own = MonitorState {
            alert: AlertLink::Own,
            ..MonitorState::default()
        };
        assert_eq!(decode(&encode(&own)), own);
    }

    #[test]
    fn other_payloads_are_a_fresh_state() {
        assert_eq!(decode(&json!({})), MonitorState::default());
        assert_eq!(decode(&json!({"v": 9})), MonitorState::default());
    }
}
