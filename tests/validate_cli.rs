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
        "outlier_replication",
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

    // An entity column (the privacy unit) that the training file lacks.
    std::fs::write(&roles, "entity = \"mrn\"\n").unwrap();
    let out = validate_with(&f, &synthetic, &roles, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("entity: \"mrn\""), "{}", text(&out));
    // The patient id as the entity: read, dropped like an id; one row per
    // patient here, so the verdict is the one without it (a pass).
    let full = std::fs::read_to_string(ROLES).unwrap();
    std::fs::write(&roles, format!("entity = \"patient_id\"\n{full}")).unwrap();
    let fresh = write_csv(&f.root, "fresh.csv", &patients(2000, 3, 50_000));
    let out = validate_with(&f, &fresh, &roles, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

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

/// Patients with a visit date, a smoking flag and a lab with missing values,
/// as `(id, age, sex, zip3, visit, smoker, hba1c)` before any tool's
/// spelling is applied.
type Visit = (usize, f64, &'static str, String, i64, bool, Option<f64>);

fn visits(n: usize, seed: u64, first_id: usize) -> Vec<Visit> {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0).unwrap();
    (0..n)
        .map(|i| {
            let age = (18.0 + 70.0 * rng.random::<f64>()).round();
            let sex = if rng.random_bool(0.5) { "F" } else { "M" };
            let zip3 = format!("{:03}", [21, 100, 606][rng.random_range(0..3)]);
            // Days since 1970 over 2015–2020.
            let visit = 16_436 + rng.random_range(0..2190);
            let smoker = rng.random_bool(0.2 + 0.002 * age);
            let hba1c =
                (!rng.random_bool(0.1)).then(|| 5.6 + 0.02 * age + 0.5 * noise.sample(&mut rng));
            (first_id + i, age, sex, zip3, visit, smoker, hba1c)
        })
        .collect()
}

fn iso(days: i64) -> String {
    resynth::source::text_values::format_date(days)
}

/// The same rows as each tool writes them.
#[derive(Clone, Copy)]
enum Style {
    /// Plain, as `resynth synthesize` writes: integers, ISO dates, true/false.
    Plain,
    /// pandas `to_csv()` defaults: a leading unnamed index column, `57.0`
    /// for an integer column that holds a missing value, `True`/`False`,
    /// empty fields for missing values.
    Pandas,
    /// R `write.csv()` (synthpop users): quoted strings and header, a
    /// leading `""` column of quoted row numbers, `NA`, `TRUE`/`FALSE`.
    R,
    /// SDV: ids as `sdv-id-…` strings where training had numbers.
    Sdv,
}

fn write_visits(dir: &Path, name: &str, rows: &[Visit], style: Style) -> PathBuf {
    let q = |s: &str| match style {
        Style::R => format!("\"{s}\""),
        _ => s.to_string(),
    };
    let header = [
        "patient_id",
        "age",
        "sex",
        "zip3",
        "visit",
        "smoker",
        "hba1c",
    ];
    let mut text = match style {
        Style::Pandas => format!(",{}\n", header.join(",")),
        Style::R => format!(
            "\"\",{}\n",
            header.iter().map(|h| q(h)).collect::<Vec<_>>().join(",")
        ),
        _ => format!("{}\n", header.join(",")),
    };
    for (k, (id, age, sex, zip3, visit, smoker, hba1c)) in rows.iter().enumerate() {
        let id = match style {
            Style::Sdv => format!("sdv-id-{:x}", id * 2654435761 % 65_536),
            _ => id.to_string(),
        };
        let age = match style {
            Style::Pandas => format!("{age:.1}"),
            _ => format!("{age}"),
        };
        let smoker = match (style, smoker) {
            (Style::Pandas | Style::Sdv, true) => "True",
            (Style::Pandas | Style::Sdv, false) => "False",
            (Style::R, true) => "TRUE",
            (Style::R, false) => "FALSE",
            (Style::Plain, true) => "true",
            (Style::Plain, false) => "false",
        };
        let hba1c = match (style, hba1c) {
            (_, Some(v)) => format!("{v:.2}"),
            (Style::R, None) => "NA".into(),
            (Style::Sdv, None) => "NaN".into(),
            (_, None) => String::new(),
        };
        let fields = [
            id,
            age,
            q(sex),
            q(zip3),
            q(&iso(*visit)),
            smoker.into(),
            hba1c,
        ];
        match style {
            Style::Pandas => text.push_str(&format!("{k},")),
            Style::R => text.push_str(&format!("\"{}\",", k + 1)),
            _ => {}
        }
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const VISIT_ROLES: &str = "id_columns = [\"patient_id\"]\ncategorical = [\"zip3\"]\nseed = 3\n\
     [roles]\nquasi_identifiers = [\"age\", \"sex\", \"zip3\"]\n";

#[test]
fn files_as_pandas_r_and_sdv_write_them_read_like_our_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let roles = root.join("roles.toml");
    std::fs::write(&roles, VISIT_ROLES).unwrap();
    let train = write_visits(root, "train.csv", &visits(1500, 1, 0), Style::Plain);
    let holdout = write_visits(root, "holdout.csv", &visits(1500, 2, 5000), Style::Plain);
    let fresh = visits(1500, 3, 9000);
    let mut scores: Vec<Vec<(String, String, f64)>> = Vec::new();
    for (k, style) in [Style::Plain, Style::Pandas, Style::R, Style::Sdv]
        .into_iter()
        .enumerate()
    {
        let synthetic = write_visits(root, &format!("s{k}.csv"), &fresh, style);
        let report = root.join(format!("report{k}"));
        let out = resynth(&[
            "validate",
            "--train",
            train.to_str().unwrap(),
            "--holdout",
            holdout.to_str().unwrap(),
            "--synthetic",
            synthetic.to_str().unwrap(),
            "--roles",
            roles.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]);
        // Fresh patients: the files are read (not exit 2) and pass.
        assert_eq!(out.status.code(), Some(0), "style {k}: {}", text(&out));
        let r = read_report(&report);
        // The date is a date (a numeric operator scores it), the flag and
        // sex are categories whose labels matched training's (TV near 0).
        let find = |op: &str, col: &str| {
            r.results
                .iter()
                .find(|x| x.operator == op && x.columns == [col])
                .unwrap_or_else(|| panic!("style {k}: no {op}[{col}]"))
                .statistic
        };
        assert!(find("ks", "visit") < 0.1);
        assert!(find("total_variation", "smoker") < 0.05);
        assert!(find("total_variation", "zip3") < 0.05);
        assert!(find("ks", "age") < 0.1);
        scores.push(
            r.results
                .iter()
                .map(|x| (x.operator.clone(), x.columns.join(","), x.statistic))
                .collect(),
        );
    }
    // Every tool's spelling of the same rows gives the same scores.
    for other in &scores[1..] {
        assert_eq!(other, &scores[0]);
    }
}

#[test]
fn a_value_that_does_not_fit_names_file_column_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let roles = root.join("roles.toml");
    std::fs::write(&roles, VISIT_ROLES).unwrap();
    let train = write_visits(root, "train.csv", &visits(300, 1, 0), Style::Plain);
    let holdout = write_visits(root, "holdout.csv", &visits(300, 2, 5000), Style::Plain);
    let mut text_bad = std::fs::read_to_string(write_visits(
        root,
        "bad.csv",
        &visits(300, 3, 9000),
        Style::Plain,
    ))
    .unwrap();
    // Line 4 gets a day number where a date belongs (what `synthesize`
    // used to write), line 7 a word where the age belongs.
    let mut lines: Vec<String> = text_bad.lines().map(String::from).collect();
    let mut f: Vec<String> = lines[3].split(',').map(String::from).collect();
    f[4] = "6015".into();
    lines[3] = f.join(",");
    let mut f: Vec<String> = lines[6].split(',').map(String::from).collect();
    f[1] = "forty".into();
    lines[6] = f.join(",");
    text_bad = lines.join("\n") + "\n";
    let bad = root.join("bad.csv");
    std::fs::write(&bad, text_bad).unwrap();
    let out = resynth(&[
        "validate",
        "--train",
        train.to_str().unwrap(),
        "--holdout",
        holdout.to_str().unwrap(),
        "--synthetic",
        bad.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("bad.csv") && t.contains("2 value(s)"), "{t}");
    assert!(
        t.contains("column \"visit\", line 4: \"6015\" is not a date like 2016-06-20"),
        "{t}"
    );
    assert!(
        t.contains("column \"age\", line 7: \"forty\" is not a number"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn synthesize_writes_dates_as_dates_and_validate_reads_its_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let roles = root.join("roles.toml");
    std::fs::write(&roles, VISIT_ROLES).unwrap();
    let train = write_visits(root, "train.csv", &visits(1500, 1, 0), Style::Plain);
    let holdout = write_visits(root, "holdout.csv", &visits(1500, 2, 5000), Style::Plain);
    let out_csv = root.join("synthetic.csv");
    let model = root.join("model.json");
    let run = resynth(&[
        "synthesize",
        "--train",
        train.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
        "--out",
        out_csv.to_str().unwrap(),
        "--model-out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let csv = std::fs::read_to_string(&out_csv).unwrap();
    let first = csv.lines().nth(1).unwrap();
    let visit = first.split(',').nth(3).unwrap();
    assert!(
        resynth::source::text_values::parse_date(visit).is_some(),
        "visit written as {visit:?} in {first:?}"
    );
    let age = first.split(',').next().unwrap();
    assert!(!age.contains('.'), "whole-number column written as {age:?}");
    for synthetic in [out_csv.clone(), {
        // `sample` re-draws from the saved model in the same formats.
        let again = root.join("again.csv");
        let s = resynth(&[
            "sample",
            "--model",
            model.to_str().unwrap(),
            "--rows",
            "500",
            "--seed",
            "9",
            "--out",
            again.to_str().unwrap(),
        ]);
        assert_eq!(s.status.code(), Some(0), "{}", text(&s));
        again
    }] {
        let out = resynth(&[
            "validate",
            "--train",
            train.to_str().unwrap(),
            "--holdout",
            holdout.to_str().unwrap(),
            "--synthetic",
            synthetic.to_str().unwrap(),
            "--roles",
            roles.to_str().unwrap(),
        ]);
        assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    }
}
