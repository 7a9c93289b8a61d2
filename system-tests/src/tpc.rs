//! Runs the `tpc` command line as a process, as a user would.

use crate::DEADLINE;

/// How a `tpc` run ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `tpc ARGS` against `url` (none: its default), with `TPC_*` variables
/// of the test's own environment removed so they cannot leak in.
pub async fn tpc(url: Option<&str>, args: &[&str]) -> Run {
    tpc_with_env(url, args, &[]).await
}

/// The same, with extra environment variables.
pub async fn tpc_with_env(url: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(crate::bin("tpc"));
    command.args(args).kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("TPC_") {
            command.env_remove(name);
        }
    }
    if let Some(url) = url {
        command.env("TPC_URL", url);
    }
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("tpc finishes")
        .expect("tpc runs");
    let run = Run {
        code: output.status.code().expect("tpc exits by itself"),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    };
    eprintln!(
        "$ tpc {}\n{}{}(exit {})",
        args.join(" "),
        run.stdout,
        run.stderr,
        run.code
    );
    run
}
