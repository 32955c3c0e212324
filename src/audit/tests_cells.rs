//! Issue 16: reports hold no small real-data cell and no exact real
//! extreme. One gate run on tables with planted rare categories, a planted
//! small missing count and distinctive exact minima and maxima; the HTML
//! page, the gate report's JSON and the binder's batch evidence are
//! searched for each of them, while a normal-count cell must still show.

use crate::audit::binder::evidence::batch_evidence;
use crate::audit::html::{HtmlContext, render};
use crate::gate::{GateConfig, Roles, evaluate};
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

#[test]
#[ignore = "open leak (issue 16): the HTML report still names a category held by 3 training rows; run with --ignored"]
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
    let report = evaluate(&train, &holdout, &synthetic, &config, &roles, 1).unwrap();
    let html = render(
        &report,
        &HtmlContext {
            title: "cells",
            meta: vec![],
            train: &train,
            holdout: Some(&holdout),
            synthetic: &synthetic,
            min_cell: config.small_cell_min,
        },
    )
    .unwrap();
    let json = serde_json::to_string(&report).unwrap();
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
        // hits are never written as counts.
        for small in ["3 of 600", "2 of 600", "(3)", "\"train_rows\":3,"] {
            assert!(
                !text.contains(small),
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
