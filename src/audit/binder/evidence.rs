//! Evidence the binder needs that only exists while a batch's tables do:
//! computed by the window job next to the gate and stored in the batch's
//! report (`evidence`), since training rows are never kept.
//!
//! - the k-anonymity risk at k = 11 (the public-release k), next to the
//!   gate's configured k: the share of synthetic records whose
//!   quasi-identifiers match a training class smaller than 11, and the
//!   same share for holdout records (the noise floor);
//! - each declared subgroup's share of training, holdout and synthetic
//!   records, for the subgroup report's collapse check. Small cells are
//!   suppressed at `gate.small_cell_min` (k): levels held by fewer than k
//!   training rows are pooled into one level named as the gate names it
//!   (`<column>=(levels under k rows)`), and a real count of 1 to k − 1 is
//!   written `"<k"` with its share left out (`null`).
//!
//! Pure functions over tables; counts and shares only, never values of a
//! person.

use serde_json::{Value, json};

use crate::gate::subgroups::rare_levels;
use crate::gate::{Roles, cells};
use crate::stats::equivalence_classes;
use crate::table::{ColumnValues, NULL_CODE, Table};

/// The k of public release in the Expert Determination inputs.
pub const PUBLIC_K: usize = 11;

/// Share of `synthetic` and `holdout` rows whose quasi-identifiers match a
/// class of `train` smaller than `k`; `None` without quasi-identifiers.
pub fn small_class_shares(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    quasi_identifiers: &[String],
    k: usize,
) -> Option<(f64, f64)> {
    if quasi_identifiers.is_empty() {
        return None;
    }
    let classes = equivalence_classes(train, &[synthetic, holdout], quasi_identifiers).ok()?;
    let share = |q: &[Option<usize>]| {
        if q.is_empty() {
            return 0.0;
        }
        q.iter()
            .filter(|c| c.is_some_and(|c| classes.sizes[c] < k))
            .count() as f64
            / q.len() as f64
    };
    Some((share(&classes.queries[0]), share(&classes.queries[1])))
}

/// Group labels of `table` for one subgroup column (numeric columns cut at
/// `bands`, labelled as the gate labels them: `<a`, `[a, b)`, `≥b`).
fn labels(table: &Table, column: &str, bands: Option<&[f64]>) -> Option<Vec<String>> {
    let col = table.column(column)?;
    Some(match (&col.values, bands) {
        (ColumnValues::Numeric(v), Some(b)) if !b.is_empty() => v
            .iter()
            .map(|&x| {
                if !x.is_finite() {
                    return "(missing)".to_string();
                }
                let k = b.partition_point(|&e| e <= x);
                match k {
                    0 => format!("<{}", b[0]),
                    k if k == b.len() => format!("≥{}", b[k - 1]),
                    k => format!("[{}, {})", b[k - 1], b[k]),
                }
            })
            .collect(),
        (ColumnValues::Categorical { codes, dictionary }, _) => codes
            .iter()
            .map(|&c| {
                if c == NULL_CODE {
                    "(missing)".to_string()
                } else {
                    dictionary[c as usize].clone()
                }
            })
            .collect(),
        (ColumnValues::Numeric(_), _) => return None,
    })
}

/// Per subgroup `column=label`: rows and shares in train, holdout,
/// synthetic, with small real cells suppressed at `k` (see the module doc).
pub fn subgroup_shares(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    roles: &Roles,
    k: usize,
) -> Value {
    let mut out = Vec::new();
    for sg in &roles.subgroups {
        let bands = sg.bands.as_deref();
        let (Some(mut r), Some(mut h), Some(mut s)) = (
            labels(train, &sg.column, bands),
            labels(holdout, &sg.column, bands),
            labels(synthetic, &sg.column, bands),
        ) else {
            continue;
        };
        // Labels held by fewer than k training rows are pooled, on every side.
        let mut train_counts: std::collections::HashMap<String, usize> = Default::default();
        for x in &r {
            *train_counts.entry(x.clone()).or_default() += 1;
        }
        let pooled = rare_levels(k);
        for side in [&mut r, &mut h, &mut s] {
            for x in side.iter_mut() {
                if train_counts.get(x.as_str()).copied().unwrap_or(0) < k {
                    *x = pooled.clone();
                }
            }
        }
        let mut names: Vec<String> = r.iter().chain(&h).chain(&s).cloned().collect();
        names.sort();
        names.dedup();
        for name in names {
            let count = |v: &[String]| v.iter().filter(|x| **x == name).count();
            let (nr, nh, ns) = (count(&r), count(&h), count(&s));
            let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
            // A real count of 1 to k − 1, and the share that gives it back.
            let real = |n: usize, of: usize| {
                if cells::is_small(n, k) {
                    (json!(format!("<{k}")), Value::Null)
                } else {
                    (json!(n), json!(share(n, of)))
                }
            };
            let ((r_rows, r_share), (h_rows, h_share)) = (real(nr, r.len()), real(nh, h.len()));
            out.push(json!({
                "subgroup": format!("{}={name}", sg.column), "column": sg.column, "label": name,
                "train_rows": r_rows, "holdout_rows": h_rows, "synthetic_rows": ns,
                "train_share": r_share, "holdout_share": h_share,
                "synthetic_share": share(ns, s.len()),
                "train_total": r.len(), "holdout_total": h.len(), "synthetic_total": s.len(),
            }));
        }
    }
    Value::Array(out)
}

/// Everything above, as stored under `evidence` in the batch report.
pub fn batch_evidence(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    roles: &Roles,
    gate_k: usize,
    small_cell_min: usize,
) -> Value {
    let shares = |k| {
        small_class_shares(train, holdout, synthetic, &roles.quasi_identifiers, k)
            .map(|(s, h)| json!({"k": k, "synthetic_share": s, "holdout_share": h}))
    };
    json!({
        "k_anonymity": {"gate_k": shares(gate_k), "public_k": shares(PUBLIC_K)},
        "subgroups": subgroup_shares(train, holdout, synthetic, roles, small_cell_min),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Subgroup;
    use crate::table::Column;

    #[test]
    fn small_class_shares_count_by_hand() {
        // Training classes on zip: "a" × 12, "b" × 3. Synthetic: 2 × a, 2 × b,
        // 1 × c (no class): at k = 11, the b's point at 3 people → 2/5.
        let zips = |v: &[&str]| {
            Table::new(vec![Column::categorical(
                "zip",
                &v.iter().map(|s| Some(*s)).collect::<Vec<_>>(),
            )])
        };
        let mut r = vec!["a"; 12];
        r.extend(["b"; 3]);
        let train = zips(&r);
        let synthetic = zips(&["a", "a", "b", "b", "c"]);
        let holdout = zips(&["a", "a", "a", "b"]);
        let qi = vec!["zip".to_string()];
        let (s, h) = small_class_shares(&train, &holdout, &synthetic, &qi, 11).unwrap();
        assert!(
            (s - 0.4).abs() < 1e-12 && (h - 0.25).abs() < 1e-12,
            "{s} {h}"
        );
        // At k = 3 no class is smaller than k.
        assert_eq!(
            small_class_shares(&train, &holdout, &synthetic, &qi, 3),
            Some((0.0, 0.0))
        );
        assert_eq!(
            small_class_shares(&train, &holdout, &synthetic, &[], 11),
            None
        );
    }

    #[test]
    fn subgroup_shares_use_the_gates_band_labels() {
        let t = |v: Vec<f64>| Table::new(vec![Column::numeric("age", v)]);
        let roles = Roles {
            subgroups: vec![Subgroup {
                column: "age".into(),
                bands: Some(vec![40.0, 65.0]),
            }],
            ..Default::default()
        };
        let v = subgroup_shares(
            &t(vec![30.0, 50.0, 70.0, 70.0]),
            &t(vec![30.0]),
            &t(vec![50.0, f64::NAN]),
            &roles,
            1,
        );
        let find = |name: &str| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|x| x["subgroup"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(find("age=≥65")["train_share"], 0.5);
        assert_eq!(find("age=≥65")["synthetic_rows"], 0);
        assert_eq!(find("age=[40, 65)")["synthetic_share"], 0.5);
        // No training row is missing: "(missing)" is pooled even at k = 1.
        assert_eq!(find("age=(levels under 1 rows)")["synthetic_rows"], 1);
    }

    /// Issue 16: small real cells never leave by number or by name.
    #[test]
    fn subgroup_shares_suppress_small_real_cells() {
        let site = |pattern: &[(&str, usize)]| {
            let v: Vec<Option<&str>> = pattern
                .iter()
                .flat_map(|(l, n)| std::iter::repeat_n(Some(*l), *n))
                .collect();
            Table::new(vec![Column::categorical("site", &v)])
        };
        let roles = Roles {
            subgroups: vec![Subgroup {
                column: "site".into(),
                bands: None,
            }],
            ..Default::default()
        };
        let train = site(&[("A", 40), ("B", 30), ("RARE-X", 3)]);
        let holdout = site(&[("A", 40), ("B", 4), ("RARE-X", 1)]);
        let synthetic = site(&[("A", 35), ("B", 35), ("RARE-X", 2)]);
        let v = subgroup_shares(&train, &holdout, &synthetic, &roles, 11);
        let text = v.to_string();
        assert!(!text.contains("RARE-X"), "{text}");
        let rows: Vec<&Value> = v.as_array().unwrap().iter().collect();
        let find = |name: &str| rows.iter().find(|x| x["subgroup"] == name).unwrap();
        // B: 30 training rows (shown), 4 holdout rows (suppressed, share too).
        assert_eq!(find("site=B")["train_rows"], 30);
        assert_eq!(find("site=B")["holdout_rows"], "<11");
        assert_eq!(find("site=B")["holdout_share"], Value::Null);
        let pooled = find("site=(levels under 11 rows)");
        assert_eq!(pooled["train_rows"], "<11");
        assert_eq!(pooled["train_share"], Value::Null);
        assert_eq!(
            pooled["synthetic_rows"], 2,
            "synthetic counts are not real people"
        );
        assert_eq!(find("site=A")["holdout_rows"], 40);
    }
}
