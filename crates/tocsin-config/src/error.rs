use std::fmt;

/// One problem in a config file, at a 1-based line and column.
///
/// Problems that have no position in the file (it cannot be read, or a `TOCSIN_*` environment
/// variable has a bad value) have line and column 0, and `file` names the file or the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, sorted by line then column.
///
/// `Display` prints one block per error, separated by blank lines, and ends with a summary line
/// such as `3 errors in tocsin.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn single(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }

    pub(crate) fn sorted(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|error| (error.line, error.column));
        ConfigErrors { errors }
    }

    /// The names of the files (or environment variables) the errors are in, in order of
    /// first appearance.
    fn sources(&self) -> Vec<&str> {
        let mut sources: Vec<&str> = Vec::new();
        for error in &self.errors {
            if !sources.contains(&error.file.as_str()) {
                sources.push(&error.file);
            }
        }
        sources
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.errors {
            writeln!(f, "{error}\n")?;
        }
        let count = self.errors.len();
        let noun = if count == 1 { "error" } else { "errors" };
        write!(f, "{count} {noun} in {}", self.sources().join(", "))
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, column: usize, message: &str, help: Option<&str>) -> ConfigError {
        ConfigError {
            file: "tocsin.toml".to_owned(),
            line,
            column,
            message: message.to_owned(),
            help: help.map(str::to_owned),
        }
    }

    #[test]
    fn display_looks_like_a_compiler_diagnostic() {
        let errors = ConfigErrors::sorted(vec![
            error(12, 9, "second", Some("try this")),
            error(3, 1, "first", None),
        ]);
        assert_eq!(
            errors.to_string(),
            "tocsin.toml:3:1: error: first\n\n\
             tocsin.toml:12:9: error: second\n  help: try this\n\n\
             2 errors in tocsin.toml"
        );
    }

    #[test]
    fn errors_without_a_position_name_only_their_source() {
        let errors = ConfigErrors::single(ConfigError {
            file: "TOCSIN_LOG_FORMAT".to_owned(),
            line: 0,
            column: 0,
            message: "bad".to_owned(),
            help: None,
        });
        assert_eq!(
            errors.to_string(),
            "TOCSIN_LOG_FORMAT: error: bad\n\n1 error in TOCSIN_LOG_FORMAT"
        );
    }
}
