//! What the API and the CLI show of a monitor: its settings and its state, read from its due
//! item.

use std::sync::Arc;

use tocsin_config::Monitor;
use tocsin_core::Timestamp;
use tocsin_store::due::DueKey;
use tocsin_store::{Store, StoreError};

use crate::runner::{Monitors, MONITOR_CHECK};
use crate::state::MonitorState;
use crate::stored;

/// The most monitors one [`Monitors::views`] call returns.
pub const MAX_VIEWS: usize = 500;

/// A monitor and where it stands.
#[derive(Debug, Clone)]
pub struct MonitorView {
    pub monitor: Arc<Monitor>,
    /// `Pending` with no results before its first check.
    pub state: MonitorState,
    /// When its next check is due, once it is scheduled.
    pub next_check_at: Option<Timestamp>,
}

impl Monitors {
    /// The monitor's view, or `None` when no probed monitor has that id.
    pub async fn view(
        &self,
        store: &dyn Store,
        id: &str,
    ) -> Result<Option<MonitorView>, StoreError> {
        let Some(monitor) = self.get(id) else {
            return Ok(None);
        };
        view_of(store, monitor).await.map(Some)
    }

    /// Monitors in id order after `after`, at most `limit` (and [`MAX_VIEWS`]); the second value
    /// is the id to continue after, when there are more.
    pub async fn views(
        &self,
        store: &dyn Store,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<MonitorView>, Option<String>), StoreError> {
        let limit = limit.clamp(1, MAX_VIEWS);
        let all = self.all();
        let mut selected: Vec<Arc<Monitor>> = all
            .into_iter()
            .filter(|monitor| after.is_none_or(|after| monitor.id.as_str() > after))
            .take(limit + 1)
            .collect();
        let next = if selected.len() > limit {
            selected.truncate(limit);
            selected.last().map(|monitor| monitor.id.clone())
        } else {
            None
        };
        let mut views = Vec::with_capacity(selected.len());
        for monitor in selected {
            views.push(view_of(store, monitor).await?);
        }
        Ok((views, next))
    }
}

async fn view_of(store: &dyn Store, monitor: Arc<Monitor>) -> Result<MonitorView, StoreError> {
    let key = DueKey::parse(&monitor.id).map_err(|error| StoreError::Invalid(error.to_string()))?;
    let row = store.due_item(&MONITOR_CHECK, &key).await?;
    Ok(MonitorView {
        state: row
            .as_ref()
            .map(|row| stored::decode(&row.payload))
            .unwrap_or_default(),
        next_check_at: row.map(|row| row.due_at),
        monitor,
    })
}
