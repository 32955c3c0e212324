//! The seven artifacts, each a pure function of the run data (audit log
//! entries and the batch's gate reports) and the binder's generation time,
//! so `binder verify` re-derives them from the binder's own evidence and
//! any edit shows.

use serde_json::{Value, json};

use super::{Release, RunData};

/// Privacy operators (Expert Determination inputs and privacy report).
pub const PRIVACY_OPERATORS: [&str; 11] = [
    "exact_match",
    "dcr_share",
    "nndr_share",
    "outlier_replication",
    "mia_nearest_record",
    "mia_density_ratio",
    "k_anonymity_risk",
    "l_diversity",
    "singling_out_risk",
    "linkability_risk",
    "inference_risk",
];

const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

fn gate(report: &Value) -> &Value {
    &report["gate"]
}

fn results<'a>(report: &'a Value, keep: impl Fn(&str) -> bool + 'a) -> Vec<&'a Value> {
    gate(report)["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| keep(r["operator"].as_str().unwrap_or("")))
        .collect()
}

fn measure(r: &Value) -> Value {
    json!({"operator": r["operator"], "columns": r["columns"], "value": r["statistic"],
           "interval_95": r["interval"], "threshold": r["threshold"],
           "effect_limit": r["effect_limit"], "noise_allowance": r["noise_allowance"],
           "holdout_noise_floor": r["noise_floor"],
           "passed": r["passed"], "how_measured": r["explanation"]})
}

/// The upper end of a measure's 95 % interval, or its value when it has
/// none: the residual risk a reviewer should assume.
fn upper_bound(m: &Value) -> f64 {
    m["interval_95"][1]
        .as_f64()
        .or_else(|| m["value"].as_f64())
        .unwrap_or(0.0)
}

/// What each privacy operator assumes of the attacker.
fn attack_model(operator: &str) -> &'static str {
    match operator {
        "exact_match" => {
            "Recipient looks for released records identical to a real patient's record."
        }
        "dcr_share" => {
            "Recipient measures whether released records sit closer to the training patients than to unseen patients of the same population (distance to closest record, Gower)."
        }
        "nndr_share" => {
            "Recipient looks for released records that sit on one real patient rather than among several (nearest-neighbour distance ratio)."
        }
        "outlier_replication" => {
            "Recipient who knows a real extreme (the highest or lowest value of a measurement, or a category only a few patients have) looks for it in the release to learn that its patient was in the training data."
        }
        "mia_nearest_record" | "mia_density_ratio" => {
            "Membership inference: an attacker holding the release and a candidate patient's full record decides whether that patient was in the training data."
        }
        "k_anonymity_risk" => {
            "Re-identification by linkage: an attacker who knows a person's quasi-identifiers matches them to released records; a match to a real class smaller than k points at fewer than k people."
        }
        "l_diversity" => {
            "Attribute disclosure within a matched class: if every real patient in the class shares the sensitive value, a match reveals it."
        }
        "singling_out_risk" => {
            "Singling out (Anonymeter): predicates built from released records isolate exactly one real patient."
        }
        "linkability_risk" => {
            "Linkability (Anonymeter): two datasets holding different halves of the quasi-identifiers are joined through the release."
        }
        "inference_risk" => {
            "Attribute inference (Anonymeter): an attacker who knows the quasi-identifiers guesses a sensitive value from the nearest released record."
        }
        _ => "",
    }
}

/// 1. Expert Determination inputs.
pub fn expert_determination(d: &RunData, r: &Release, generated_at_ms: i64) -> Value {
    let report = r.final_report(d);
    let roles = &r.config["roles"];
    let measures: Vec<Value> = results(report, |op| PRIVACY_OPERATORS.contains(&op))
        .into_iter()
        .map(|x| {
            let mut m = measure(x);
            m["attack_model"] = json!(attack_model(x["operator"].as_str().unwrap_or("")));
            m
        })
        .collect();
    let largest = measures
        .iter()
        .filter(|m| {
            let op = m["operator"].as_str().unwrap_or("");
            op.starts_with("mia_") || (op.ends_with("_risk") && op != "k_anonymity_risk")
        })
        .max_by(|a, b| upper_bound(a).total_cmp(&upper_bound(b)))
        .map(|m| json!({"operator": m["operator"], "columns": m["columns"], "value": m["value"], "upper_bound": upper_bound(m), "threshold": m["threshold"]}));
    let k = &report["evidence"]["k_anonymity"];
    let passed = measures.iter().all(|m| m["passed"] == true);
    let recipient = r.config["audit"]["recipient"].as_str().unwrap_or("partner");
    json!({
        "artifact": 1,
        "title": "Expert Determination inputs (HIPAA 45 CFR 164.514(b)(1)): statistical report",
        "release": r.summary(),
        "privacy_unit": r.config["model"]["entity_column"],
        "quasi_identifiers": roles["quasi_identifiers"],
        "sensitive_attributes": roles["sensitive"],
        "anticipated_recipient": {"recipient": recipient, "meaning": match recipient {
            "public" => "public release: anyone may obtain the data; judge linkage risk at k = 11",
            "internal" => "internal use within the covered entity under its access controls",
            _ => "a named recipient under a data use agreement that forbids re-identification",
        }},
        "measures": measures,
        "residual_risk": {
            "largest_upper_bound": largest,
            "k_anonymity_at_gate_k": k["gate_k"],
            "k_anonymity_at_public_k": k["public_k"],
            "differential_privacy": {"epsilon": report["epsilon"], "ledger_total_epsilon": report["ledger_total_epsilon"], "note": report["dp_note"]},
        },
        "verdict": if passed {
            "every re-identification measure is within its threshold on the batch released"
        } else {
            "at least one re-identification measure is over its threshold: this batch must not be released"
        },
        "verdict_passed": passed,
        "expiry": expiry(d, r, generated_at_ms),
        "to_be_completed_by_the_expert": {
            "conclusion": "Whether the risk that the anticipated recipient could identify an individual is very small, and under which conditions.",
            "name_and_qualifications": "",
            "signature": "",
            "date": "",
        },
    })
}

/// The conditions under which the determination lapses, and which have.
fn expiry(d: &RunData, r: &Release, now_ms: i64) -> Value {
    let after: Vec<_> = d.entries.iter().filter(|e| e.seq > r.entry.seq).collect();
    let later_fit = after.iter().find(|e| e.kind == "model_fitted");
    let drift_refit = after
        .iter()
        .find(|e| e.kind == "drift_state" && e.data["refit"] == true);
    let other_hash = after.iter().find(|e| {
        e.kind == "batch_published" && e.data["model_sha256"] != r.entry.data["model_sha256"]
    });
    let config_change = after.iter().find(|e| {
        e.kind == "config_snapshot" && e.data["topology_sha256"] != r.config_sha256.as_str()
    });
    let age = now_ms - r.entry.at_ms;
    let cond = |name: &str, e: Option<&&crate::audit::AuditEntry>, what: &str| {
        json!({"condition": name, "happened": e.is_some(),
               "evidence": e.map(|e| format!("{what} (audit entry {})", e.seq))})
    };
    let conditions = vec![
        cond(
            "the source snapshot changes (a model is fitted on a newer window)",
            later_fit,
            "a newer model was fitted",
        ),
        cond(
            "the generator hash changes (another model is published)",
            other_hash,
            "a batch of another model was published",
        ),
        cond(
            "a drift refit starts",
            drift_refit,
            "persistent drift started a refit",
        ),
        cond(
            "the topology configuration changes",
            config_change,
            "the engine ran with another configuration",
        ),
        json!({"condition": "12 months pass since the release", "happened": age > YEAR_MS,
               "evidence": format!("{} days since the release entry", age / (24 * 3600 * 1000))}),
    ];
    let lapsed = conditions.iter().any(|c| c["happened"] == true);
    json!({"status": if lapsed { "lapsed" } else { "in force" }, "as_of_ms": now_ms, "conditions": conditions})
}

/// 2. Methodology specification.
pub fn methodology(d: &RunData, r: &Release) -> Value {
    let c = &r.config;
    let fitted = &r.fitted.data;
    let report = r.final_report(d);
    let attempts: Vec<Value> = r
        .attempts(d)
        .iter()
        .map(|(run, rep)| {
            json!({"validation_run": run, "attempt": rep["attempt"], "sample_seed": rep["sample_seed"],
                   "passed": gate(rep)["passed"],
                   "failed_operators": results(rep, |_| true).iter().filter(|x| x["passed"] == false)
                       .map(|x| x["operator"].clone()).collect::<Vec<_>>()})
        })
        .collect();
    let upto: Vec<_> = d.entries.iter().filter(|e| e.seq < r.entry.seq).collect();
    let count = |kind: &str| upto.iter().filter(|e| e.kind == kind).count();
    json!({
        "artifact": 2,
        "title": "Generation methodology specification",
        "release": r.summary(),
        "generator": {"kind": fitted["generator"], "model_version": fitted["version"], "model_sha256": fitted["sha256"],
                      "reason": fitted["reason"], "engine_version": r.engine["engine_version"],
                      "build_commit": r.engine["build_commit"]},
        "hyperparameters": {"model": c["model"], "copula": c["copula"], "privbayes": c["privbayes"]},
        "training_scope": {
            "source_topic": super::primary_topic(c),
            "sources": c["sources"],
            "source_ranges": fitted["fitted_on"]["source_offsets"],
            "event_time_window_ms": [fitted["fitted_on"]["window_start_ms"], fitted["fitted_on"]["window_end_ms"]],
            "window": c["window"],
            "training_rows": fitted["fitted_on"]["train_rows"],
            "holdout_rows": fitted["fitted_on"]["holdout_rows"],
            "rows_are": format!("one row per privacy unit ({}), built by window.sql", c["model"]["entity_column"].as_str().unwrap_or("patient_id")),
            "split_rule": format!("each {} goes to the holdout when a seeded hash of its id falls below model.holdout_fraction = {}; all of a patient's rows stay on one side",
                c["model"]["entity_column"].as_str().unwrap_or("patient_id"), c["model"]["holdout_fraction"]),
        },
        "seeds": {"base_seed": c["model"]["seed"], "fit_seed": fitted["fit_seed"],
                  "sample_seed": r.entry.data["sample_seed"],
                  "derivation": "split, fit and sample seeds derive from model.seed (split by window, fit by version, sample by version and attempt); a DP fit's seed is not kept"},
        "differential_privacy": {"epsilon_delta_of_this_fit": fitted["epsilon"], "dp": fitted["dp"],
                                 "ledger_total_epsilon": fitted["ledger_total_epsilon"], "budget": c["budget"],
                                 "note": report["dp_note"]},
        "rejection_rules": {"gate": c["gate"], "max_regenerations": c["output"]["max_regenerations"],
                            "require_approval": c["output"]["require_approval"],
                            "rule": "a batch is published only if every gated result passes; a failing batch is regenerated with a new sampling seed up to max_regenerations times, then quarantined (never published)"},
        "what_happened": {"attempts_for_this_release": attempts,
                          "regenerations_for_this_release": attempts.len().saturating_sub(1),
                          "batches_quarantined_before": count("batch_quarantined"),
                          "batches_published_before": count("batch_published"),
                          "refits_refused_before": count("refit_refused"),
                          "windows_skipped_before": count("window_skipped")},
    })
}

fn report_doc(
    d: &RunData,
    r: &Release,
    number: u32,
    title: &str,
    keep: fn(&str) -> bool,
    extra: Value,
) -> Value {
    let report = r.final_report(d);
    let all: Vec<Value> = results(report, keep).into_iter().map(measure).collect();
    let reported: Vec<Value> = gate(report)["reported"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| keep(x["operator"].as_str().unwrap_or("")))
        .map(measure)
        .collect();
    let passed = all.iter().all(|m| m["passed"] == true);
    let mut v = json!({
        "artifact": number, "title": title, "release": r.summary(),
        "rows": report["rows"], "passed": passed,
        "noise_floor": "each result's holdout_noise_floor is the same measure for real holdout patients against the training patients: how far fresh real data already sits",
        "gated_results": all, "reported_not_gated": reported,
    });
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

fn is_privacy(op: &str) -> bool {
    PRIVACY_OPERATORS.contains(&op)
}

fn is_fidelity(op: &str) -> bool {
    !is_privacy(op) && op != "privacy_gate"
}

/// 3. Privacy validation report.
pub fn privacy(d: &RunData, r: &Release) -> Value {
    let report = r.final_report(d);
    report_doc(
        d,
        r,
        3,
        "Privacy validation report",
        is_privacy,
        json!({"thresholds": r.config["gate"], "quasi_identifiers": r.config["roles"]["quasi_identifiers"],
               "sensitive": r.config["roles"]["sensitive"],
               "k_anonymity_evidence": report["evidence"]["k_anonymity"]}),
    )
}

/// 4. Fidelity and utility report.
pub fn fidelity(d: &RunData, r: &Release) -> Value {
    let report = r.final_report(d);
    report_doc(
        d,
        r,
        4,
        "Fidelity and utility report",
        is_fidelity,
        json!({"thresholds": r.config["gate"], "utility_target": r.config["roles"]["target"],
               "sdmetrics_style_scores": gate(report)["aggregates"]}),
    )
}

/// Whether a subgroup's synthetic share collapsed: under half its training
/// share and more than 3 standard errors below it.
fn share_collapsed(s: &Value) -> bool {
    let (pr, ps) = (
        s["train_share"].as_f64().unwrap_or(0.0),
        s["synthetic_share"].as_f64().unwrap_or(0.0),
    );
    let (nr, ns) = (
        s["train_total"].as_f64().unwrap_or(0.0),
        s["synthetic_total"].as_f64().unwrap_or(0.0),
    );
    if s["train_rows"].as_u64().unwrap_or(0) < 20 || nr == 0.0 || ns == 0.0 {
        return false;
    }
    let se = (pr * (1.0 - pr) * (1.0 / nr + 1.0 / ns)).sqrt();
    ps < pr / 2.0 && pr - ps > 3.0 * se
}

/// Collapsed subgroups of one attempt: by share and by utility.
fn collapses(rep: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for s in rep["evidence"]["subgroups"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if share_collapsed(s) {
            out.push(json!({"subgroup": s["subgroup"], "by": "share", "train_share": s["train_share"], "synthetic_share": s["synthetic_share"]}));
        }
    }
    for x in results(rep, |op| op == "utility_subgroup_gap") {
        if x["passed"] == false {
            out.push(json!({"subgroup": x["columns"][1], "by": "utility", "auroc_gap": x["statistic"], "threshold": x["threshold"]}));
        }
    }
    out
}

/// 5. Bias and subgroup report.
pub fn subgroups(d: &RunData, r: &Release) -> Value {
    let report = r.final_report(d);
    let attempts = r.attempts(d);
    let history: Vec<Value> = attempts
        .iter()
        .map(|(run, rep)| json!({"validation_run": run, "passed": gate(rep)["passed"], "collapsed": collapses(rep)}))
        .collect();
    let final_collapsed = collapses(report);
    let earlier_collapsed = history
        .iter()
        .rev()
        .skip(1)
        .any(|h| h["collapsed"].as_array().is_some_and(|c| !c.is_empty()));
    let published = r.status != "quarantined";
    let mitigation = if !final_collapsed.is_empty() && !published {
        "none possible: subgroups were still collapsed after every regeneration allowed (output.max_regenerations); the batch was quarantined and never published".to_string()
    } else if !final_collapsed.is_empty() {
        "none taken: the collapse is by share only, which is reported, not gated; the batch passed every gated operator. Conditional sampling of the subgroup (`resynth sample --where column=label`) and a re-gate are left to the operator".to_string()
    } else if earlier_collapsed {
        format!(
            "regenerated with a new sampling seed and re-gated ({} attempts); the released attempt has no collapsed subgroup",
            attempts.len()
        )
    } else {
        "none needed: no subgroup collapsed".to_string()
    };
    let utility: Vec<Value> = results(report, |op| op == "utility_subgroup_gap")
        .into_iter()
        .map(measure)
        .collect();
    let skipped: Vec<Value> = gate(report)["reported"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["operator"] == "utility_subgroup_gap")
        .map(measure)
        .collect();
    json!({
        "artifact": 5,
        "title": "Bias and subgroup report",
        "release": r.summary(),
        "subgroups_declared": r.config["roles"]["subgroups"],
        "collapse_rule": "a subgroup collapses when its synthetic share is under half its training share and more than 3 standard errors below it (subgroups with at least 20 training rows), or when its utility gap (TSTR vs TRTR AUROC on holdout) fails the gate",
        "shares": report["evidence"]["subgroups"],
        "utility_gaps": utility,
        "utility_not_gated": skipped,
        "collapsed": final_collapsed,
        "attempt_history": history,
        "mitigation": mitigation,
        "thresholds": {"utility_auroc_gap_max": r.config["gate"]["utility_auroc_gap_max"], "utility_min_subgroup_rows": r.config["gate"]["utility_min_subgroup_rows"]},
    })
}

/// 7. Access evidence, as of the binder's audit head.
pub fn access(d: &RunData, r: &Release) -> Value {
    let topology = r.topology.as_str();
    let reads: Vec<Value> = d
        .entries
        .iter()
        .filter(|e| e.kind == "source_read" && e.topology == topology)
        .map(|e| {
            let mut v = e.data.clone();
            v["audit_seq"] = json!(e.seq);
            v["at_ms"] = json!(e.at_ms);
            v["this_release"] = json!(e.data["window"] == r.entry.data["window"]);
            v
        })
        .collect();
    let actions: Vec<Value> = d
        .entries
        .iter()
        .filter(|e| e.kind == "operator_action" || e.kind == "release_approval")
        .map(|e| {
            let mut v = e.data.clone();
            if e.kind == "release_approval" {
                v = json!({"command": "approve (recorded decision)", "release": e.data["release"],
                           "result": e.data["result"], "approver": e.data["approver"], "keyid": e.data["keyid"],
                           "envelope_sha256": e.data["envelope_sha256"]});
            }
            v["audit_seq"] = json!(e.seq);
            v["at_ms"] = json!(e.at_ms);
            v
        })
        .collect();
    let engines: Vec<Value> = d
        .entries
        .iter()
        .filter(|e| e.kind == "config_snapshot" && e.topology == topology)
        .map(|e| json!({"audit_seq": e.seq, "at_ms": e.at_ms, "principal": e.data["principal"],
                        "transactional_id": e.data["transactional_id"], "consumer_group": e.data["consumer_group"]}))
        .collect();
    json!({
        "artifact": 7,
        "title": "Access-control evidence",
        "release": r.summary(),
        "engine_runs": engines,
        "source_reads": reads,
        "operator_actions": actions,
        "note": "source_reads lists every read of the source topic (PHI) by the engine, one entry per window job once it committed; operator_actions every CLI command recorded in the audit log, secrets redacted. Broker-side ACLs and authentication logs are outside the engine and must be added by the data platform.",
    })
}
