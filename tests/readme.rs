//! The README's topology reference is checked against the topology structs:
//! an option added to the code without documentation fails this test.

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
    use resynth::telemetry as t;
    for m in [
        t::EVENTS_IN,
        t::DEAD_LETTERED,
        t::EVENTS_LATE,
        t::EVENTS_LATE_ACCEPTED,
        t::BUFFERED_EVENTS,
        t::BACKPRESSURE_PAUSES,
        t::WINDOWS_MERGED,
        t::WINDOWS_CLOSED,
        t::WINDOWS_SKIPPED,
        t::DRIFT_SCORE,
        t::DRIFT_STATE,
        t::DRIFT_SECONDS_SINCE_REFIT,
        t::REFITS,
        t::GATE_RESULTS,
        t::GATE_OPERATOR_FAILURES,
        t::BATCHES_PUBLISHED,
        t::BATCHES_QUARANTINED,
        t::RECORDS_PUBLISHED,
        t::CONSUMER_LAG,
        t::TRANSACTIONS,
        t::STAGE_SECONDS,
        t::LINEAGE_EVENTS,
    ] {
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
