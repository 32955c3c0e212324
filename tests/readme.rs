//! The README's topology reference is checked against the topology structs:
//! an option added to the code without documentation fails this test. The
//! on-call kit too: alert rules pass their promtool unit tests, every alert
//! has its runbook, and the dashboard's queries parse and name only metrics
//! the engine exports.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use resynth::topology::Topology;

fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = value {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(_) if path != "kafka.properties" => keys(&path, v, out),
                _ => out.push(path),
            }
        }
    }
}

#[test]
fn every_topology_option_is_in_the_readme() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut topology = Topology::load(std::path::Path::new(&format!(
        "{root}/topologies/demo.toml"
    )))
    .unwrap();
    topology.kafka.transactional_id = Some("x".into());
    let value = toml::Value::try_from(&topology).unwrap();
    let mut all = Vec::new();
    keys("", &value, &mut all);
    all.push("kafka.properties".into());
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    // persist_k / persist_m share one row.
    let missing: Vec<&&String> = missing
        .iter()
        .filter(|k| !readme.contains(&format!("`{k}`,")))
        .collect();
    assert!(
        missing.is_empty(),
        "options missing from README's topology reference: {missing:?}"
    );
    assert!(all.len() > 40, "walked {} options", all.len());
}

#[test]
fn every_lineage_header_and_metric_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for h in resynth::sink::header_names()
        .into_iter()
        .chain([resynth::audit::anchor::HEADER, "resynth.approval"])
    {
        assert!(readme.contains(&format!("`{h}`")), "{h}");
    }
    for m in resynth::telemetry::CATALOGUE {
        assert!(readme.contains(m), "{m}");
    }
}

#[test]
fn every_gate_operator_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Gate operators")
        .nth(1)
        .expect("README has a Gate operators section");
    // Every gated operator; and the list is complete: every
    // `pub const NAME: &str = "name";` of the operator module is in it.
    let names = resynth::gate::operator::ALL;
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/gate/report.rs"))
            .unwrap();
    let declared: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    for d in &declared {
        assert!(names.contains(d), "operator::ALL lacks {d}");
    }
    for name in names {
        assert!(
            section.contains(&format!("| `{name}` |")),
            "operator {name} has no row in the README's Gate operators table"
        );
    }
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every `resynth_*` metric name in `text`, with the histogram suffixes
/// Prometheus adds removed.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("resynth_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| resynth::telemetry::CATALOGUE.contains(b))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end;
    }
    out
}

/// (alert name, its lines) of the shipped rules file.
fn alerts(rules: &str) -> Vec<(String, String)> {
    rules
        .split("      - alert: ")
        .skip(1)
        .map(|chunk| {
            let name = chunk.lines().next().unwrap().trim().to_string();
            (name, chunk.to_string())
        })
        .collect()
}

#[test]
fn every_alert_is_labelled_linked_to_its_runbook_and_named_in_the_readme() {
    let rules =
        std::fs::read_to_string(repo_file("deploy/prometheus/rules/resynth.rules.yml")).unwrap();
    let tests =
        std::fs::read_to_string(repo_file("deploy/prometheus/rules/resynth.rules.test.yml"))
            .unwrap();
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let alerts = alerts(&rules);
    assert!(alerts.len() >= 14, "{} alerts", alerts.len());
    for (name, body) in &alerts {
        assert!(
            body.contains("severity: page") || body.contains("severity: ticket"),
            "{name}: severity"
        );
        for key in ["summary:", "description:"] {
            assert!(body.contains(key), "{name}: {key}");
        }
        let description = body.split("description:").nth(1).unwrap();
        assert!(
            description.contains("{{ $labels.topology }}"),
            "{name}: the description names the topology"
        );
        let runbook = format!("docs/runbooks/{name}.md");
        assert!(
            body.contains(&format!("runbook_url: {runbook}")),
            "{name}: runbook_url {runbook}"
        );
        let text = std::fs::read_to_string(repo_file(&runbook))
            .unwrap_or_else(|_| panic!("{runbook} missing"));
        for section in [
            "## What it means",
            "## First three things to look at",
            "## Mitigate",
            "## Escalate",
        ] {
            assert!(text.contains(section), "{runbook}: no {section:?} section");
        }
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} has no promtool unit test"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not in the README"
        );
    }
    // Every metric the rules use is one the engine exports.
    for m in metric_names(&rules) {
        assert!(
            resynth::telemetry::CATALOGUE.contains(&m.as_str()),
            "rules use {m}, which telemetry.rs does not export"
        );
    }
}

fn run(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        tool.display()
    );
    text
}

/// `promtool test rules`: for each alert, series that fire it (expected
/// labels and annotations) and series that must not.
#[test]
fn alert_rules_pass_promtool_unit_tests() {
    let Some(promtool) = common::prometheus_tool("promtool") else {
        return;
    };
    let dir = repo_file("deploy/prometheus");
    let text = run(
        &promtool,
        &[
            "check",
            "rules",
            dir.join("rules/resynth.rules.yml").to_str().unwrap(),
        ],
    );
    assert!(text.contains("SUCCESS"), "{text}");
    let text = run(
        &promtool,
        &[
            "check",
            "config",
            dir.join("prometheus.yml").to_str().unwrap(),
        ],
    );
    assert!(text.contains("SUCCESS"), "{text}");
    let text = run(
        &promtool,
        &[
            "test",
            "rules",
            dir.join("rules/resynth.rules.test.yml").to_str().unwrap(),
        ],
    );
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The dashboard: one uid, unique panel ids, a Prometheus data-source
/// variable every query uses, the panels on-call opens first, and PromQL
/// that parses (promtool, on a rules file made of the panels' queries) and
/// names only metrics the engine exports.
#[test]
fn dashboard_is_well_formed_and_queries_what_the_engine_exports() {
    let text =
        std::fs::read_to_string(repo_file("deploy/grafana/dashboards/resynth.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["uid"], "resynth-overview");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no Prometheus data-source variable"
    );
    assert!(vars.iter().any(|v| v["name"] == "topology"));
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("topology=~\"$topology\""),
                "panel {id}: {expr}"
            );
            exprs.push((id, expr.to_string()));
        }
    }
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Events in / dead-lettered / late",
        "Consumer lag",
        "Windows closed",
        "Drift state",
        "Top drift scores per column",
        "Refits",
        "Gate failures by operator",
        "Batches published vs quarantined",
        "Privacy budget against its cap",
        "Stage latency (p95)",
    ] {
        assert!(titles.contains(&want), "no panel {want:?}");
    }
    let used = metric_names(
        &exprs
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for m in &used {
        assert!(
            resynth::telemetry::CATALOGUE.contains(&m.as_str()),
            "dashboard queries {m}, which telemetry.rs does not export"
        );
    }
    assert!(used.len() >= 20, "dashboard covers {} metrics", used.len());

    let Some(promtool) = common::prometheus_tool("promtool") else {
        return;
    };
    // Grafana's variables replaced by values PromQL accepts.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (id, expr)) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$topology", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:panel_{id}_{n}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let text = run(&promtool, &["check", "rules", file.to_str().unwrap()]);
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{text}"
    );
}
