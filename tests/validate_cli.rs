//! `resynth validate` as a CI job meets it: exit 0 on a faithful, private
//! synthetic file, 1 when the gate fails, 2 on any input error, with the
//! JSON and HTML reports written and the problem named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use resynth::gate::GateReport;

const ROLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/roles/lab_patients.toml");

fn resynth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resynth"))
        .args(args)
        .output()
        .expect("run resynth")
}

/// One patient per row: age drives diabetes, diabetes drives HbA1c; zip3
/// codes have leading zeros.
fn patients(n: usize, seed: u64, first_id: usize) -> Vec<[String; 7]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0).unwrap();
    (0..n)
        .map(|i| {
            let age = (18.0 + 70.0 * rng.random::<f64>()).round();
            let sex = if rng.random_bool(0.52) { "F" } else { "M" };
            let zip3 = format!("{:03}", [21, 100, 606, 941, 2][rng.random_range(0..5)]);
            let diabetic = rng.random_bool(0.1 + 0.4 * (age - 18.0) / 70.0);
            let dx = if diabetic { "E11.9" } else { "Z00.0" };
            let hba1c = if diabetic { 7.8 } else { 5.4 } + 0.6 * noise.sample(&mut rng);
            let weight = 80.0 + if sex == "M" { 8.0 } else { -6.0 } + 14.0 * noise.sample(&mut rng);
            [
                format!("P{:06}", first_id + i),
                age.to_string(),
                sex.to_string(),
                zip3,
                dx.to_string(),
                format!("{hba1c:.1}"),
                format!("{weight:.1}"),
            ]
        })
        .collect()
}

const HEADER: &str = "patient_id,age,sex,zip3,diagnosis_code,hba1c,weight_kg";

fn write_csv(dir: &Path, name: &str, rows: &[[String; 7]]) -> PathBuf {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.join(","));
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn write_parquet(dir: &Path, name: &str, rows: &[[String; 7]]) -> PathBuf {
    use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    let text = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
        ))
    };
    let number = |i: usize| -> ArrayRef {
        Arc::new(Float64Array::from(
            rows.iter()
                .map(|r| r[i].parse::<f64>().unwrap())
                .collect::<Vec<_>>(),
        ))
    };
    let batch = RecordBatch::try_from_iter([
        ("patient_id", text(0)),
        ("age", number(1)),
        ("sex", text(2)),
        ("zip3", text(3)),
        ("diagnosis_code", text(4)),
        ("hba1c", number(5)),
        ("weight_kg", number(6)),
    ])
    .unwrap();
    let path = dir.join(name);
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

struct Files {
    _dir: tempfile::TempDir,
    root: PathBuf,
    train: PathBuf,
    holdout: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let train = write_csv(&root, "train.csv", &patients(2000, 1, 0));
    let holdout = write_csv(&root, "holdout.csv", &patients(2000, 2, 10_000));
    Files {
        _dir: dir,
        root,
        train,
        holdout,
    }
}

fn validate(f: &Files, synthetic: &Path, report: Option<&Path>) -> Output {
    validate_with(f, synthetic, Path::new(ROLES), report)
}

fn validate_with(f: &Files, synthetic: &Path, roles: &Path, report: Option<&Path>) -> Output {
    let mut args = vec![
        "validate",
        "--train",
        f.train.to_str().unwrap(),
        "--holdout",
        f.holdout.to_str().unwrap(),
        "--synthetic",
        synthetic.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
    ];
    if let Some(r) = report {
        args.extend(["--report", r.to_str().unwrap()]);
    }
    resynth(&args)
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read_report(dir: &Path) -> GateReport {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("validation.json")).unwrap()).unwrap();
    serde_json::from_value(json["report"].clone()).unwrap()
}

#[test]
fn a_fresh_draw_passes_and_both_reports_are_written() {
    let f = files();
    // Parquet synthetic against CSV real: formats may be mixed.
    let synthetic = write_parquet(&f.root, "synthetic.parquet", &patients(2000, 3, 50_000));
    let out_dir = f.root.join("report");
    let out = validate(&f, &synthetic, Some(&out_dir));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: PASS"), "{stdout}");

    let report = read_report(&out_dir);
    assert!(report.passed);
    let ops: Vec<&str> = report.results.iter().map(|r| r.operator.as_str()).collect();
    for op in [
        "ks",
        "total_variation",
        "exact_match",
        "dcr_share",
        "nndr_share",
        "k_anonymity_risk",
        "singling_out_risk",
        "utility_auroc_gap",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // The identifier never reaches the gate.
    assert!(
        !report
            .results
            .iter()
            .any(|r| r.columns.iter().any(|c| c == "patient_id"))
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("validation.json")).unwrap()).unwrap();
    let inputs = json["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 3);
    assert_eq!(inputs[2]["rows"], 2000);
    assert_eq!(inputs[0]["columns"], 6, "patient_id dropped");
    assert_eq!(inputs[0]["sha256"].as_str().unwrap().len(), 64);

    let html = std::fs::read_to_string(out_dir.join("validation.html")).unwrap();
    assert!(html.contains("PASS"));
    assert!(html.matches("<svg").count() >= 5, "a plot per column");
    // zip3 was read as text: its leading zeros survive into the plots.
    assert!(
        html.contains("021"),
        "zip3 category labels keep leading zeros"
    );
}

#[test]
fn a_copy_of_training_fails_with_exit_1_and_names_the_operators() {
    let f = files();
    let out_dir = f.root.join("report");
    let out = validate(&f, &f.train.clone(), Some(&out_dir));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL   exact_match"), "{stdout}");
    assert!(stdout.contains("verdict: FAIL"));
    let report = read_report(&out_dir);
    assert!(!report.passed);
    let failed = report.failed_operators();
    for op in ["exact_match", "dcr_share", "nndr_share"] {
        assert!(failed.iter().any(|x| x == op), "{op} not in {failed:?}");
    }
    // Fidelity is perfect: a copy is only caught by privacy.
    assert!(!failed.iter().any(|x| x.starts_with("ks[")), "{failed:?}");
}

#[test]
fn input_errors_exit_2_and_name_the_problem() {
    let f = files();
    let synthetic = write_csv(&f.root, "synthetic.csv", &patients(300, 3, 50_000));

    // A file that does not exist.
    let out = validate(&f, &f.root.join("nope.csv"), None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope.csv"), "{}", text(&out));

    // A synthetic file with a column training does not have.
    let mut extra = format!("{HEADER},mrn\n");
    for r in patients(50, 4, 0) {
        extra.push_str(&format!("{},M123\n", r.join(",")));
    }
    let extra_path = f.root.join("extra.csv");
    std::fs::write(&extra_path, extra).unwrap();
    let out = validate(&f, &extra_path, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("\"mrn\""), "{}", text(&out));

    // Roles naming a column that is not there, and a bad threshold: both listed.
    let roles = f.root.join("roles.toml");
    std::fs::write(
        &roles,
        "id_columns = [\"patient_id\"]\n[roles]\nquasi_identifiers = [\"age\", \"postcode\"]\n",
    )
    .unwrap();
    let out = validate_with(&f, &synthetic, &roles, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("\"postcode\""), "{}", text(&out));

    std::fs::write(&roles, "[gate]\nks_max = 3.0\ntv_max = -1\n").unwrap();
    let out = validate_with(&f, &synthetic, &roles, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("gate.ks_max") && t.contains("gate.tv_max"),
        "{t}"
    );

    // Whole numbers written as floats by another tool (`57.0` where
    // training had `57`) are read, not refused.
    let floats = f.root.join("floats.csv");
    let mut text_floats = format!("{HEADER}\n");
    for r in patients(300, 5, 70_000) {
        let mut r = r.clone();
        r[1] = format!("{}.0", r[1]);
        text_floats.push_str(&r.join(","));
        text_floats.push('\n');
    }
    std::fs::write(&floats, text_floats).unwrap();
    let out = validate(&f, &floats, None);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));

    // A non-numeric value in a numeric column names the file.
    let bad = f.root.join("bad.csv");
    std::fs::write(&bad, format!("{HEADER}\nP1,forty,F,021,Z00.0,5.1,70.2\n")).unwrap();
    let out = validate(&f, &bad, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.csv"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

fn synthesize(f: &Files, roles: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "synthesize",
        "--train",
        f.train.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    resynth(&args)
}

#[test]
fn synthesize_fits_the_copula_on_a_file_and_validate_judges_its_output() {
    let f = files();
    let roles = f.root.join("roles.toml");
    let base = std::fs::read_to_string(ROLES).unwrap();
    std::fs::write(
        &roles,
        format!("{base}\n[generator]\nfamily = \"gaussian_copula\"\n[generator.copula]\nquantile_knots = 26\n"),
    )
    .unwrap();
    let out = f.root.join("synthetic.csv");
    let model = f.root.join("model.json");
    let run = synthesize(
        &f,
        &roles,
        &out,
        &["--rows", "1500", "--model-out", model.to_str().unwrap()],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("age,sex,zip3,diagnosis_code,hba1c,weight_kg"),
        "ids are never learned or written"
    );
    assert_eq!(lines.count(), 1500);
    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(model["generator"], "gaussian_copula");
    assert_eq!(model["sha256"].as_str().unwrap().len(), 64);

    // Same seed, same file: a published batch can be reproduced.
    let again = f.root.join("again.csv");
    let run = synthesize(&f, &roles, &again, &["--rows", "1500"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), csv);

    // The gate judges it like any other generator's output.
    let judged = validate_with(&f, &out, &roles, None);
    assert_eq!(judged.status.code(), Some(0), "{}", text(&judged));

    // The saved model and the printed sample seed reproduce the file.
    let seed = text(&run)
        .split("sample seed ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string();
    let replay = f.root.join("replay.csv");
    let model_path = f.root.join("model.json");
    let sample = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--model",
            model_path.to_str().unwrap(),
            "--rows",
            "1500",
            "--seed",
            &seed,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        resynth(&args)
    };
    let run = sample(&replay, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(std::fs::read_to_string(&replay).unwrap(), csv);

    // A cohort: every row is a woman aged 40 to 65 with the asked diagnosis.
    let cohort = f.root.join("cohort.csv");
    let run = sample(
        &cohort,
        &[
            "--where",
            "sex=F",
            "--where",
            "age=40..65",
            "--where",
            "diagnosis_code=E11.9",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&cohort)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|x| x.trim_matches('"').to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 1500);
    assert!(rows.iter().all(|r| {
        let age: f64 = r[0].parse().unwrap();
        r[1] == "F" && (40.0..=65.0).contains(&age) && r[3] == "E11.9"
    }));
    // An unseen label is refused, naming the column.
    let run = sample(&cohort, &["--where", "diagnosis_code=J45"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("diagnosis_code"), "{}", text(&run));
    // A tampered model is refused.
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model_path).unwrap()).unwrap();
    record["sha256"] = serde_json::Value::String("0".repeat(64));
    std::fs::write(&model_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let run = sample(&replay, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("tampered"), "{}", text(&run));

    // A stratify column that does not exist is named.
    std::fs::write(
        &roles,
        format!("{base}\n[generator]\nstratify_by = \"dx\"\n"),
    )
    .unwrap();
    let run = synthesize(&f, &roles, &out, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        text(&run).contains("generator.stratify_by"),
        "{}",
        text(&run)
    );
}

#[test]
fn synthesize_defaults_to_cart_and_auto_records_its_choice() {
    let f = files();
    let roles = f.root.join("roles.toml");
    let base = std::fs::read_to_string(ROLES).unwrap();
    std::fs::write(&roles, &base).unwrap();
    let out = f.root.join("cart.csv");
    let model = f.root.join("cart.json");
    let run = synthesize(&f, &roles, &out, &["--model-out", model.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(record["generator"], "cart");
    assert!(record.get("selection").is_none());
    // Same file and seed: the same bytes, and the same model file.
    let again = f.root.join("again.csv");
    let model_again = f.root.join("again.json");
    let run = synthesize(
        &f,
        &roles,
        &again,
        &["--model-out", model_again.to_str().unwrap()],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
    assert_eq!(
        std::fs::read(&model_again).unwrap(),
        std::fs::read(&model).unwrap()
    );
    // A cohort from the CART model.
    let cohort = f.root.join("cohort.csv");
    let run = synthesize(
        &f,
        &roles,
        &cohort,
        &["--rows", "300", "--where", "sex=F", "--where", "age=40..65"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let csv = std::fs::read_to_string(&cohort).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().all(|r| {
        let age: f64 = r[0].trim_matches('"').parse().unwrap();
        r[1].trim_matches('"') == "F" && (40.0..=65.0).contains(&age)
    }));

    // auto: both candidates judged on an inner split, the choice recorded.
    std::fs::write(&roles, format!("{base}\n[generator]\nfamily = \"auto\"\n")).unwrap();
    let run = synthesize(&f, &roles, &out, &["--model-out", model.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("auto: chose"), "{}", text(&run));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    let selection = &record["selection"];
    assert_eq!(selection["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(selection["chosen"], record["generator"]);
    for c in selection["candidates"].as_array().unwrap() {
        let auc = c["detection_auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{c}");
    }
}
