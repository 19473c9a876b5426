//! Generator errors: every one names the place in the spec it is about.

use std::fmt;

/// Something in the spec the generator cannot turn into code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenError {
    /// JSON pointer into the spec, e.g. `#/paths/~1pet/post/requestBody`.
    pub location: String,
    /// What is wrong there, or which construct is not supported.
    pub message: String,
}

impl GenError {
    /// An error at `location`.
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for GenError {}

/// Every error found in one pass, so a spec author sees them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenErrors(pub Vec<GenError>);

impl fmt::Display for GenErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GenErrors {}

/// Appends a path segment to a JSON pointer, escaping `~` and `/` as RFC 6901 says.
pub fn pointer(base: &str, segment: &str) -> String {
    format!("{base}/{}", segment.replace('~', "~0").replace('/', "~1"))
}
