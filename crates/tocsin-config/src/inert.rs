//! Which sections of a config are read and validated but not acted on yet, so that `config
//! check` and the server can say so instead of implying that they run.

use crate::model::Config;

/// A section of the config file that is parsed and validated, and that nothing acts on yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InertSection {
    /// The section as written in the file, such as `[[monitors]]`.
    pub name: &'static str,
    /// Its entries in this config: 1 for a single table such as `[smtp]`.
    pub count: usize,
    /// What it will do once it is acted on.
    pub what_it_would_do: &'static str,
}

impl std::fmt::Display for InertSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): accepted, not acted on yet; it would {}",
            self.name, self.count, self.what_it_would_do
        )
    }
}

impl Config {
    /// The sections present in this config (one entry or more) that are parsed and validated
    /// only: today nothing posts to Discord or Microsoft Teams channels. In the order of the file's documentation.
    pub fn inert_sections(&self) -> Vec<InertSection> {
        let unsent_channels = self
            .channels
            .iter()
            .filter(|channel| matches!(channel.kind.name(), "discord" | "teams"))
            .count();
        let sections = [(
            "[[channels]] of kind discord or teams",
            unsent_channels,
            "post a service's incidents to Discord and Microsoft Teams",
        )];
        sections
            .into_iter()
            .filter(|(_, count, _)| *count > 0)
            .map(|(name, count, what_it_would_do)| InertSection {
                name,
                count,
                what_it_would_do,
            })
            .collect()
    }
}
