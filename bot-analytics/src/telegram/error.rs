//! The error a bot handler returns.

use std::fmt;
use std::panic::Location;

use telegram_policy::auto::HandlerFailure;

/// An error returned by a bot handler, with its type and the place it was raised.
///
/// Any `std::error::Error` converts with `?`, and the conversion records the file and line of
/// the `?` (`#[track_caller]`). The Telegram layer tracks it as an error event grouped by type
/// and location, answers Telegram with an empty 200 (so it does not redeliver the same update
/// again and again), and logs it.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself, so that every error
/// type converts into it.
pub struct BotError {
    kind: String,
    message: String,
    location: &'static Location<'static>,
}

impl BotError {
    /// An error of kind `kind` with `message`, raised here.
    #[track_caller]
    pub fn new(kind: &str, message: impl fmt::Display) -> BotError {
        BotError {
            kind: kind.to_string(),
            message: message.to_string(),
            location: Location::caller(),
        }
    }

    /// The error's kind (its type name).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message: the error and its sources, joined with `": "`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `file:line` where it was raised.
    pub fn location(&self) -> String {
        format!("{}:{}", self.location.file(), self.location.line())
    }

    /// The error as the automatic tracking records it.
    pub(crate) fn failure(&self) -> HandlerFailure {
        HandlerFailure {
            kind: self.kind.clone(),
            message: self.message.clone(),
            location: self.location(),
        }
    }
}

impl fmt::Debug for BotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (at {})",
            self.kind,
            self.message,
            self.location()
        )
    }
}

impl fmt::Display for BotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl<E: std::error::Error> From<E> for BotError {
    #[track_caller]
    fn from(error: E) -> BotError {
        BotError {
            kind: analytics_core::tracker::short_type_name::<E>().to_string(),
            message: analytics_core::tracker::error_chain_message(&error),
            location: Location::caller(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("quiz table missing")]
    struct QuizError;

    fn fails(at: &mut u32) -> Result<(), BotError> {
        *at = line!() + 1;
        Err(QuizError)?;
        Ok(())
    }

    #[test]
    fn question_mark_records_type_and_line() {
        let mut line = 0;
        let error = fails(&mut line).unwrap_err();
        assert_eq!(error.kind(), "QuizError");
        assert_eq!(error.message(), "quiz table missing");
        assert_eq!(
            error.location(),
            format!("{}:{line}", file!()),
            "the `?`'s line"
        );
        let made = BotError::new("custom", 42);
        assert_eq!(made.failure().kind, "custom");
        assert!(made.location().starts_with(file!()));
    }
}
