//! Flags: bad ones exit with code 2 and a message naming the flag and the
//! fix (a missing or bad cluster secret included); good ones print
//! `listening on <addr>`; account flags that disagree with an existing data
//! dir are warned about.

mod common;

use std::process::{Command, Stdio};

use common::{exe, temp, wait_until, Node, Spec};

/// A file with the tests' cluster secret, for `TPC_SECRET_FILE`.
fn secret_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("cluster.secret");
    std::fs::write(&path, common::SECRET_HEX).expect("write the secret");
    (dir, path)
}

/// Runs the binary with `args` (and a good secret in `TPC_SECRET_FILE`)
/// and returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let (_secret_dir, secret) = secret_file();
    let output = Command::new(exe())
        .args(args)
        .env("TPC_SECRET_FILE", &secret)
        .stdin(Stdio::null())
        .output()
        .expect("run the participant");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let (dir, _data) = temp();
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 7] = [
        (&["--data-dir", data, "--account", "A=1"], "--id"),
        (&["--id", "1", "--account", "A=1"], "--data-dir"),
        (
            &["--id", "1", "--data-dir", data, "--account", "A"],
            "--account",
        ),
        (
            &["--id", "1", "--data-dir", data, "--account", "A=-5"],
            "negative",
        ),
        (
            &["--id", "1", "--data-dir", data, "--account", "A=1.50"],
            "cents",
        ),
        (
            &[
                "--id",
                "1",
                "--data-dir",
                data,
                "--account",
                "A=1",
                "--listen",
                "nowhere",
            ],
            "--listen",
        ),
        (
            &[
                "--id",
                "1",
                "--data-dir",
                data,
                "--account",
                "A=1",
                "--lock-wait-ms",
                "0",
            ],
            "--lock-wait-ms",
        ),
    ];
    for (args, mentions) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(mentions),
            "{args:?} should mention {mentions}: {stderr}"
        );
    }
    let (code, stderr) = run(&[
        "--id",
        "1",
        "--data-dir",
        data,
        "--account",
        "A=1",
        "--account",
        "A=2",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--account A is given twice"), "{stderr}");
    // The cluster secret: missing, unreadable or not a secret.
    let short = dir.path().join("short.secret");
    std::fs::write(&short, "abcd").expect("write");
    for (secret, mentions) in [
        ("/nonexistent/cluster.secret", "copy the coordinator"),
        (short.to_str().expect("utf-8"), "at least"),
    ] {
        let (code, stderr) = run(&[
            "--id",
            "1",
            "--data-dir",
            data,
            "--account",
            "A=1",
            "--secret-file",
            secret,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("--secret-file") && stderr.contains(mentions),
            "{stderr}"
        );
    }
    let output = Command::new(exe())
        .args(["--id", "1", "--data-dir", data, "--account", "A=1"])
        .env_remove("TPC_SECRET_FILE")
        .output()
        .expect("run the participant");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--secret-file"));
}

#[test]
fn a_new_data_dir_needs_accounts() {
    let (_dir, data) = temp();
    let (code, stderr) = run(&[
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--account"), "{stderr}");
}

#[test]
fn prints_the_listening_address_on_stdout() {
    let (dir, data) = temp();
    let stdout_path = dir.path().join("stdout");
    let stdout = std::fs::File::create(&stdout_path).expect("create the stdout file");
    let (_secret_dir, secret) = secret_file();
    let mut child = Command::new(exe())
        .env("TPC_SECRET_FILE", &secret)
        .args([
            "--id",
            "7",
            "--listen",
            "127.0.0.1:0",
            "--account",
            "A=1",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let line = wait_until("the listening line", || {
        let text = std::fs::read_to_string(&stdout_path).ok()?;
        text.lines().next().map(str::to_string)
    });
    let _ = child.kill();
    let _ = child.wait();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected stdout: {line}"));
    let addr: std::net::SocketAddr = addr.parse().expect("an address");
    assert_ne!(addr.port(), 0);
}

#[test]
fn account_flags_that_disagree_with_the_data_dir_are_warned_about() {
    let (_dir, data) = temp();
    let mut node = Node::start(&Spec::new("6001", &[("A", 100)]), &data);
    node.kill9();
    let node = Node::start(&Spec::new("6001", &[("Z", 5)]), &data);
    let stderr = node.stderr();
    assert!(stderr.contains("IGNORED"), "{stderr}");
    let mut client = node.client();
    assert_eq!(client.balance("A"), 100, "the data dir wins");
}
