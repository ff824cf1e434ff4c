/// Errors every backend reports the same way.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },

    /// The request conflicts with the current state (e.g. acknowledging a resolved incident).
    #[error("{0}")]
    Conflict(String),

    /// The request holds something the store cannot keep as it is (a NUL character in text);
    /// the message names the field and what to change.
    #[error("{0}")]
    Invalid(String),

    /// The database lacks tables or columns this version needs: it was not migrated, or was
    /// changed by hand. Tocsin refuses to start on it.
    #[error("the database schema is not usable by this version of tocsin: {0}")]
    Schema(String),

    /// The database could not be reached or refused the operation.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A stored value could not be read back (corrupt or hand-edited row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub fn database(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Database(Box::new(error))
    }
}
