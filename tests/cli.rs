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
    for t in [
        "topologies/demo.toml",
        "topologies/ehr-labs.toml",
        "topologies/ehr-sources.toml",
        "topologies/synthea-fhir.toml",
    ] {
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

/// `check --offline` on topologies/ehr-sources.toml (two streams and a
/// table) with `edits`: exit code 1 and stderr.
fn sources_check_fails(edits: &[(&str, &str)]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut text = std::fs::read_to_string(format!("{root}/topologies/ehr-sources.toml")).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "fixture text {from:?} not in ehr-sources.toml"
        );
        text = text.replace(from, to);
    }
    text = text.replace("../schemas", &format!("{root}/schemas"));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", &text);
    let out = resynth()
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_validates_every_source_and_plans_the_sql_against_all_of_them() {
    // Field problems of two sources at once, each with its source's path.
    let err = sources_check_fails(&[
        ("key_field = \"patient_id\"", "key_field = \"mrn\""),
        (
            "event_time_field = \"updated_at\"",
            "event_time_field = \"zip3\"",
        ),
        (
            "diagnosis.avsc\"\nevent_time_field = \"event_time\"",
            "diagnosis.avsc\"\nevent_time_field = \"recorded\"",
        ),
    ]);
    for want in [
        "sources[2].key_field: \"mrn\" is not a field",
        "sources[2].event_time_field: \"zip3\" must be timestamp-millis",
        "sources[1].event_time_field: \"recorded\" is not a field",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
    // The SQL is planned against every source's table: a column of the
    // table source that does not exist is caught before running.
    let err = sources_check_fails(&[("p.zip3,", "p.zip5 AS zip3,")]);
    assert!(err.contains("window.sql") && err.contains("zip5"), "{err}");
    // Config problems of the source list, all of them in one pass.
    let err = sources_check_fails(&[
        ("name = \"diagnoses\"", "name = \"labs\""),
        ("topic = \"ehr.patients\"", "topic = \"ehr.labs.synthetic\""),
    ]);
    for want in [
        "sources[1].name: \"labs\" names another source too",
        "sources[2].topic: \"ehr.labs.synthetic\" is also used as an output topic",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
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

/// A role the gate would reject on every window is a startup problem:
/// `check` resolves the roles against the SQL's planned columns.
#[test]
fn check_resolves_the_gate_roles_against_the_training_table() {
    let err = check_fails(&[
        (
            "target = { column = \"diagnosis_code\", positive = \"E11.9\" }",
            "target = { column = \"hba1c\", positive = \"high\" }",
        ),
        (
            "{ column = \"race\" },",
            "{ column = \"race\", bands = [1] },",
        ),
        ("sensitive = [\"diagnosis_code\"", "sensitive = [\"site\""),
    ]);
    for want in [
        "roles.target: `hba1c` is numeric; give `threshold`, not `positive`",
        "roles.subgroups[race]: `bands` only apply to numeric columns",
        "roles.sensitive: \"site\" is not a column of the training table",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
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

/// Options a `--help` text lists (`--name`), and its positional arguments
/// (`<NAME>`, `[NAME]`) from the usage line.
fn help_items(help: &str) -> std::collections::BTreeSet<String> {
    let mut items = std::collections::BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(usage) = t.strip_prefix("Usage: ") {
            let words: Vec<&str> = usage.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let w = w.trim_end_matches("...");
                // `--train <TRAIN>`: the value of a required option, not an argument.
                if i > 0 && words[i - 1].starts_with("--") {
                    continue;
                }
                if (w.starts_with('<') && w.ends_with('>'))
                    || (w.starts_with('[')
                        && w.ends_with(']')
                        && w != "[OPTIONS]"
                        && w != "[COMMAND]")
                {
                    items.insert(w.to_string());
                }
            }
        }
        let t = t.strip_prefix("-h, ").unwrap_or(t);
        let t = t
            .get(4..)
            .filter(|_| t.starts_with('-') && t.as_bytes().get(2) == Some(&b','))
            .unwrap_or(t);
        if let Some(rest) = t.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if name != "help" && name != "version" {
                items.insert(format!("--{name}"));
            }
        }
    }
    items
}

fn help(args: &[&str]) -> String {
    let out = resynth().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Subcommand names in a `--help` text's "Commands:" list.
fn commands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// The README's command table and the binary agree: every subcommand has a
/// row, every row is a subcommand, each row lists exactly the options and
/// arguments its `--help` does, and where `--help` states exit codes the row
/// states the same ones.
#[test]
fn every_subcommand_help_matches_the_readme_command_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("### Commands")
        .nth(1)
        .expect("README has a Commands table")
        .split("\n\n")
        .nth(2)
        .unwrap();
    let mut rows = std::collections::BTreeMap::new();
    for line in table.lines().skip(2) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let command = cells[1]
            .trim_matches('`')
            .strip_prefix("resynth ")
            .unwrap()
            .to_string();
        let items: std::collections::BTreeSet<String> = cells[2]
            .split('`')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let codes: std::collections::BTreeSet<char> =
            cells[3].chars().filter(|c| c.is_ascii_digit()).collect();
        rows.insert(command, (items, codes));
    }
    let mut found = Vec::new();
    for top in commands(&help(&[])) {
        let sub = commands(&help(&[&top]));
        // `binder` runs on its own too; `audit` only through its subcommand.
        if sub.is_empty() || top == "binder" {
            found.push(top.clone());
        }
        found.extend(sub.into_iter().map(|s| format!("{top} {s}")));
    }
    let listed: Vec<String> = rows.keys().cloned().collect();
    let mut sorted = found.clone();
    sorted.sort();
    assert_eq!(sorted, listed, "README command table vs `resynth --help`");
    for command in &found {
        let args: Vec<&str> = command.split(' ').collect();
        let text = help(&args);
        let (items, codes) = &rows[command];
        let mut from_help = help_items(&text);
        // `binder verify` etc.: the parent's [COMMAND] placeholder is not an argument.
        from_help.retain(|i| i != "[COMMAND]");
        assert_eq!(&from_help, items, "resynth {command}: --help vs README row");
        assert!(
            codes.contains(&'0') && codes.contains(&'2'),
            "resynth {command}: exit codes {codes:?}"
        );
        // The command's own text, not its subcommands' summaries.
        let own = text.split("Commands:").next().unwrap();
        if let Some(stated) = own.split("Exits ").nth(1) {
            let stated: std::collections::BTreeSet<char> = stated
                .split('.')
                .next()
                .unwrap()
                .chars()
                .filter(|c| c.is_ascii_digit())
                .collect();
            assert!(
                stated.is_subset(codes),
                "resynth {command}: --help says exits {stated:?}, README {codes:?}"
            );
        }
    }
}

/// `--version` names the engine version and the commit it was built from.
#[test]
fn version_prints_the_engine_version_and_build_commit() {
    let out = resynth().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!("resynth {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    let commit = text[want.len()..].trim_end().trim_end_matches(')');
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}

/// After `cargo install`, `resynth demo` runs from a directory that holds
/// nothing of the repository: the topology and schemas are built in.
#[test]
fn demo_runs_from_any_directory_with_its_embedded_topology() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .current_dir(dir.path())
        .args([
            "demo",
            "--windows",
            "2",
            "--patients",
            "1200",
            "--drift-at",
            "9",
            "--corrupt",
            "1",
            "--late",
            "0",
            // Never the default port: other runs may hold it.
            "--metrics-addr=",
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("downstream consumer:"), "{stdout}");
    let written = dir.path().join("out/demo-topology/topologies/demo.toml");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/demo.toml"))
            .unwrap()
    );
    assert!(dir.path().join("out/demo/audit.jsonl").is_file());
}

/// One HTTP/1.0 GET against the engine's listener: status and body, or None
/// while nothing listens yet.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `/readyz` until `want` holds for its (status, body), within 60 s.
fn await_readyz(addr: &str, what: &str, want: impl Fn(u16, &str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        if let Some((status, body)) = http_get(addr, "/readyz") {
            if want(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("/readyz never showed {what} within 60 s; last answer {last:?}");
}

/// `/livez` and `/readyz` of the real binary through a broker outage and a
/// SIGTERM. The broker is librdkafka's mock cluster, the one broker whose
/// outage a test can switch on and off without disturbing the other tests'
/// real broker.
#[test]
fn readyz_follows_the_engine_through_a_broker_outage_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let audit = dir.path().join("out");
    let topology = write(
        dir.path(),
        "t.toml",
        &demo_with(&[
            ("out/demo", audit.to_str().unwrap()),
            ("127.0.0.1:9898", &addr),
        ]),
    );
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in [
        "ehr.labs",
        "ehr.labs.dead-letter",
        "ehr.labs.late",
        "ehr.labs.quarantine",
        "resynth.alerts",
        "ehr.labs.synthetic",
    ] {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    // Killed and reaped on any early return, so no engine outlives the test.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(
        resynth()
            .args(["run", topology.to_str().unwrap(), "--brokers"])
            .arg(cluster.bootstrap_servers())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            // A file, not a pipe: warnings during the outage must not fill
            // a pipe nobody reads and block the engine.
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap(),
    );

    // Alive as soon as it listens; ready only once assigned and initialised.
    let body = await_readyz(&addr, "ready", |s, _| s == 200);
    assert!(body.contains("\"ready\":true"), "{body}");
    assert_eq!(
        http_get(&addr, "/livez").map(|(s, _)| s),
        Some(200),
        "/livez"
    );

    // The only broker goes away: not ready, saying why, while still alive.
    cluster.broker_down(1).unwrap();
    let body = await_readyz(&addr, "not ready after the broker went down", |s, b| {
        s == 503 && b.contains("\"reason\":\"demo: broker lost: every broker is down\"")
    });
    assert!(body.contains("\"ready\":false"), "{body}");
    assert_eq!(http_get(&addr, "/livez").map(|(s, _)| s), Some(200));

    // It comes back: ready again without a restart.
    cluster.broker_up(1).unwrap();
    await_readyz(&addr, "ready after the broker came back", |s, _| s == 200);

    // SIGTERM (what Kubernetes sends): a graceful stop with exit 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(status.success(), "exit {status:?} after SIGTERM: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
