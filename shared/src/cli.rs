//! The rule every command line of the project keeps: each option can also
//! come from a `TPC_*` environment variable (README, "Configuration"), but
//! `--help`, `--version` and a process's one-off acts (a variable left in
//! an environment would repeat those at every start).

/// The options of `command` that break the rule: those without a `TPC_*`
/// variable, and `help`, `version` or one of `one_off` (argument ids) with
/// any. Empty when the command keeps it.
pub fn options_breaking_the_env_rule(command: &clap::Command, one_off: &[&str]) -> Vec<String> {
    let mut broken = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let env = arg.get_env().and_then(|v| v.to_str());
        if matches!(id, "help" | "version") || one_off.contains(&id) {
            if let Some(name) = env {
                broken.push(format!(
                    "--{id} reads {name}, and must not read the environment"
                ));
            }
            continue;
        }
        match env {
            Some(name) if name.starts_with("TPC_") => {}
            Some(name) => broken.push(format!("--{id} reads {name}, not a TPC_* variable")),
            None => broken.push(format!("--{id} has no TPC_* variable")),
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    #[test]
    fn names_each_option_that_breaks_the_rule() {
        let command = Command::new("x")
            .arg(Arg::new("listen").long("listen").env("TPC_LISTEN"))
            .arg(Arg::new("data").long("data"))
            .arg(Arg::new("port").long("port").env("PORT"))
            .arg(
                Arg::new("fresh")
                    .long("fresh")
                    .action(ArgAction::SetTrue)
                    .env("TPC_FRESH"),
            );
        assert_eq!(
            options_breaking_the_env_rule(&command, &["fresh"]),
            [
                "--data has no TPC_* variable",
                "--port reads PORT, not a TPC_* variable",
                "--fresh reads TPC_FRESH, and must not read the environment",
            ]
        );
        let kept = Command::new("x")
            .arg(Arg::new("listen").long("listen").env("TPC_LISTEN"))
            .arg(Arg::new("fresh").long("fresh").action(ArgAction::SetTrue));
        assert!(options_breaking_the_env_rule(&kept, &["fresh"]).is_empty());
    }
}
