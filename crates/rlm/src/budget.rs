//! How much one run may spend, and why it stopped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits of one run. When one is reached the root model gets one last turn to answer from
/// what it has found (except on cancellation), and the run reports which limit it hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budget {
    /// Root-model turns (each may run several code blocks).
    pub max_iterations: usize,
    /// `llm_query` prompts over the whole run; a batched call counts each prompt.
    pub max_sub_calls: usize,
    /// Prompt plus completion tokens of every call, root and sub.
    pub max_tokens: Option<usize>,
    #[serde(with = "opt_secs")]
    pub wall_clock: Option<Duration>,
    /// Turns in a row whose code all failed (or that had neither code nor an answer): a small
    /// model stuck repeating one mistake will not recover by being asked again.
    pub max_consecutive_errors: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_iterations: 12, max_sub_calls: 200, max_tokens: None, wall_clock: None, max_consecutive_errors: 3 }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave a final answer.
    Final,
    MaxIterations,
    MaxSubCalls,
    MaxTokens,
    WallClock,
    ConsecutiveErrors,
    Cancelled,
}

impl StopReason {
    /// How the last "answer from what you have" turn explains the stop to the model.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Final => "you answered",
            StopReason::MaxIterations => "you have used all your turns",
            StopReason::MaxSubCalls => "you have used all your llm_query calls",
            StopReason::MaxTokens => "you have used your token budget",
            StopReason::WallClock => "you have run out of time",
            StopReason::ConsecutiveErrors => "your code failed several times in a row",
            StopReason::Cancelled => "the user cancelled",
        }
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        secs.map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_round_trips_and_fills_defaults() {
        let b = Budget { wall_clock: Some(Duration::from_millis(1500)), ..Default::default() };
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"wall_clock\":1.5"), "{json}");
        assert_eq!(serde_json::from_str::<Budget>(&json).unwrap(), b);
        let partial: Budget = serde_json::from_str(r#"{"max_iterations": 3}"#).unwrap();
        assert_eq!(partial, Budget { max_iterations: 3, ..Default::default() });
    }

    #[test]
    fn stop_reasons_are_snake_case() {
        assert_eq!(serde_json::to_string(&StopReason::ConsecutiveErrors).unwrap(), "\"consecutive_errors\"");
        assert_eq!(serde_json::from_str::<StopReason>("\"wall_clock\"").unwrap(), StopReason::WallClock);
    }
}
