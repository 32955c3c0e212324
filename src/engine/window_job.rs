//! What happens to one closed window: training table, drift verdict, refit
//! decision, fit, sample, gate (with bounded regeneration) and the outputs to
//! commit. It touches no Kafka: it returns the records and evidence, and the
//! engine commits them in one transaction before recording the evidence.

use std::time::Instant;

use metrics::{counter, gauge, histogram};
use serde_json::json;

use super::{EngineError, Progress};
use crate::drift::{self, DriftMonitor, ReferenceProfile};
use crate::gate::{self, GateReport};
use crate::generate::ledger::{Ledger, LedgerError};
use crate::generate::{
    self, FittedOn, GeneratorKind, GeneratorModel, ModelRecord, ModelRegistry, derive_seed,
    split_by_entity,
};
use crate::schema::{RecordSchema, arrow_table};
use crate::sink::alerts::{Alert, AlertDetail, DriftAlert, FailedOperator};
use crate::sink::{Lineage, OutRecord};
use crate::telemetry as t;
use crate::topology::Topology;
use crate::window::ClosedWindow;

/// The outputs of one window, committed atomically by the engine.
#[derive(Default)]
pub struct WindowOutcome {
    pub records: Vec<OutRecord>,
    /// Audit entries (kind, data) to append once the transaction committed.
    pub audit: Vec<(String, serde_json::Value)>,
    /// Reports (name, body) to write once committed.
    pub reports: Vec<(String, serde_json::Value)>,
    /// HTML pages (name, page) for people, written once committed: one for
    /// the batch that was published or quarantined.
    pub html_reports: Vec<(String, String)>,
    /// Model to mark deployed once committed.
    pub deploy: Option<ModelRecord>,
    pub published_records: usize,
    pub quarantined: bool,
    pub skipped: bool,
    /// The version of the model fitted for this window (deployed or not).
    pub fitted: Option<u64>,
    /// The drift monitor asked for this refit; if no model is deployed
    /// (quarantined, budget refused) the engine reports it abandoned.
    pub refit_requested: bool,
}

/// State that outlives one window.
pub struct WindowContext<'a> {
    pub topology: &'a Topology,
    pub output_schema: &'a RecordSchema,
    pub registry: &'a ModelRegistry,
    pub deployed: &'a mut Option<ModelRecord>,
    pub monitor: &'a mut DriftMonitor,
    pub ledger: &'a mut Ledger,
    /// Windows processed over all runs, this one included (from the
    /// engine state in Kafka): a label for progress lines, never a seed.
    pub window_index: u64,
    /// The version number this window's fit takes: one past the last one
    /// committed (a model file left by a crash before its transaction is
    /// overwritten, not skipped).
    pub next_version: u64,
    /// When the deployed model was deployed (for the seconds-since-refit gauge).
    pub last_deployed: Option<std::time::SystemTime>,
    /// A release awaits approval (`output.require_approval`): no new fit
    /// starts until it is decided.
    pub release_pending: bool,
}

/// The window's entity ids and table in canonical order (`Table::canonical`):
/// partitions interleave differently on every run, and what follows must
/// depend on the window's contents alone (same window, same bytes out).
fn canonical_window(
    training: &[datafusion::arrow::record_batch::RecordBatch],
    topo: &Topology,
) -> Result<(Vec<Option<String>>, crate::table::Table), EngineError> {
    let ids =
        arrow_table::labels(training, &topo.model.entity_column).map_err(EngineError::Convert)?;
    let table =
        arrow_table::to_table(training, &topo.model.id_columns).map_err(EngineError::Convert)?;
    let (table, order) = table.canonical(&ids);
    let ids = order.into_iter().map(|r| ids[r].clone()).collect();
    Ok((ids, table))
}

fn source_ranges(topo: &Topology, w: &ClosedWindow) -> Vec<String> {
    let topics: Vec<String> = topo.sources().into_iter().map(|s| s.topic).collect();
    super::sources::source_ranges(&topics, w)
}

/// Processes one closed window.
pub fn process(
    ctx: WindowContext<'_>,
    window: ClosedWindow,
    training: Vec<datafusion::arrow::record_batch::RecordBatch>,
    progress: &mut dyn FnMut(Progress),
) -> Result<WindowOutcome, EngineError> {
    let topo = ctx.topology;
    let name = topo.name.as_str();
    let mut out = WindowOutcome::default();
    let rows: usize = training.iter().map(|b| b.num_rows()).sum();
    let window_label = format!("{}-{}", window.start_ms, window.end_ms);
    counter!(t::WINDOWS_CLOSED, "topology" => name.to_string()).increment(1);
    progress(Progress::WindowClosed {
        index: ctx.window_index,
        start_ms: window.start_ms,
        events: window.rows,
        training_rows: rows,
    });
    if rows < topo.window.min_rows {
        counter!(t::WINDOWS_SKIPPED, "topology" => name.to_string()).increment(1);
        progress(Progress::WindowSkipped {
            index: ctx.window_index,
            rows,
            min_rows: topo.window.min_rows,
        });
        out.audit.push((
            "window_skipped".into(),
            json!({"window": window_label, "rows": rows, "min_rows": topo.window.min_rows}),
        ));
        out.skipped = true;
        return Ok(out);
    }

    let (ids, table) = canonical_window(&training, topo)?;

    // Drift against the deployed model's reference.
    let started = Instant::now();
    let mut refit_reason = "initial fit";
    let mut verdict_json = serde_json::Value::Null;
    if let Some(model) = ctx.deployed.as_ref() {
        let verdict = drift::compare(&model.reference, &table, &topo.drift);
        let decision = ctx.monitor.observe(verdict.signal());
        for test in &verdict.tests {
            let column = match &test.segment {
                Some(s) => format!("{}[{s}]", test.column),
                None => test.column.clone(),
            };
            for e in &test.effects {
                gauge!(t::DRIFT_SCORE, "topology" => name.to_string(), "column" => column.clone(), "method" => e.method.clone())
                    .set(e.value);
            }
        }
        gauge!(t::DRIFT_STATE, "topology" => name.to_string()).set(decision.state.as_gauge());
        if let Some(at) = ctx.last_deployed {
            let age = std::time::SystemTime::now()
                .duration_since(at)
                .unwrap_or_default();
            gauge!(t::DRIFT_SECONDS_SINCE_REFIT, "topology" => name.to_string())
                .set(age.as_secs_f64());
        }
        histogram!(t::STAGE_SECONDS, "topology" => name.to_string(), "stage" => "drift")
            .record(started.elapsed().as_secs_f64());
        let drifting: Vec<String> = verdict.drifting_columns();
        // Ids, counts and scores only: never record contents.
        tracing::info!(topology = name, window = %window_label, state = decision.state.name(),
            drifted = verdict.drifted, score = verdict.score, columns = ?drifting, refit = decision.refit,
            "drift verdict");
        verdict_json = serde_json::to_value(&verdict).unwrap_or_default();
        progress(Progress::Drift {
            index: ctx.window_index,
            state: decision.state,
            drifting,
            refit: decision.refit,
        });
        // One alert per state change, and one when a refit starts: a drift
        // that persists does not page again every window.
        if decision.changed() || decision.refit {
            let alert = Alert {
                topology: name,
                window: &window_label,
                model_version: Some(model.version),
                time_ms: crate::audit::now_ms(),
                detail: AlertDetail::Drift(DriftAlert {
                    from: decision.previous,
                    to: decision.state,
                    refit: decision.refit,
                    score: verdict.score,
                    rows: verdict.rows,
                    regime: &verdict.regime,
                    columns: verdict.drifting_tests().collect(),
                }),
            };
            out.records.push(alert_record(topo, &alert)?);
            out.audit.push((
                "drift_state".into(),
                json!({"kind": "drift_state", "topology": name, "window": window_label,
                       "from": decision.previous, "to": decision.state, "refit": decision.refit,
                       "cooling_down": decision.cooling_down, "too_few_rows": decision.too_few_rows,
                       "model_version": model.version, "score": verdict.score, "regime": verdict.regime,
                       "columns": verdict.drifting_tests().collect::<Vec<_>>()}),
            ));
        }
        if !decision.refit {
            return Ok(out);
        }
        out.refit_requested = true;
        refit_reason = "persistent drift";
    }
    if ctx.release_pending {
        out.audit.push((
            "refit_deferred".into(),
            json!({"window": window_label, "reason": refit_reason,
                   "why": "a release awaits approval (output.require_approval); no new fit starts until it is decided"}),
        ));
        return Ok(out);
    }

    // Refit on the window's patient-level training split.
    // Seeded by the window's start, not its position in this run: a window
    // reprocessed after a restart gets the same patients in its holdout.
    // Rows are already in canonical (entity) order, and stay so.
    let (train_rows, holdout_rows) = split_by_entity(
        &ids,
        topo.model.holdout_fraction,
        derive_seed(topo.model.seed, "split", window.start_ms as u64),
    );
    let train = table.take(&train_rows);
    let holdout = table.take(&holdout_rows);
    // The gate's noise is that of a sample of patients: a window whose SQL
    // keeps several rows per patient says so here (`gate::Units`).
    let units_of = |rows: &[usize]| gate::Units::codes(rows.iter().map(|&r| ids[r].as_deref()));
    let units = gate::Units {
        train: Some(units_of(&train_rows)),
        holdout: Some(units_of(&holdout_rows)),
        synthetic: None,
    };
    let version = ctx.next_version;
    let fitted_on = FittedOn {
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        source_offsets: source_ranges(topo, &window),
        train_rows: train.n_rows(),
        holdout_rows: holdout.n_rows(),
    };
    // A DP refit must fit within the privacy budget, or it does not happen.
    if let (GeneratorKind::Privbayes, Some(pb)) = (topo.model.generator, &topo.privbayes)
        && let Some(cap) = topo.budget.epsilon_cap
    {
        let spent = ctx.ledger.spent_epsilon();
        if ctx.ledger.epsilon_after(pb.epsilon) > cap * (1.0 + 1e-9) {
            return Ok(refuse_refit(
                topo,
                &window_label,
                version,
                spent,
                pb.epsilon,
                cap,
                out,
                progress,
            ));
        }
    }
    let started = Instant::now();
    let fit_seed = derive_seed(topo.model.seed, "fit", version);
    // Rows are usually one per patient; when the training SQL keeps several,
    // CART counts its leaf minimum in patients.
    let train_ids: Vec<Option<String>> = train_rows.iter().map(|&r| ids[r].clone()).collect();
    let entities = generate::entity_index(&train_ids);
    let settings = generate::GeneratorSettings {
        kind: topo.model.generator,
        copula: &topo.copula,
        cart: &topo.cart,
        entities: entities.as_deref(),
        gate: Some((&topo.gate, &topo.roles)),
        stratify: topo
            .model
            .stratify_by
            .as_deref()
            .map(|c| (c, topo.model.min_stratum_rows)),
        privbayes: topo.privbayes.as_ref(),
    };
    // The reference the next windows are judged against: the whole window
    // (train and holdout: more rows, less noise), with the topology's drift
    // settings (bins, top-K, declared correlation columns, segments). It is
    // stored inside the model record, so it is versioned with the model and
    // swaps with it when the model is deployed.
    let reference = ReferenceProfile::build_with(&table, &topo.drift);
    let model = generate::fit_model(
        name, version, &train, settings, fit_seed, fitted_on, reference,
    )
    .map_err(|e| EngineError::Generate(e.to_string()))?;
    if let GeneratorModel::Privbayes(m) = &model.model {
        match ctx
            .ledger
            .try_book(m.ledger_entry(name, version, crate::audit::now_ms()))
        {
            Ok(_) => {
                gauge!(t::PRIVACY_BUDGET_SPENT, "topology" => name.to_string())
                    .set(ctx.ledger.spent_epsilon());
            }
            Err(LedgerError::CapExceeded {
                requested,
                spent,
                cap,
                ..
            }) => {
                return Ok(refuse_refit(
                    topo,
                    &window_label,
                    version,
                    spent,
                    requested,
                    cap,
                    out,
                    progress,
                ));
            }
            Err(e) => return Err(EngineError::Generate(e.to_string())),
        }
    }
    let ledger_total = ctx.ledger.spent_epsilon();
    histogram!(t::STAGE_SECONDS, "topology" => name.to_string(), "stage" => "fit")
        .record(started.elapsed().as_secs_f64());
    ctx.registry.save(&model).map_err(EngineError::Registry)?;
    crate::kill_point::reached("fitted");
    counter!(t::REFITS, "topology" => name.to_string()).increment(1);
    out.fitted = Some(version);
    progress(Progress::Fitted {
        version,
        reason: refit_reason,
        train_rows: train.n_rows(),
        holdout_rows: holdout.n_rows(),
        sha256: model.sha256.clone(),
    });
    out.audit.push((
        "model_fitted".into(),
        json!({"version": version, "sha256": model.sha256, "generator": model.generator,
               "reason": refit_reason, "fit_seed": model.fit_seed, "fitted_on": model.fitted_on,
               "epsilon": model.epsilon, "dp": model.epsilon.is_some(), "ledger_total_epsilon": ledger_total,
               "selection": model.selection}),
    ));

    let n = if topo.model.synthetic_rows == 0 {
        train.n_rows()
    } else {
        topo.model.synthetic_rows
    };
    let batch_id = format!("{name}-{}-v{version}", window.start_ms);
    let attempts = topo.output.max_regenerations + 1;
    let mut last: Option<(GateReport, crate::table::Table, u64, String)> = None;
    for attempt in 0..attempts {
        let sample_seed = derive_seed(topo.model.seed, "sample", version * 1000 + attempt as u64);
        let synthetic = model.model.sample(n, sample_seed);
        let started = Instant::now();
        let report = gate::evaluate_staged(
            &train,
            &holdout,
            &synthetic,
            &units,
            &topo.gate,
            &topo.roles,
            sample_seed,
        )
        .map_err(|e| EngineError::Gate(e.to_string()))?;
        histogram!(t::STAGE_SECONDS, "topology" => name.to_string(), "stage" => "gate")
            .record(started.elapsed().as_secs_f64());
        crate::kill_point::reached("gated");
        let run_id = format!("{batch_id}-a{attempt}");
        // Evidence for the audit binder that needs the tables themselves.
        let evidence = crate::audit::binder::evidence::batch_evidence(
            &train,
            &holdout,
            &synthetic,
            &topo.roles,
            topo.gate.k_anonymity_k,
            topo.gate.small_cell_min,
        );
        let failed: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.operator.clone())
            .collect();
        counter!(t::GATE_RESULTS, "topology" => name.to_string(), "result" => if report.passed { "pass" } else { "fail" })
            .increment(1);
        for op in &failed {
            counter!(t::GATE_OPERATOR_FAILURES, "topology" => name.to_string(), "operator" => op.clone()).increment(1);
        }
        progress(Progress::Gate {
            version,
            attempt,
            passed: report.passed,
            operators: report.results.len(),
            failed: failed.clone(),
        });
        out.reports.push((
            run_id.clone(),
            json!({"validation_run": run_id, "batch_id": batch_id, "topology": name,
                   "model_version": version, "model_sha256": model.sha256, "generator": model.generator,
                   "epsilon": model.epsilon, "ledger_total_epsilon": ledger_total, "dp_note": dp_note(&model),
                   "window": window_label, "attempt": attempt, "sample_seed": sample_seed,
                   "rows": {"train": train.n_rows(), "holdout": holdout.n_rows(), "synthetic": n},
                   "drift": verdict_json, "gate": report, "evidence": evidence}),
        ));
        let pass = report.passed;
        last = Some((report, synthetic, sample_seed, run_id));
        if pass {
            break;
        }
    }
    let (report, synthetic, sample_seed, run_id) = last.expect("at least one attempt");
    let passed_count = report.results.iter().filter(|r| r.passed).count();
    let total = report.results.len();
    let failed: Vec<&gate::OperatorResult> = report.results.iter().filter(|r| !r.passed).collect();
    let lineage = Lineage {
        batch_id: batch_id.clone(),
        topology: name.to_string(),
        model_version: version,
        model_sha256: model.sha256.clone(),
        generator: model.generator.clone(),
        source: source_ranges(topo, &window).join(","),
        window: window_label.clone(),
        validation_run: run_id.clone(),
        epsilon: format!(
            "model={};ledger_total={}",
            model
                .epsilon
                .map_or("none".to_string(), |(e, _)| format!("{e}")),
            ledger_total
        ),
        gates: if report.passed {
            format!("passed {passed_count}/{total}")
        } else {
            format!(
                "failed {}/{total}: {}",
                failed.len(),
                failed
                    .iter()
                    .map(|r| r.operator.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        },
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    match html_page(
        &report,
        &train,
        &holdout,
        &synthetic,
        &[
            ("topology", name.to_string()),
            ("batch", batch_id.clone()),
            ("validation run", run_id.clone()),
            ("window", window_label.clone()),
            (
                "model",
                format!(
                    "v{version} ({}), sha256 {}",
                    model.generator,
                    &model.sha256[..16.min(model.sha256.len())]
                ),
            ),
            ("epsilon", dp_note(&model)),
            (
                "outcome",
                if report.passed {
                    "published".into()
                } else {
                    "quarantined".into()
                },
            ),
        ],
        topo.gate.small_cell_min,
    ) {
        Ok(page) => out.html_reports.push((run_id.clone(), page)),
        // The JSON report is the evidence; a page that fails to render is
        // logged, not a reason to hold the batch.
        Err(e) => tracing::warn!(run_id = %run_id, error = %e, "HTML report not rendered"),
    }
    let payloads = crate::sink::fhir::encode_batch(
        topo.output.format,
        topo.output.fhir.as_ref(),
        ctx.output_schema,
        &topo.model.id_columns,
        &synthetic,
        &crate::sink::fhir::BatchRef {
            batch_id: &batch_id,
            sample_seed,
            window_start_ms: window.start_ms,
            window_end_ms: window.end_ms,
        },
    )
    .map_err(EngineError::Encode)?;
    let published = payloads.len();
    let mut headers = lineage.headers();
    let (topic, evidence) = route(&report, topo);
    headers.extend(evidence);
    // A passing batch under `output.require_approval` is held: nothing goes
    // out until an approver signs its binder (see engine::held).
    let hold = report.passed && topo.output.require_approval;
    for (key, payload) in payloads.into_iter().filter(|_| !hold) {
        out.records.push(OutRecord {
            topic: topic.clone(),
            key: Some(key),
            payload,
            headers: headers.clone(),
        });
    }
    let summary = json!({"batch_id": batch_id, "validation_run": run_id, "model_version": version,
        "model_sha256": model.sha256, "records": n, "sample_seed": sample_seed,
        "batch_sha256": synthetic.content_sha256(), "window": window_label,
        "gates": lineage.gates, "lineage": lineage});
    if hold {
        out.audit.push(("release_held".into(), summary));
    } else if report.passed {
        // Records on the topic: rows (Avro) or resources (FHIR).
        out.published_records = published;
        out.audit.push(("batch_published".into(), summary));
        out.deploy = Some(model);
        progress(Progress::Published {
            batch_id,
            records: n,
            version,
        });
    } else {
        out.quarantined = true;
        let alert = Alert {
            topology: name,
            window: &window_label,
            model_version: Some(version),
            time_ms: crate::audit::now_ms(),
            detail: AlertDetail::Quarantined {
                batch_id: batch_id.clone(),
                failed: failed
                    .iter()
                    .map(|r| FailedOperator {
                        operator: r.operator.clone(),
                        columns: r.columns.clone(),
                        statistic: r.statistic,
                        threshold: r.threshold,
                    })
                    .collect(),
            },
        };
        out.records.push(alert_record(topo, &alert)?);
        out.audit.push(("batch_quarantined".into(), summary));
        progress(Progress::Quarantined {
            batch_id,
            failed: failed.iter().map(|r| r.operator.clone()).collect(),
        });
    }
    Ok(out)
}

fn dp_note(model: &ModelRecord) -> String {
    match model.epsilon {
        None => format!(
            "{}: not differentially private; no privacy budget spent",
            model.generator
        ),
        Some((e, d)) => format!(
            "{}: ({e}, {d})-differentially private for adding or removing one patient; the gate's verdict is computed on real data and is not covered",
            model.generator
        ),
    }
}

/// The budget does not allow this refit: alert, audit, keep the deployed model.
#[allow(clippy::too_many_arguments)]
fn refuse_refit(
    topo: &Topology,
    window: &str,
    version: u64,
    spent: f64,
    requested: f64,
    cap: f64,
    mut out: WindowOutcome,
    progress: &mut dyn FnMut(Progress),
) -> WindowOutcome {
    let data = json!({"kind": "budget_exhausted", "topology": topo.name, "window": window,
        "would_be_version": version, "epsilon_spent": spent, "epsilon_requested": requested, "epsilon_cap": cap});
    let alert = Alert {
        topology: &topo.name,
        window,
        model_version: None,
        time_ms: crate::audit::now_ms(),
        detail: AlertDetail::BudgetExhausted {
            would_be_version: version,
            epsilon_spent: spent,
            epsilon_requested: requested,
            epsilon_cap: cap,
        },
    };
    counter!(t::REFITS_REFUSED, "topology" => topo.name.clone()).increment(1);
    match alert_record(topo, &alert) {
        Ok(record) => out.records.push(record),
        Err(e) => tracing::error!(topology = %topo.name, error = %e, "budget alert not encoded"),
    }
    out.audit.push(("refit_refused".into(), data));
    progress(Progress::RefitRefused {
        spent,
        requested,
        cap,
    });
    out
}

/// An alert as an Avro record on the alerts topic (`schemas/alerts/drift_alert.avsc`).
fn alert_record(topo: &Topology, alert: &Alert<'_>) -> Result<OutRecord, EngineError> {
    let payload = alert
        .encode()
        .map_err(|e| EngineError::Alert(format!("{}: {e}", alert.kind())))?;
    Ok(OutRecord {
        topic: topo.kafka.alerts_topic.clone(),
        key: Some(topo.name.clone().into_bytes()),
        payload,
        headers: vec![
            ("resynth.topology".into(), topo.name.clone().into_bytes()),
            (
                "resynth.alert_kind".into(),
                alert.kind().as_bytes().to_vec(),
            ),
        ],
    })
}

fn html_page(
    report: &GateReport,
    train: &crate::table::Table,
    holdout: &crate::table::Table,
    synthetic: &crate::table::Table,
    meta: &[(&str, String)],
    min_cell: usize,
) -> Result<String, crate::audit::html::HtmlError> {
    let ctx = crate::audit::html::HtmlContext {
        title: "resynth batch validation report",
        meta: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        train,
        holdout: Some(holdout),
        synthetic,
        min_cell,
    };
    crate::audit::html::render(report, &ctx)
}

/// Where a gated batch goes: the synthetic topic only when every gated
/// result passed; otherwise the quarantine topic, with the failed results
/// as a `resynth.failed_operators` header. The one place that decides
/// publication, so "nothing that failed is published" is tested here.
fn route(report: &GateReport, topo: &Topology) -> (String, Option<(String, Vec<u8>)>) {
    if report.passed {
        return (topo.output.topic.clone(), None);
    }
    let evidence: Vec<_> = report
        .failures()
        .iter()
        .map(|r| json!({"operator": r.operator, "columns": r.columns, "statistic": r.statistic, "threshold": r.threshold}))
        .collect();
    (
        topo.kafka.quarantine_topic.clone(),
        Some((
            "resynth.failed_operators".into(),
            serde_json::to_vec(&evidence).unwrap_or_default(),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::OperatorResult;

    fn topology() -> Topology {
        Topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/demo.toml"
        )))
        .unwrap()
    }

    fn result(operator: &str, passed: bool) -> OperatorResult {
        OperatorResult {
            operator: operator.into(),
            columns: vec!["x".into()],
            statistic: if passed { 0.01 } else { 0.5 },
            threshold: 0.1,
            effect_limit: 0.1,
            noise_allowance: None,
            interval: None,
            noise_floor: None,
            passed,
            explanation: String::new(),
        }
    }

    #[test]
    fn any_single_failing_operator_sends_the_batch_to_quarantine() {
        let topo = topology();
        let all = crate::gate::operator::ALL;
        let passing = GateReport::new(all.iter().map(|op| result(op, true)).collect());
        assert_eq!(route(&passing, &topo), (topo.output.topic.clone(), None));
        for failing in all {
            let report = GateReport::new(all.iter().map(|op| result(op, op != &failing)).collect());
            let (topic, header) = route(&report, &topo);
            assert_eq!(topic, topo.kafka.quarantine_topic, "{failing}");
            assert_ne!(topic, topo.output.topic);
            let (name, value) = header.expect("failed operators header");
            assert_eq!(name, "resynth.failed_operators");
            let evidence: serde_json::Value = serde_json::from_slice(&value).unwrap();
            assert_eq!(evidence.as_array().unwrap().len(), 1);
            assert_eq!(evidence[0]["operator"], *failing);
        }
    }
}
