//! Field-level validation errors, shared by every settings parser (Security, notices,
//! appearance, …): each names the JSON path of a bad field and says what it must be, and a
//! parser checks every field before it answers, so that a form can mark them all at once.
//!
//! On the wire one error reads `field: message`; several read `a: …; b[2]: …`
//! (docs/API-DESIGN.md, "Errors"), which the admin pages split to put each beside its field.

use thiserror::Error;

/// A problem with one field: `field` is a JSON path such as `email.linkUrl` or
/// `allowedUrls[2]`; `message` says in plain words what the value must be.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The problems found so far while checking a body, field after field.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// The value of a check that passed; a failed one is noted and gives `None`, so the
    /// caller goes on to the next field.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// Like [`Problems::check`], for a field that falls back to `default` when it is bad (the
    /// value is never used then: `finish` refuses the body).
    pub fn or<T>(&mut self, r: Result<T, FieldError>, default: T) -> T {
        self.check(r).unwrap_or(default)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when every field passed; else one error that names each problem: the first one's
    /// field, and a message that goes on with the others (`allowedUrls[0]: …; clockSkewSeconds: …`
    /// is how it prints).
    pub fn finish(self) -> Result<(), FieldError> {
        let mut iter = self.0.into_iter();
        let Some(mut first) = iter.next() else {
            return Ok(());
        };
        for p in iter {
            first.message = format!("{}; {p}", first.message);
        }
        Err(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_once_in_order() {
        let mut p = Problems::new();
        assert_eq!(p.check(Ok::<_, FieldError>(1)), Some(1));
        assert!(p.is_empty());
        assert_eq!(
            p.check::<u8>(Err(FieldError::new("a", "must be one"))),
            None
        );
        assert_eq!(p.or(Err(FieldError::new("b[2]", "must be two")), 7), 7);
        let e = p.finish().unwrap_err();
        assert_eq!(e.field, "a");
        assert_eq!(e.to_string(), "a: must be one; b[2]: must be two");
        assert_eq!(Problems::new().finish(), Ok(()));
    }
}
