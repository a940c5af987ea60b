//! How both binaries write their logs (issue 8, O1): the rule that picks a
//! [`LogStyle`] from the environment values the caller reads.
//!
//! Owns: that choice, so `signet-hub` and `signet-agent` log alike without
//! depending on each other. Must not: read the environment or set up
//! logging — each binary's `main.rs` does both (tracing-subscriber stays
//! out of this pure crate).

/// Selects the style: `auto` (the default), `text`, `journald` or `json`.
pub const LOG_FORMAT_VAR: &str = "SIGNET_LOG_FORMAT";
/// Set by systemd when stderr goes to the journal.
pub const JOURNAL_STREAM_VAR: &str = "JOURNAL_STREAM";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// For a person at a terminal: a timestamp on each line, colours when
    /// stderr is a terminal, structured `key=value` fields.
    Text,
    /// For journald: no colours and no timestamp (the journal stamps each
    /// line), structured `key=value` fields kept.
    Journald,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogStyle {
    /// The style for `SIGNET_LOG_FORMAT` = `format` (`None`: unset), under
    /// systemd's journal when `under_journal` (`JOURNAL_STREAM` is set).
    /// `auto` or unset: [`LogStyle::Journald`] under the journal, else
    /// [`LogStyle::Text`].
    ///
    /// # Errors
    /// A message naming the variable and the accepted values.
    pub fn choose(format: Option<&str>, under_journal: bool) -> Result<Self, String> {
        match format.map(str::trim) {
            None | Some("" | "auto") if under_journal => Ok(Self::Journald),
            None | Some("" | "auto" | "text") => Ok(Self::Text),
            Some("journald") => Ok(Self::Journald),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!(
                "{LOG_FORMAT_VAR}: {other:?} is not one of auto, text, journald, json"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_by_default_under_systemd_and_explicit_choices_win() {
        assert_eq!(LogStyle::choose(None, false), Ok(LogStyle::Text));
        assert_eq!(LogStyle::choose(None, true), Ok(LogStyle::Journald));
        assert_eq!(LogStyle::choose(Some("auto"), true), Ok(LogStyle::Journald));
        assert_eq!(LogStyle::choose(Some("text"), true), Ok(LogStyle::Text));
        assert_eq!(LogStyle::choose(Some("json"), true), Ok(LogStyle::Json));
        assert_eq!(
            LogStyle::choose(Some("journald"), false),
            Ok(LogStyle::Journald)
        );
        let error = LogStyle::choose(Some("xml"), false).unwrap_err();
        assert!(
            error.contains(LOG_FORMAT_VAR) && error.contains("\"xml\""),
            "{error}"
        );
    }
}
