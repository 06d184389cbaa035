//! The collector the validators write into: findings in the order found, each with its path.

use super::{Finding, Level};

/// Accumulates findings while a validator walks an object.
#[derive(Debug, Default)]
pub(crate) struct Report {
    findings: Vec<Finding>,
}

impl Report {
    /// Records an error (the object is rejected).
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Level::Error, path, message.into());
    }

    /// Records a warning (the object is accepted).
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.push(Level::Warning, path, message.into());
    }

    /// Records the error of a check that returns `Result`.
    pub(crate) fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(path, message);
        }
    }

    /// True when at least one error has been recorded.
    #[cfg(test)]
    pub(crate) fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    /// Number of findings so far (to tell whether a sub-check added errors).
    pub(crate) fn error_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .count()
    }

    pub(crate) fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    fn push(&mut self, level: Level, path: &str, message: String) {
        self.findings.push(Finding {
            level,
            path: path.to_string(),
            message,
        });
    }
}

/// `base.field`, or `field` at the root.
pub(crate) fn at(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

/// `base.field[i]`.
pub(crate) fn idx(base: &str, field: &str, i: usize) -> String {
    format!("{}[{i}]", at(base, field))
}

/// `base.field[key]` for map entries.
pub(crate) fn key(base: &str, field: &str, k: &str) -> String {
    format!("{}[{k}]", at(base, field))
}
