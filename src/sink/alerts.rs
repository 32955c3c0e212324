//! Alerts on `kafka.alerts_topic`: Avro datums of `schemas/alerts/drift_alert.avsc`.
//!
//! One record type covers every alert kind (drift state change, quarantined
//! batch, refused refit) so a subscriber reads one topic with one schema and
//! switches on `kind`; each kind fills its own detail field. The schema is
//! compiled into the binary, so what is written is what the file in
//! `schemas/` describes.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::drift::{DriftState, TestResult};

/// The alert schema's text (also shipped as `schemas/alerts/drift_alert.avsc`).
pub const ALERT_SCHEMA: &str = include_str!("../../schemas/alerts/drift_alert.avsc");
/// Most drifting tests listed in one alert (the audit entry has all of them).
const MAX_COLUMNS: usize = 64;

/// The parsed alert schema.
pub fn alert_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(ALERT_SCHEMA).expect("shipped alert schema parses"))
}

/// Drift detail of a `drift_state` alert.
#[derive(Debug, Clone)]
pub struct DriftAlert<'a> {
    pub from: DriftState,
    pub to: DriftState,
    pub refit: bool,
    pub score: f64,
    pub rows: usize,
    pub regime: &'a str,
    pub columns: Vec<&'a TestResult>,
}

/// One failed gate operator of a quarantined batch.
#[derive(Debug, Clone)]
pub struct FailedOperator {
    pub operator: String,
    pub columns: Vec<String>,
    pub statistic: f64,
    pub threshold: f64,
}

/// What an alert says, by kind.
#[derive(Debug, Clone)]
pub enum AlertDetail<'a> {
    Drift(DriftAlert<'a>),
    Quarantined {
        batch_id: String,
        failed: Vec<FailedOperator>,
    },
    BudgetExhausted {
        would_be_version: u64,
        epsilon_spent: f64,
        epsilon_requested: f64,
        epsilon_cap: f64,
    },
}

/// An alert ready to encode.
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    pub topology: &'a str,
    pub window: &'a str,
    pub model_version: Option<u64>,
    pub time_ms: i64,
    pub detail: AlertDetail<'a>,
}

fn state(s: DriftState) -> Value {
    let (i, name) = match s {
        DriftState::Ok => (0, "OK"),
        DriftState::Warn => (1, "WARN"),
        DriftState::Drift => (2, "DRIFT"),
    };
    Value::Enum(i, name.into())
}

fn nullable(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

fn column(t: &TestResult) -> Value {
    Value::Record(vec![
        ("column".into(), Value::String(t.column.clone())),
        (
            "segment".into(),
            nullable(t.segment.clone().map(Value::String)),
        ),
        ("aspect".into(), Value::String(t.aspect.clone())),
        ("test".into(), Value::String(t.test.clone())),
        ("p_value".into(), Value::Double(t.p_value)),
        ("q_value".into(), Value::Double(t.q_value)),
        ("method".into(), Value::String(t.method.clone())),
        ("statistic".into(), Value::Double(t.statistic)),
        ("threshold".into(), Value::Double(t.threshold)),
        ("floor".into(), Value::Double(t.floor)),
        ("effect".into(), Value::Double(t.score)),
        ("reason".into(), Value::String(t.reason.clone())),
    ])
}

impl Alert<'_> {
    /// `kind` as in the schema's enum.
    pub fn kind(&self) -> &'static str {
        match self.detail {
            AlertDetail::Drift(_) => "drift_state",
            AlertDetail::Quarantined { .. } => "batch_quarantined",
            AlertDetail::BudgetExhausted { .. } => "budget_exhausted",
        }
    }

    /// The Avro value of this alert.
    pub fn to_value(&self) -> Value {
        let kind_index = match self.detail {
            AlertDetail::Drift(_) => 0,
            AlertDetail::Quarantined { .. } => 1,
            AlertDetail::BudgetExhausted { .. } => 2,
        };
        let (mut drift, mut quarantine, mut budget) = (None, None, None);
        match &self.detail {
            AlertDetail::Drift(d) => {
                drift = Some(Value::Record(vec![
                    ("from".into(), state(d.from)),
                    ("to".into(), state(d.to)),
                    ("refit".into(), Value::Boolean(d.refit)),
                    ("score".into(), Value::Double(d.score)),
                    ("rows".into(), Value::Long(d.rows as i64)),
                    ("regime".into(), Value::String(d.regime.to_string())),
                    (
                        "columns".into(),
                        Value::Array(
                            d.columns
                                .iter()
                                .take(MAX_COLUMNS)
                                .map(|t| column(t))
                                .collect(),
                        ),
                    ),
                ]))
            }
            AlertDetail::Quarantined { batch_id, failed } => {
                quarantine = Some(Value::Record(vec![
                    ("batch_id".into(), Value::String(batch_id.clone())),
                    (
                        "failed".into(),
                        Value::Array(
                            failed
                                .iter()
                                .map(|f| {
                                    Value::Record(vec![
                                        ("operator".into(), Value::String(f.operator.clone())),
                                        (
                                            "columns".into(),
                                            Value::Array(
                                                f.columns
                                                    .iter()
                                                    .cloned()
                                                    .map(Value::String)
                                                    .collect(),
                                            ),
                                        ),
                                        ("statistic".into(), Value::Double(f.statistic)),
                                        ("threshold".into(), Value::Double(f.threshold)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ]))
            }
            AlertDetail::BudgetExhausted {
                would_be_version,
                epsilon_spent,
                epsilon_requested,
                epsilon_cap,
            } => {
                budget = Some(Value::Record(vec![
                    (
                        "would_be_version".into(),
                        Value::Long(*would_be_version as i64),
                    ),
                    ("epsilon_spent".into(), Value::Double(*epsilon_spent)),
                    (
                        "epsilon_requested".into(),
                        Value::Double(*epsilon_requested),
                    ),
                    ("epsilon_cap".into(), Value::Double(*epsilon_cap)),
                ]))
            }
        }
        Value::Record(vec![
            ("kind".into(), Value::Enum(kind_index, self.kind().into())),
            ("topology".into(), Value::String(self.topology.to_string())),
            ("window".into(), Value::String(self.window.to_string())),
            (
                "model_version".into(),
                nullable(self.model_version.map(|v| Value::Long(v as i64))),
            ),
            ("time_ms".into(), Value::TimestampMillis(self.time_ms)),
            ("drift".into(), nullable(drift)),
            ("quarantine".into(), nullable(quarantine)),
            ("budget".into(), nullable(budget)),
        ])
    }

    /// Raw Avro datum bytes (no container, no registry prefix).
    pub fn encode(&self) -> Result<Vec<u8>, apache_avro::Error> {
        crate::schema::write_datum(alert_schema(), self.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_encodes_and_decodes_with_the_shipped_schema() {
        let alerts = [
            Alert {
                topology: "t",
                window: "0-1",
                model_version: Some(3),
                time_ms: 5,
                detail: AlertDetail::Drift(DriftAlert {
                    from: DriftState::Ok,
                    to: DriftState::Warn,
                    refit: false,
                    score: 1.5,
                    rows: 200,
                    regime: "small",
                    columns: vec![],
                }),
            },
            Alert {
                topology: "t",
                window: "0-1",
                model_version: None,
                time_ms: 5,
                detail: AlertDetail::Quarantined {
                    batch_id: "b".into(),
                    failed: vec![FailedOperator {
                        operator: "ks".into(),
                        columns: vec!["x".into()],
                        statistic: 0.5,
                        threshold: 0.1,
                    }],
                },
            },
            Alert {
                topology: "t",
                window: "0-1",
                model_version: None,
                time_ms: 5,
                detail: AlertDetail::BudgetExhausted {
                    would_be_version: 2,
                    epsilon_spent: 1.0,
                    epsilon_requested: 0.5,
                    epsilon_cap: 1.2,
                },
            },
        ];
        for a in &alerts {
            let bytes = a.encode().expect("encodes");
            let back = apache_avro::reader::datum::GenericDatumReader::builder(alert_schema())
                .build()
                .unwrap()
                .read_value(&mut &bytes[..])
                .unwrap();
            let Value::Record(fields) = back else {
                panic!("record")
            };
            assert_eq!(
                fields[0].1,
                Value::Enum(
                    match a.kind() {
                        "drift_state" => 0,
                        "batch_quarantined" => 1,
                        _ => 2,
                    },
                    a.kind().into()
                )
            );
        }
    }
}
