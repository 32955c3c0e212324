//! Issue 16: reports hold no small real-data cell and no exact real
//! extreme. One gate run on tables with planted rare categories, a planted
//! small missing count and distinctive exact minima and maxima; the HTML
//! page, the gate report's JSON and the binder's batch evidence are
//! searched for each of them, while a normal-count cell must still show.

use crate::audit::binder::evidence::batch_evidence;
use crate::audit::html::{HtmlContext, render};
use crate::gate::{GateConfig, GateReport, Roles, evaluate};
use crate::table::{Column, Table};

/// Planted training extremes (one patient each), the holdout's own
/// maximum, and a site label 3 training and 2 holdout patients hold.
const TRAIN_MIN: f64 = 1.234_567;
const TRAIN_MAX: f64 = 987.654_321;
const HOLDOUT_MAX: f64 = 876.543_219;
const TRAIN_RARE: &str = "RARE-SITE-PLANTED";

/// `n` rows: a lab with values 10..60 (with `missing` NaNs and the planted
/// extremes at rows 0 and 1 when given), a site A/B/C with `rare` rows of
/// a rare label.
fn table(n: usize, phase: f64, extremes: &[f64], missing: usize, rare: (&str, usize)) -> Table {
    let lab: Vec<f64> = (0..n)
        .map(|i| {
            if i < extremes.len() {
                extremes[i]
            } else if i >= n - missing {
                f64::NAN
            } else {
                10.0 + 50.0 * ((i as f64 * 0.618_034 + phase).fract())
            }
        })
        .map(|x| (x * 1e7).round() / 1e7)
        .collect();
    let site: Vec<Option<String>> = (0..n)
        .map(|i| {
            Some(if i >= 2 && i < 2 + rare.1 {
                rare.0.to_string()
            } else {
                ["A", "B", "C"][i % 3].to_string()
            })
        })
        .collect();
    Table::new(vec![
        Column::numeric("lab", lab),
        Column::categorical("site", &site),
    ])
}

/// One gate run and what it writes: the report, its HTML page and its JSON.
fn reported(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    config: &GateConfig,
    roles: &Roles,
) -> (GateReport, String, String) {
    let report = evaluate(train, holdout, synthetic, config, roles, 1).unwrap();
    let html = render(
        &report,
        &HtmlContext {
            title: "cells",
            meta: vec![],
            train,
            holdout: Some(holdout),
            synthetic,
            min_cell: config.small_cell_min,
        },
    )
    .unwrap();
    let json = serde_json::to_string(&report).unwrap();
    (report, html, json)
}

/// Whether `text` holds `count` as a whole number: not as the end of a
/// longer number ("13 of 600" does not hold "3 of 600").
fn holds_count(text: &str, count: &str) -> bool {
    text.match_indices(count)
        .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn reports_hold_no_small_real_count_or_exact_extreme() {
    let train = table(600, 0.0, &[TRAIN_MIN, TRAIN_MAX], 4, (TRAIN_RARE, 3));
    let holdout = table(600, 0.37, &[20.0, HOLDOUT_MAX], 0, (TRAIN_RARE, 2));
    // A "generator" that copies the training extremes and the rare label.
    let synthetic = table(600, 0.71, &[TRAIN_MIN, TRAIN_MAX], 0, (TRAIN_RARE, 30));
    let roles: Roles = toml::from_str(r#"subgroups = [{ column = "site" }]"#).unwrap();
    let config = GateConfig {
        null_replicates: 20,
        ..GateConfig::default()
    };
    let (report, html, json) = reported(&train, &holdout, &synthetic, &config, &roles);
    let evidence = batch_evidence(&train, &holdout, &synthetic, &roles, 5, 11).to_string();

    // The copied extremes fail the new operator.
    let outliers = report
        .results
        .iter()
        .find(|r| r.operator == "outlier_replication")
        .unwrap();
    assert!(!outliers.passed, "{outliers:?}");

    for (what, text) in [("html", &html), ("json", &json), ("evidence", &evidence)] {
        // No rare real label by name.
        assert!(!text.contains(TRAIN_RARE), "{what} names {TRAIN_RARE}");
        // No exact real extreme, at any precision a report prints.
        for x in [TRAIN_MIN, TRAIN_MAX, HOLDOUT_MAX] {
            for digits in [3, 4] {
                let s = format!("{x:.digits$}");
                assert!(!text.contains(&s), "{what} shows the extreme {s}");
            }
        }
        // The pooled rare training level (3 rows) and the holdout's rare
        // hits are never written as counts. ("13 of 600" and "32 of 600"
        // are other, large counts: a count starts after a non-digit.)
        for small in ["3 of 600", "2 of 600", "(3)", "\"train_rows\":3,"] {
            assert!(
                !holds_count(text, small),
                "{what} holds the small count {small}"
            );
        }
        if what != "html" {
            // ("other (2)" on the page counts folded categories, not rows.)
            for small in ["(2)", "\"holdout_rows\":2,"] {
                assert!(
                    !text.contains(small),
                    "{what} holds the small count {small}"
                );
            }
        }
    }
    // The small cells are written as bounds.
    assert!(json.contains("(<11)"), "pooled subgroup count");
    assert!(
        json.contains("<11 of 600 holdout rows"),
        "outlier holdout hits"
    );
    assert!(evidence.contains("\"<11\""), "{evidence}");
    // 4 missing of 600 training values: neither count is exact on the page.
    assert!(!html.contains("0.7% missing") && !html.contains("596 values"));
    assert!(html.contains("&lt;11 missing") && html.contains("≈600 values"));
    // Normal-count cells still show: site A's bar and its 200 training rows.
    assert!(html.contains(">\nA\n</text>"), "category A is drawn");
    assert!(evidence.contains("\"train_rows\":199"), "{evidence}");
    assert!(html.contains("training: 600 values, 0.0% missing"));
}

#[test]
fn a_count_is_held_only_as_a_whole_number() {
    assert!(holds_count("3 of 600 rows", "3 of 600"));
    assert!(holds_count("13 of 600; (3 of 600)", "3 of 600"));
    assert!(!holds_count("13 of 600 and 32 of 600", "3 of 600"));
}

/// `table` with a binary `flag` (lab ≥ 35, one row in seven flipped) for
/// the utility operators.
fn with_flag(mut t: Table) -> Table {
    let lab = match &t.column("lab").unwrap().values {
        crate::table::ColumnValues::Numeric(v) => v.clone(),
        _ => unreachable!(),
    };
    let flag: Vec<Option<String>> = lab
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            Some(
                if (x >= 35.0) != (i % 7 == 0) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            )
        })
        .collect();
    t.columns.push(Column::categorical("flag", &flag));
    t
}

#[test]
fn no_operator_names_a_rare_real_label() {
    // Every role set, so that the conditional, utility (overall and per
    // subgroup) and privacy-risk operators run on the planted rare site.
    let train = with_flag(table(600, 0.0, &[TRAIN_MIN, TRAIN_MAX], 4, (TRAIN_RARE, 3)));
    let holdout = with_flag(table(600, 0.37, &[20.0, HOLDOUT_MAX], 0, (TRAIN_RARE, 2)));
    let synthetic = with_flag(table(
        600,
        0.71,
        &[TRAIN_MIN, TRAIN_MAX],
        0,
        (TRAIN_RARE, 30),
    ));
    let roles: Roles = toml::from_str(
        r#"
        quasi_identifiers = ["site"]
        sensitive = ["lab"]
        subgroups = [{ column = "site" }]
        target = { column = "flag", positive = "yes" }
        conditionals = [{ column = "lab", given = "site" }]
        "#,
    )
    .unwrap();
    let config = GateConfig {
        null_replicates: 20,
        // Small strata are scored, so a rare one would be named if it could.
        conditional_min_rows: 2,
        utility_min_subgroup_rows: 2,
        ..GateConfig::default()
    };
    let (report, html, json) = reported(&train, &holdout, &synthetic, &config, &roles);
    for (what, text) in [("html", &html), ("json", &json)] {
        assert!(!text.contains(TRAIN_RARE), "{what} names {TRAIN_RARE}");
    }
    // The rare site is still scored, under the pooled name, by the
    // operators that score per level.
    let pooled = format!("site={}", crate::gate::cells::rare_levels(11));
    for op in ["subgroup_share", "utility_subgroup_gap", "conditional_ks"] {
        assert!(
            report
                .results
                .iter()
                .any(|r| r.operator == op && r.columns.contains(&pooled)),
            "{op} scores {pooled}: {json}"
        );
    }
    // Common sites keep their names.
    assert!(
        report.results.iter().any(
            |r| r.operator == "utility_subgroup_gap" && r.columns.iter().any(|c| c == "site=A")
        ),
        "{json}"
    );
}
