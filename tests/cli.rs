//! The command line as an operator meets it: `check` lists every problem with
//! its path, bad input exits non-zero with a clear message and no panic.

use std::process::Command;

fn resynth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resynth"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn demo_with(replace: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/demo.toml"))
            .unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    text = text.replace("../schemas", &format!("{root}/schemas"));
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "fixture text {from:?} not in demo.toml"
        );
        text = text.replace(from, to);
    }
    text
}

#[test]
fn check_accepts_the_shipped_topologies_offline() {
    for t in ["topologies/demo.toml", "topologies/ehr-labs.toml"] {
        let out = resynth().args(["check", "--offline", t]).output().unwrap();
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `check --offline` on the demo topology with `edits`: exit code 1 and stderr.
fn check_fails(edits: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", &demo_with(edits));
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_lists_every_value_problem_with_its_path() {
    let err = check_fails(&[
        ("size_secs = 3600", "size_secs = 0"),
        ("ks_max = 0.1", "ks_max = 1.5"),
        ("holdout_fraction = 0.5", "holdout_fraction = 2.0"),
        (
            "persist_k = 2",
            "persist_k = 5\nfloor_fraction = 0.0\nalpha = 1.5",
        ),
    ]);
    for p in [
        "window.size_secs",
        "drift.ks_max",
        "model.holdout_fraction",
        "drift.persist_k",
        "drift.floor_fraction",
        "drift.alpha",
    ] {
        assert!(err.contains(p), "{p} not reported:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_names_drift_columns_the_training_table_lacks() {
    let err = check_fails(&[(
        "segments = [\"sex\"]",
        "segments = [\"site\"]\ncorrelation_columns = [\"hba1c\", \"sex\"]",
    )]);
    assert!(err.contains("drift.segments: \"site\""), "{err}");
    assert!(
        err.contains("drift.correlation_columns: \"sex\" is not numeric"),
        "{err}"
    );
}

#[test]
fn unknown_key_and_missing_field_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "unknown.toml",
        &demo_with(&[("min_rows = 500", "min_rows = 500\nmin_rowz = 1")]),
    );
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_rowz"));

    let path = write(
        dir.path(),
        "missing.toml",
        &demo_with(&[("group_id = \"resynth-demo\"\n", "")]),
    );
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("group_id"));
}

#[test]
fn sql_errors_and_schema_mismatches_are_caught_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_with(&[
        ("AS creatinine", "AS kreatinine"),
        ("MAX(sex)            AS sex", "MAX(age)            AS sex"),
    ]);
    let path = write(dir.path(), "mismatch.toml", &text);
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"creatinine\""),
        "missing column not named:\n{err}"
    );

    let path = write(
        dir.path(),
        "sql.toml",
        &demo_with(&[("FROM labs", "FROM labz")]),
    );
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("window.sql") && err.contains("labz"), "{err}");
}

#[test]
fn unreachable_brokers_fail_fast_with_the_address() {
    let out = resynth()
        .args(["check", "topologies/demo.toml", "--brokers", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kafka.brokers") && err.contains("127.0.0.1:1"),
        "{err}"
    );

    let out = resynth()
        .args([
            "run",
            "topologies/demo.toml",
            "--brokers",
            "127.0.0.1:1",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The access preflight names the address and the setting to check.
    assert!(
        err.contains("connect to 127.0.0.1:1") && err.contains("kafka.brokers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn audit_verify_reports_a_missing_log_clearly() {
    let out = resynth()
        .args(["audit", "verify", "/nonexistent/audit.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/audit.jsonl"));
}
