//! What each column means to the gate: which columns an attacker may know
//! (quasi-identifiers), which are sensitive, which define subgroups for the
//! utility check, what the utility target is, and which conditional
//! distributions matter. Roles come from the topology's `[roles]` section or
//! from `resynth validate --roles`; thresholds live in `GateConfig`.

use serde::{Deserialize, Serialize};

/// Column roles for the gate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Roles {
    /// Columns an attacker can plausibly know about a person from elsewhere
    /// (age, sex, zip3, race, ...). k-anonymity, l-diversity, singling-out,
    /// linkability and inference risk are measured on them.
    pub quasi_identifiers: Vec<String>,
    /// Columns whose values must not be learnable about a person (diagnosis,
    /// lab values): attribute-inference targets and l-diversity columns.
    pub sensitive: Vec<String>,
    /// Subgroups for the utility gap (e.g. sex, age band, race, ethnicity).
    pub subgroups: Vec<Subgroup>,
    /// Binary outcome for train-on-synthetic-test-on-real; none disables TSTR.
    pub target: Option<Target>,
    /// Conditional distributions to compare, e.g. lab value given diagnosis.
    pub conditionals: Vec<Conditional>,
}

/// A subgroup-defining column; numeric columns are cut into bands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subgroup {
    pub column: String,
    /// Band edges for a numeric column (e.g. [18, 40, 65] gives <18, 18–40,
    /// 40–65, ≥65); absent for categorical columns.
    #[serde(default)]
    pub bands: Option<Vec<f64>>,
}

/// The utility target: `column` equal to `positive` is the positive class
/// (categorical), or `column` ≥ `threshold` (numeric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub column: String,
    #[serde(default)]
    pub positive: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// `column` given `given` (a categorical column): compared per stratum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    pub column: String,
    pub given: String,
}

impl Roles {
    /// Problems with the roles given the training table's column names.
    pub fn validate(&self, columns: &[String]) -> Vec<String> {
        let mut p = Vec::new();
        let known = |c: &String| columns.contains(c);
        for (what, list) in [
            ("quasi_identifiers", &self.quasi_identifiers),
            ("sensitive", &self.sensitive),
        ] {
            for c in list.iter().filter(|c| !known(c)) {
                p.push(format!(
                    "roles.{what}: {c:?} is not a column of the training table"
                ));
            }
        }
        for s in self.subgroups.iter().filter(|s| !known(&s.column)) {
            p.push(format!(
                "roles.subgroups: {:?} is not a column of the training table",
                s.column
            ));
        }
        for s in &self.subgroups {
            if let Some(b) = &s.bands
                && (b.is_empty()
                    || b.windows(2).any(|w| w[0] >= w[1])
                    || b.iter().any(|x| !x.is_finite()))
            {
                p.push(format!(
                    "roles.subgroups[{}].bands: must be finite and strictly increasing",
                    s.column
                ));
            }
        }
        if let Some(t) = &self.target {
            if !known(&t.column) {
                p.push(format!(
                    "roles.target.column: {:?} is not a column of the training table",
                    t.column
                ));
            }
            if t.positive.is_some() == t.threshold.is_some() {
                p.push("roles.target: give exactly one of `positive` (categorical) or `threshold` (numeric)".into());
            }
        }
        for c in &self.conditionals {
            for col in [&c.column, &c.given] {
                if !known(col) {
                    p.push(format!(
                        "roles.conditionals: {col:?} is not a column of the training table"
                    ));
                }
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_columns_and_bad_target_are_listed() {
        let roles: Roles = toml::from_str(
            r#"
            quasi_identifiers = ["age", "zip"]
            sensitive = ["diagnosis_code"]
            subgroups = [{ column = "age", bands = [40, 18] }]
            target = { column = "diagnosis_code" }
            conditionals = [{ column = "hba1c", given = "dx" }]
            "#,
        )
        .unwrap();
        let cols: Vec<String> = ["age", "diagnosis_code", "hba1c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = roles.validate(&cols);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p.iter().any(|m| m.contains("\"zip\"")));
        assert!(p.iter().any(|m| m.contains("bands")));
        assert!(p.iter().any(|m| m.contains("exactly one")));
        assert!(p.iter().any(|m| m.contains("\"dx\"")));
    }
}
