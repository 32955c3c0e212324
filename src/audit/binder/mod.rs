//! The audit binder: the seven artifacts an HHS OCR audit asks for, for
//! one release, generated from the engine's own run data and checkable by
//! anyone who receives it.
//!
//! A release is a batch (by batch id, or `vN` for the batch of model
//! version N). `build` reads the verified audit log, the batch's gate
//! reports and the OpenLineage file from the audit directory, asks the
//! broker which consumer groups read the synthetic topic, and writes:
//!
//! ```text
//! index.html                         the page a person opens first
//! manifest.json                      every file's sha256, the release, the audit head
//! 01-expert-determination.{json,html}
//! 02-methodology.{json,html}
//! 03-privacy-validation.{json,html}
//! 04-fidelity-utility.{json,html}
//! 05-subgroups.{json,html}
//! 06-lineage.openlineage.jsonl       OpenLineage run events of this release
//! 06-consumers.json                  consumer groups reading the synthetic topic
//! 07-access-evidence.{json,html}
//! evidence/audit.jsonl               the hash-chained log up to the head
//! evidence/reports/<run>.json        the batch's gate reports, one per attempt
//! approvals/*.dsse.json              signed decisions (added by `approve`)
//! ```
//!
//! `verify` re-checks every digest, the audit chain (and that each gate
//! report is the one the log recorded), re-derives artifacts 1–5 and 7 from
//! the evidence and compares them byte for byte, follows the lineage links,
//! and verifies approvals against trusted public keys. An approval signs the
//! sha256 of `manifest.json`; `approvals/` is outside the manifest, so
//! adding an approval does not change what was approved.

pub mod artifacts;
pub mod evidence;
pub mod html;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AuditEntry, openlineage};

pub const FORMAT: &str = "resynth-binder/1";

#[derive(Debug, thiserror::Error)]
pub enum BinderError {
    #[error(transparent)]
    Audit(#[from] super::AuditError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("release {0:?}: {1}")]
    Release(String, String),
    #[error("consumer registry: {0}")]
    Broker(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BinderError {
    BinderError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What a binder is built from.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    pub entries: Vec<AuditEntry>,
    /// Gate reports by validation run.
    pub reports: BTreeMap<String, Value>,
    /// OpenLineage events.
    pub lineage: Vec<Value>,
}

/// One release, resolved in the run data.
#[derive(Debug, Clone)]
pub struct Release {
    pub batch_id: String,
    pub topology: String,
    /// `published`, `held` (awaiting approval), `rejected` or `quarantined`.
    pub status: String,
    /// The entry that records the batch (`batch_published`, `release_held`
    /// or `batch_quarantined`).
    pub entry: AuditEntry,
    /// The `model_fitted` entry of its model.
    pub fitted: AuditEntry,
    /// The topology in force (from the last `config_snapshot` before it).
    pub config: Value,
    pub config_sha256: String,
    /// The snapshot's engine facts (version, build commit).
    pub engine: Value,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl Release {
    /// Finds a release by batch id or `vN` / `<topology>:vN`.
    pub fn resolve(d: &RunData, id: &str) -> Result<Release, BinderError> {
        let err = |m: &str| BinderError::Release(id.to_string(), m.to_string());
        let version = id
            .rsplit(':')
            .next()
            .and_then(|v| v.strip_prefix('v'))
            .and_then(|v| v.parse::<u64>().ok());
        let kinds = ["batch_published", "release_held", "batch_quarantined"];
        let candidates: Vec<&AuditEntry> = d
            .entries
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .filter(|e| match version {
                Some(v) => e.data["model_version"].as_u64() == Some(v),
                None => e.data["batch_id"].as_str() == Some(id),
            })
            .collect();
        // The first record of the batch (held, or published at once): what
        // was validated, and from when its expiry runs.
        let entry = candidates
            .first()
            .copied()
            .ok_or_else(|| err("no batch with this id (or model version) in the audit log"))?
            .clone();
        let batch_id = entry.data["batch_id"].as_str().unwrap_or("").to_string();
        let has = |kind: &str| {
            d.entries
                .iter()
                .any(|e| e.kind == kind && e.data["batch_id"].as_str() == Some(&batch_id))
        };
        let status = if has("batch_published") {
            "published"
        } else if has("release_rejected") {
            "rejected"
        } else if entry.kind == "release_held" {
            "held"
        } else {
            "quarantined"
        }
        .to_string();
        let model_version = entry.data["model_version"].as_u64();
        let fitted = d
            .entries
            .iter()
            .rfind(|e| {
                e.seq < entry.seq
                    && e.kind == "model_fitted"
                    && e.topology == entry.topology
                    && e.data["version"].as_u64() == model_version
            })
            .cloned()
            .ok_or_else(|| err("the log has no model_fitted entry for its model"))?;
        let snapshot = d
            .entries
            .iter()
            .rfind(|e| {
                e.seq < entry.seq && e.kind == "config_snapshot" && e.topology == entry.topology
            })
            .ok_or_else(|| {
                err("the log has no config_snapshot before it: the run predates the binder (run the engine again to produce one)")
            })?;
        Ok(Release {
            batch_id,
            topology: entry.topology.clone(),
            status,
            config: snapshot.data["topology"].clone(),
            config_sha256: snapshot.data["topology_sha256"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            engine: json!({"engine_version": snapshot.data["engine_version"], "build_commit": snapshot.data["build_commit"]}),
            fitted,
            entry,
        })
    }

    /// Validation runs of the batch's attempts, in order.
    pub fn attempt_runs(&self) -> Vec<String> {
        let prefix = format!("{}-a", self.batch_id);
        let last = self.entry.data["validation_run"].as_str().unwrap_or("");
        let n: usize = last
            .strip_prefix(&prefix)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        (0..=n).map(|a| format!("{prefix}{a}")).collect()
    }

    /// (validation run, report) of every attempt that has a report.
    pub fn attempts<'a>(&self, d: &'a RunData) -> Vec<(String, &'a Value)> {
        self.attempt_runs()
            .into_iter()
            .filter_map(|r| d.reports.get(&r).map(|rep| (r, rep)))
            .collect()
    }

    /// The report of the attempt that decided the batch.
    pub fn final_report<'a>(&self, d: &'a RunData) -> &'a Value {
        static NULL: Value = Value::Null;
        self.entry.data["validation_run"]
            .as_str()
            .and_then(|r| d.reports.get(r))
            .unwrap_or(&NULL)
    }

    /// The identifying facts every artifact repeats.
    pub fn summary(&self) -> Value {
        let e = &self.entry.data;
        json!({"batch_id": self.batch_id, "topology": self.topology,
               "model_version": e["model_version"], "model_sha256": e["model_sha256"],
               "validation_run": e["validation_run"], "window": e["window"], "records": e["records"],
               "batch_sha256": e["batch_sha256"], "audit_seq": self.entry.seq, "recorded_at_ms": self.entry.at_ms})
    }
}

impl RunData {
    /// From an audit directory: the verified log, the reports of `batch`'s
    /// attempts (all reports when `None`) and the lineage file.
    pub fn from_audit_dir(dir: &Path, lineage_file: &Path) -> Result<RunData, BinderError> {
        let entries = super::verify(&dir.join("audit.jsonl"))?;
        let mut reports = BTreeMap::new();
        if let Ok(list) = std::fs::read_dir(dir.join("reports")) {
            for e in list.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    let text = std::fs::read(&p).map_err(|e| file_err(&p, e))?;
                    let v: Value = serde_json::from_slice(&text).map_err(|e| file_err(&p, e))?;
                    let name = p
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    reports.insert(name, v);
                }
            }
        }
        let path = dir.join(lineage_file);
        let lineage = if path.exists() {
            openlineage::read_events(&path).map_err(|e| file_err(&path, e))?
        } else {
            Vec::new()
        };
        Ok(RunData {
            entries,
            reports,
            lineage,
        })
    }
}

/// The lineage events of one release: its window run, that run's gate
/// runs, its engine run's START/COMPLETE/FAIL, and later OTHER events.
pub fn release_events(events: &[Value], batch_id: &str) -> Vec<Value> {
    let facet = |e: &Value| e["run"]["facets"]["resynth"]["batchId"].as_str() == Some(batch_id);
    let window_runs: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| {
            facet(e)
                && e["job"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(".window"))
        })
        .filter_map(|e| e["run"]["runId"].as_str().map(str::to_string))
        .collect();
    let parents: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| {
            e["run"]["runId"]
                .as_str()
                .is_some_and(|r| window_runs.contains(r))
        })
        .filter_map(|e| {
            e["run"]["facets"]["parent"]["run"]["runId"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    events
        .iter()
        .filter(|e| {
            let run = e["run"]["runId"].as_str().unwrap_or("");
            let parent = e["run"]["facets"]["parent"]["run"]["runId"]
                .as_str()
                .unwrap_or("");
            window_runs.contains(run) || window_runs.contains(parent) || parents.contains(run)
        })
        .cloned()
        .collect()
}

/// Options of `build`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Broker to read the consumer registry from; `None` records that it
    /// was not queried.
    pub brokers: Option<String>,
    pub kafka_properties: BTreeMap<String, String>,
    /// Generation time (ms); `None` = now.
    pub generated_at_ms: Option<i64>,
}

/// The JSON artifacts derivable from the evidence (1–5 and 7): (file stem, title, body).
pub fn derived(
    d: &RunData,
    r: &Release,
    generated_at_ms: i64,
) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "01-expert-determination",
            "Expert Determination inputs",
            artifacts::expert_determination(d, r, generated_at_ms),
        ),
        (
            "02-methodology",
            "Generation methodology specification",
            artifacts::methodology(d, r),
        ),
        (
            "03-privacy-validation",
            "Privacy validation report",
            artifacts::privacy(d, r),
        ),
        (
            "04-fidelity-utility",
            "Fidelity and utility report",
            artifacts::fidelity(d, r),
        ),
        (
            "05-subgroups",
            "Bias and subgroup report",
            artifacts::subgroups(d, r),
        ),
        (
            "07-access-evidence",
            "Access-control evidence",
            artifacts::access(d, r),
        ),
    ]
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("json serialises");
    b.push(b'\n');
    b
}

fn left_for_a_person(number: u32) -> &'static str {
    match number {
        1 => "the qualified expert's conclusion, name and qualifications, signature and date",
        2 => "none",
        3 | 4 => "none (a reviewer reads the thresholds against the intended use)",
        5 => "judging whether a reported share collapse matters for the intended use",
        6 => "none",
        7 => "broker-side ACL and authentication logs (outside the engine)",
        _ => "",
    }
}

/// Assembles the binder of `release` into `out`; returns the manifest.
pub fn build(
    audit_dir: &Path,
    lineage_file: &Path,
    release: &str,
    out: &Path,
    options: &BuildOptions,
) -> Result<Value, BinderError> {
    let data = RunData::from_audit_dir(audit_dir, lineage_file)?;
    let r = Release::resolve(&data, release)?;
    let now = options.generated_at_ms.unwrap_or_else(super::now_ms);
    crate::owner_only::create_dir_all(&out.join("evidence/reports"))
        .map_err(|e| file_err(out, e))?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (stem, title, body) in derived(&data, &r, now) {
        files.push((format!("{stem}.json"), pretty(&body)));
        files.push((
            format!("{stem}.html"),
            html::page(title, &body).into_bytes(),
        ));
    }
    let events = release_events(&data.lineage, &r.batch_id);
    let mut jsonl = String::new();
    for e in &events {
        jsonl.push_str(&e.to_string());
        jsonl.push('\n');
    }
    files.push(("06-lineage.openlineage.jsonl".into(), jsonl.into_bytes()));
    let output_topic = r.config["output"]["topic"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let consumers = match &options.brokers {
        Some(b) => {
            let anchored = super::anchor::scan(
                b,
                std::slice::from_ref(&output_topic),
                &options.kafka_properties,
            )
            .map_err(BinderError::Broker)?;
            let mine = anchored
                .iter()
                .find(|a| a.batch_id == r.batch_id)
                .map(|a| (a.partition, a.last_offset));
            super::consumers::registry(b, &output_topic, mine, &options.kafka_properties)
                .map_err(BinderError::Broker)?
        }
        None => {
            json!({"topic": output_topic, "not_queried": "no broker given (binder built with --offline)"})
        }
    };
    files.push(("06-consumers.json".into(), pretty(&consumers)));
    // Evidence: the log up to the head, and the batch's reports as stored.
    let log = std::fs::read(audit_dir.join("audit.jsonl")).map_err(|e| file_err(audit_dir, e))?;
    files.push(("evidence/audit.jsonl".into(), log));
    for run in r.attempt_runs() {
        let p = audit_dir.join("reports").join(format!("{run}.json"));
        if let Ok(bytes) = std::fs::read(&p) {
            files.push((format!("evidence/reports/{run}.json"), bytes));
        }
    }
    for (path, bytes) in &files {
        let p = out.join(path);
        crate::owner_only::write(&p, bytes).map_err(|e| file_err(&p, e))?;
    }
    // Decisions already recorded for this release, with the manifests they
    // signed (outside the manifest, like every approval).
    for e in data.entries.iter().filter(|e| {
        e.kind == "release_approval" && e.data["release"].as_str() == Some(r.batch_id.as_str())
    }) {
        let dir = out.join("approvals");
        crate::owner_only::create_dir_all(&dir).map_err(|x| file_err(&dir, x))?;
        let envelope = serde_json::to_vec_pretty(&e.data["envelope"]).unwrap_or_default();
        let p = dir.join(format!("entry-{}.dsse.json", e.seq));
        crate::owner_only::write(&p, &envelope).map_err(|x| file_err(&p, x))?;
        if let Some(text) = e.data["manifest_text"].as_str() {
            let p = dir.join(format!("{}.manifest.json", sha256_hex(text.as_bytes())));
            crate::owner_only::write(&p, text.as_bytes()).map_err(|x| file_err(&p, x))?;
        }
    }
    let head = data.entries.last();
    let artifacts = json!([
        {"number": 1, "title": "Expert Determination report (statistical inputs)", "files": ["01-expert-determination.html", "01-expert-determination.json"]},
        {"number": 2, "title": "Generation methodology specification", "files": ["02-methodology.html", "02-methodology.json"]},
        {"number": 3, "title": "Privacy validation report", "files": ["03-privacy-validation.html", "03-privacy-validation.json"]},
        {"number": 4, "title": "Fidelity and utility report", "files": ["04-fidelity-utility.html", "04-fidelity-utility.json"]},
        {"number": 5, "title": "Bias and subgroup report", "files": ["05-subgroups.html", "05-subgroups.json"]},
        {"number": 6, "title": "Provenance and lineage trail (OpenLineage) and downstream consumer registry", "files": ["06-lineage.openlineage.jsonl", "06-consumers.json"]},
        {"number": 7, "title": "Access-control evidence", "files": ["07-access-evidence.html", "07-access-evidence.json"]},
    ]);
    let mut artifacts = artifacts;
    for a in artifacts.as_array_mut().into_iter().flatten() {
        let n = a["number"].as_u64().unwrap_or(0) as u32;
        a["left_for_a_person"] = json!(left_for_a_person(n));
    }
    let mut release_summary = r.summary();
    release_summary["status"] = json!(r.status);
    let mut manifest = json!({
        "format": FORMAT,
        "release": release_summary,
        "generated_at": openlineage::rfc3339(now),
        "generated_at_ms": now,
        "engine_version": env!("CARGO_PKG_VERSION"),
        "build_commit": env!("RESYNTH_BUILD_COMMIT"),
        "audit_head": {"seq": head.map(|e| e.seq), "hash": head.map(|e| e.hash.clone())},
        "artifacts": artifacts,
        "files": files.iter().map(|(p, b)| json!({"path": p, "sha256": sha256_hex(b), "bytes": b.len()})).collect::<Vec<_>>(),
    });
    let index = html::index(&manifest);
    crate::owner_only::write(&out.join("index.html"), index.as_bytes())
        .map_err(|e| file_err(out, e))?;
    manifest["files"].as_array_mut().expect("files").push(
        json!({"path": "index.html", "sha256": sha256_hex(index.as_bytes()), "bytes": index.len()}),
    );
    let bytes = pretty(&manifest);
    crate::owner_only::write(&out.join("manifest.json"), &bytes).map_err(|e| file_err(out, e))?;
    Ok(manifest)
}

/// sha256 of a binder's `manifest.json`: what an approval signs.
pub fn manifest_digest(dir: &Path) -> Result<String, BinderError> {
    let p = dir.join("manifest.json");
    let bytes = std::fs::read(&p).map_err(|e| file_err(&p, e))?;
    Ok(sha256_hex(&bytes))
}

/// One verification check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// Everything `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    pub release: String,
    pub manifest_sha256: String,
    pub checks: Vec<Check>,
    /// Approvals that verified: (approver, result, key id).
    pub approvals: Vec<(String, String, String)>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn push(&mut self, check: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            check: check.into(),
            ok,
            detail: detail.into(),
        });
    }
}

/// Verifies a binder directory. `trusted` are the approvers' public keys;
/// `require_approval` fails the binder without a valid `pass` decision.
pub fn verify(
    dir: &Path,
    trusted: &[ed25519_dalek::VerifyingKey],
    require_approval: bool,
) -> Result<Verification, BinderError> {
    let mut v = Verification::default();
    let mpath = dir.join("manifest.json");
    let mbytes = std::fs::read(&mpath).map_err(|e| file_err(&mpath, e))?;
    v.manifest_sha256 = sha256_hex(&mbytes);
    let manifest: Value = serde_json::from_slice(&mbytes).map_err(|e| file_err(&mpath, e))?;
    if manifest["format"] != FORMAT {
        v.push(
            "manifest",
            false,
            format!("format {} is not {FORMAT}", manifest["format"]),
        );
        return Ok(v);
    }
    v.release = manifest["release"]["batch_id"]
        .as_str()
        .unwrap_or("")
        .to_string();

    // 1. Digests: every listed file, nothing unlisted outside approvals/.
    let mut listed = std::collections::BTreeSet::new();
    let mut bad = Vec::new();
    for f in manifest["files"].as_array().into_iter().flatten() {
        let path = f["path"].as_str().unwrap_or("");
        listed.insert(path.to_string());
        match std::fs::read(dir.join(path)) {
            Ok(b) if sha256_hex(&b) == f["sha256"].as_str().unwrap_or("") => {}
            Ok(_) => bad.push(format!("{path}: sha256 differs from the manifest")),
            Err(e) => bad.push(format!("{path}: {e}")),
        }
    }
    for found in walk(dir) {
        if !listed.contains(&found) && found != "manifest.json" && !found.starts_with("approvals/")
        {
            bad.push(format!("{found}: not in the manifest"));
        }
    }
    v.push(
        "digests",
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} files match manifest.json", listed.len())
        } else {
            bad.join("; ")
        },
    );

    // 2. The audit chain and its head.
    let log = dir.join("evidence/audit.jsonl");
    let entries = match super::verify(&log) {
        Ok(e) => e,
        Err(e) => {
            v.push("audit chain", false, e.to_string());
            return Ok(v);
        }
    };
    let head = entries.last();
    let head_ok = head.map(|e| e.seq) == manifest["audit_head"]["seq"].as_u64()
        && head.map(|e| e.hash.as_str()) == manifest["audit_head"]["hash"].as_str();
    v.push(
        "audit chain",
        head_ok,
        format!(
            "{} entries chained; head {}",
            entries.len(),
            if head_ok {
                "matches the manifest"
            } else {
                "differs from the manifest"
            }
        ),
    );

    // 3. Gate reports are the ones the log recorded.
    let mut data = RunData {
        entries,
        ..Default::default()
    };
    let recorded: BTreeMap<String, String> = data
        .entries
        .iter()
        .filter(|e| e.kind == "reports_written")
        .flat_map(|e| e.data["reports"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            Some((
                r["name"].as_str()?.to_string(),
                r["sha256"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut problems = Vec::new();
    for p in walk(&dir.join("evidence/reports")) {
        let Some(name) = p.strip_suffix(".json") else {
            continue;
        };
        let path = dir.join("evidence/reports").join(&p);
        let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
        match recorded.get(name) {
            Some(d) if *d == sha256_hex(&bytes) => {}
            Some(_) => problems.push(format!("{name}: differs from the report the log recorded")),
            None => problems.push(format!("{name}: the log records no digest for it")),
        }
        match serde_json::from_slice(&bytes) {
            Ok(j) => {
                data.reports.insert(name.to_string(), j);
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    v.push(
        "gate reports",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} reports match the digests in the audit log",
                data.reports.len()
            )
        } else {
            problems.join("; ")
        },
    );

    // 4. Artifacts 1–5 and 7 re-derived from the evidence.
    let release = match Release::resolve(&data, &v.release) {
        Ok(r) => r,
        Err(e) => {
            v.push("artifacts", false, e.to_string());
            return Ok(v);
        }
    };
    let at = manifest["generated_at_ms"].as_i64().unwrap_or(0);
    let mut differ = Vec::new();
    for (stem, title, body) in derived(&data, &release, at) {
        let json_path = dir.join(format!("{stem}.json"));
        if std::fs::read(&json_path).ok() != Some(pretty(&body)) {
            differ.push(format!("{stem}.json"));
        }
        let html_path = dir.join(format!("{stem}.html"));
        if std::fs::read(&html_path).ok() != Some(html::page(title, &body).into_bytes()) {
            differ.push(format!("{stem}.html"));
        }
    }
    if std::fs::read(dir.join("index.html")).ok()
        != Some(
            html::index(&{
                let mut m = manifest.clone();
                if let Some(files) = m["files"].as_array_mut() {
                    files.retain(|f| f["path"] != "index.html");
                }
                m
            })
            .into_bytes(),
        )
    {
        differ.push("index.html".into());
    }
    v.push(
        "artifacts",
        differ.is_empty(),
        if differ.is_empty() {
            "artifacts 1-5 and 7 and the index re-derive from the evidence byte for byte"
                .to_string()
        } else {
            format!("not what the evidence gives: {}", differ.join(", "))
        },
    );

    // 5. Lineage links.
    let lineage_path = dir.join("06-lineage.openlineage.jsonl");
    let problems = match openlineage::read_events(&lineage_path) {
        Ok(events) => lineage_problems(&events, &release),
        Err(e) => vec![e],
    };
    v.push("lineage links", problems.is_empty(), if problems.is_empty() {
        "engine run → window run → gate runs, datasets, batch, model and validation run agree with the log".to_string()
    } else {
        problems.join("; ")
    });

    // 6. Approvals.
    let mut problems = Vec::new();
    let mut passes = 0;
    for name in walk(&dir.join("approvals")) {
        if !name.ends_with(".dsse.json") {
            continue;
        }
        let p = dir.join("approvals").join(&name);
        let bytes = std::fs::read(&p).map_err(|e| file_err(&p, e))?;
        match super::approval::verify(&bytes, trusted) {
            Err(e) => problems.push(format!("{name}: {e}")),
            Ok(a) if a.decision.release != v.release => problems.push(format!(
                "{name}: decides release {}, not {}",
                a.decision.release, v.release
            )),
            Ok(a) if a.decision.manifest_sha256 != v.manifest_sha256 => {
                match earlier_export(dir, &manifest, &a.decision.manifest_sha256) {
                    Ok(()) => {
                        passes += usize::from(a.decision.result == "pass");
                        v.approvals.push((
                            format!(
                                "{} (of an earlier export with the same evidence)",
                                a.decision.approver
                            ),
                            a.decision.result,
                            a.keyid,
                        ));
                    }
                    Err(why) => problems.push(format!(
                        "{name}: signs manifest {}, not this binder's {} ({why})",
                        a.decision.manifest_sha256, v.manifest_sha256
                    )),
                }
            }
            Ok(a) => {
                passes += usize::from(a.decision.result == "pass");
                v.approvals
                    .push((a.decision.approver, a.decision.result, a.keyid));
            }
        }
    }
    let ok = problems.is_empty() && (!require_approval || passes > 0);
    let detail = if !problems.is_empty() {
        problems.join("; ")
    } else if v.approvals.is_empty() {
        if require_approval {
            "no approval: this release requires one".to_string()
        } else {
            "no approvals in approvals/".to_string()
        }
    } else {
        v.approvals
            .iter()
            .map(|(who, res, key)| format!("{who}: {res} (key {}…)", &key[..16.min(key.len())]))
            .collect::<Vec<_>>()
            .join("; ")
    };
    v.push("approvals", ok, detail);
    Ok(v)
}

/// Files whose content an approval is about and which must not change in
/// a later export of the same release: the methodology, the privacy,
/// fidelity and subgroup reports and the gate reports. (The Expert
/// Determination inputs restate the expiry as of each export; lineage,
/// consumers, access evidence and the log grow, not least with the approval.)
fn settled_file(path: &str) -> bool {
    ["02-", "03-", "04-", "05-"]
        .iter()
        .any(|p| path.starts_with(p) && path.ends_with(".json"))
        || path.starts_with("evidence/reports/")
}

/// An approval of an earlier export counts when its manifest is in
/// `approvals/`, names the same release and model, and lists the same
/// digests for every settled file.
fn earlier_export(dir: &Path, manifest: &Value, digest: &str) -> Result<(), String> {
    let p = dir
        .join("approvals")
        .join(format!("{digest}.manifest.json"));
    let bytes =
        std::fs::read(&p).map_err(|_| "the manifest it signed is not in approvals/".to_string())?;
    if sha256_hex(&bytes) != digest {
        return Err("approvals/ holds a different manifest under its digest".into());
    }
    let old: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    for k in ["batch_id", "model_sha256", "validation_run"] {
        if old["release"][k] != manifest["release"][k] {
            return Err(format!("the signed manifest names another {k}"));
        }
    }
    let settled = |m: &Value| -> BTreeMap<String, String> {
        m["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some((
                    f["path"].as_str()?.to_string(),
                    f["sha256"].as_str()?.to_string(),
                ))
            })
            .filter(|(p, _)| settled_file(p))
            .collect()
    };
    let (then, now) = (settled(&old), settled(manifest));
    if then.is_empty() || then != now {
        let changed: Vec<&String> = then
            .keys()
            .chain(now.keys())
            .filter(|k| then.get(*k) != now.get(*k))
            .collect();
        return Err(format!("the evidence changed since: {changed:?}"));
    }
    Ok(())
}

/// Lineage rules a consumer and an auditor rely on.
fn lineage_problems(events: &[Value], r: &Release) -> Vec<String> {
    let mut p = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let Err(x) = openlineage::check_event(e) {
            p.push(format!("event {}: {x}", i + 1));
        }
    }
    let topology = r.topology.as_str();
    let window_job = format!("{topology}.window");
    let windows: Vec<&Value> = events
        .iter()
        .filter(|e| e["job"]["name"] == window_job.as_str())
        .collect();
    let types: Vec<&str> = windows
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    if types.first() != Some(&"START") {
        p.push("the window run does not begin with START".into());
    }
    let terminal = types
        .iter()
        .filter(|t| ["COMPLETE", "FAIL", "ABORT"].contains(t))
        .count();
    if terminal != 1 {
        p.push(format!(
            "the window run has {terminal} terminal events, expected 1"
        ));
    }
    let e = &r.entry.data;
    let mut parents = std::collections::BTreeSet::new();
    for w in &windows {
        let f = &w["run"]["facets"]["resynth"];
        if w["eventType"] != "START" {
            if f["batchId"] != e["batch_id"] || f["modelSha256"] != e["model_sha256"] {
                p.push(format!(
                    "{} event names another batch or model",
                    w["eventType"]
                ));
            }
            if f["validationRun"] != e["validation_run"] {
                p.push(format!(
                    "{} event names validation run {}",
                    w["eventType"], f["validationRun"]
                ));
            }
        }
        // A later decision (OTHER) is emitted by whichever engine run acts on it.
        if w["eventType"] != "OTHER"
            && let Some(parent) = w["run"]["facets"]["parent"]["run"]["runId"].as_str()
        {
            parents.insert(parent.to_string());
        }
        if w["inputs"][0]["name"] != primary_topic(&r.config) {
            p.push("the window run's input is not the source topic".into());
        }
        if !w["inputs"][0]["namespace"]
            .as_str()
            .is_some_and(|n| n.starts_with("kafka://"))
        {
            p.push("the source dataset's namespace is not kafka://host:port".into());
        }
    }
    if parents.len() != 1 {
        p.push(format!(
            "the window run has {} parent runs, expected 1",
            parents.len()
        ));
    }
    let started = events.iter().any(|x| {
        x["job"]["name"] == topology
            && x["eventType"] == "START"
            && parents.contains(x["run"]["runId"].as_str().unwrap_or(""))
    });
    if !started {
        p.push("the engine run's START event is missing".into());
    }
    if r.status == "published" {
        let output = &r.config["output"]["topic"];
        let published = windows.iter().rev().find(|w| {
            ["COMPLETE", "OTHER"].contains(&w["eventType"].as_str().unwrap_or(""))
                && &w["outputs"][0]["name"] == output
        });
        match published {
            None => p.push("no COMPLETE (or approval) event outputs the synthetic topic".into()),
            Some(w) => {
                if w["run"]["facets"]["resynth"]["sourceRanges"]
                    != r.fitted.data["fitted_on"]["source_offsets"]
                {
                    p.push("the source ranges differ from the model's training scope".into());
                }
                if w["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"]
                    != r.entry.data["records"]
                {
                    p.push("the published row count differs from the log's".into());
                }
            }
        }
    }
    let window_runs: std::collections::BTreeSet<&str> = windows
        .iter()
        .filter_map(|w| w["run"]["runId"].as_str())
        .collect();
    let gates: Vec<&Value> = events
        .iter()
        .filter(|x| x["job"]["name"] == format!("{topology}.gate").as_str())
        .collect();
    if gates.is_empty() {
        p.push("no gate run".into());
    }
    for g in gates {
        if !window_runs.contains(
            g["run"]["facets"]["parent"]["run"]["runId"]
                .as_str()
                .unwrap_or(""),
        ) {
            p.push("a gate run's parent is not the window run".into());
        }
    }
    p
}

/// Relative paths of every file under `dir` (sorted; empty when missing).
fn walk(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(list) = std::fs::read_dir(dir) else {
            return;
        };
        for e in list.flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// The topology snapshot's first stream topic (`Topology::primary_topic`):
/// the first `[[sources]]` stream's, else `kafka.source_topic`. Lineage
/// names it as the window run's input.
pub(super) fn primary_topic(config: &Value) -> Value {
    match config["sources"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .find(|s| s["kind"].as_str().is_none_or(|k| k == "stream"))
            .map(|s| s["topic"].clone())
            .unwrap_or(Value::Null),
        _ => config["kafka"]["source_topic"].clone(),
    }
}
