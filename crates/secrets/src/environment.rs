//! The variables an exo process took out of its own environment.
//!
//! A process that runs tools must not carry secrets in the environment it
//! was started with: `/proc/PID/environ` shows that block for the life of
//! the process (changing the environment later does not change it), and
//! root, or anyone when the process is dumpable, can read it, a command a
//! model runs included. So such a process starts itself again with only
//! the variables it needs (the command line's start-up does this) and
//! hands the others over to the new process, which keeps them here, in
//! memory, and never puts them back into its environment.
//!
//! Every variable exo itself reads that could hold a secret (the master
//! key, `exo secret set --env NAME`) and the ones it reads to find its
//! files (`XDG_CONFIG_HOME`, `HOME`) are read through [`var_os`], which
//! looks here first and then in the real environment.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;

/// The variables handed over at start-up; set at most once.
static HANDED_OVER: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();

/// Keeps `variables`, taken out of this process's environment, for
/// [`var_os`]. Only the first call keeps anything; it returns whether this
/// call was it.
pub fn hand_over(variables: Vec<(OsString, OsString)>) -> bool {
    HANDED_OVER.set(variables).is_ok()
}

/// A variable of exo's environment: one handed over at start-up, else one
/// of the process's own environment.
pub fn var_os(name: impl AsRef<OsStr>) -> Option<OsString> {
    let name = name.as_ref();
    let handed_over = HANDED_OVER.get().and_then(|variables| {
        variables
            .iter()
            .find(|(handed, _)| handed == name)
            .map(|(_, value)| value.clone())
    });
    handed_over.or_else(|| std::env::var_os(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_over_variables_come_first_and_stay_out_of_the_environment() {
        let name = "EXO_SECRETS_TEST_HANDED_OVER";
        assert!(hand_over(vec![
            (name.into(), "from the table".into()),
            ("PATH".into(), "/handed/over".into()),
        ]));
        assert!(!hand_over(Vec::new()), "only the first hand-over counts");
        assert_eq!(var_os(name), Some("from the table".into()));
        assert_eq!(std::env::var_os(name), None, "never put back");
        assert_eq!(var_os("PATH"), Some("/handed/over".into()));
        // A variable not handed over is the process's own.
        assert_eq!(var_os("HOME"), std::env::var_os("HOME"));
    }
}
