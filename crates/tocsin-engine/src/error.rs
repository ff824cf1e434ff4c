use tocsin_store::StoreError;

/// Why an engine call failed. The store's error stays the [`std::error::Error::source`], so a
/// log line can print the whole chain and a caller can still tell "not found" from "conflict"
/// from "the database is down".
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A store call failed; `operation` names it (as in the `store_latency_seconds` metric).
    #[error("store call `{operation}` failed")]
    Store {
        operation: &'static str,
        #[source]
        source: StoreError,
    },
}

impl EngineError {
    pub fn store(operation: &'static str, source: StoreError) -> Self {
        EngineError::Store { operation, source }
    }

    /// The store's error behind this one, if a store call failed.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            EngineError::Store { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_error_is_kept_as_the_source() {
        let error = EngineError::store(
            "acknowledge_incident",
            StoreError::database(std::io::Error::other("connection reset")),
        );
        assert_eq!(
            error.to_string(),
            "store call `acknowledge_incident` failed"
        );
        assert_eq!(
            crate::error_chain(&error),
            "store call `acknowledge_incident` failed: database error: connection reset"
        );
        assert!(matches!(error.store_error(), Some(StoreError::Database(_))));
    }
}
