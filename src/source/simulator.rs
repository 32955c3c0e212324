//! A built-in EHR lab-result event simulator for the demo, tests and benches.
//!
//! It draws a fixed pool of fictional patients (no real data anywhere) with
//! demographics, a primary diagnosis and lab results whose dependencies look
//! like a real population's: type 2 diabetes grows more likely with age,
//! HbA1c depends on the diabetes diagnosis, fasting glucose follows HbA1c
//! through the ADAG relation (glucose ≈ 28.7·HbA1c − 46.7), LDL is higher with
//! hyperlipidaemia and creatinine with age and male sex. Each window of event
//! time, most patients have one encounter with one result per lab. A drift can
//! be injected from a given window on, in named columns, by a size in
//! standard deviations, so drift detection can be demonstrated and measured.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::schema::RecordSchema;

/// One lab-result change event (the fields of `schemas/ehr/lab_result.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabEvent {
    pub event_id: String,
    pub patient_id: String,
    #[serde(rename = "event_time")]
    pub event_time_ms: i64,
    pub age: i32,
    pub sex: String,
    pub race: String,
    pub ethnicity: String,
    pub zip3: String,
    pub diagnosis_code: String,
    pub lab_code: String,
    pub lab_value: Option<f64>,
    pub lab_unit: String,
}

/// Labs the simulator emits: (LOINC code, unit, training-table column).
pub const LABS: [(&str, &str, &str); 4] = [
    ("4548-4", "%", "hba1c"),
    ("1558-6", "mg/dL", "glucose"),
    ("13457-7", "mg/dL", "ldl"),
    ("2160-0", "mg/dL", "creatinine"),
];

/// Columns a drift can be injected into.
pub const DRIFTABLE: [&str; 6] = ["hba1c", "glucose", "ldl", "creatinine", "age", "diabetes"];

/// A distribution shift injected part-way through the stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftSpec {
    /// First window (0-based) in which the shift is present.
    pub start_window: usize,
    /// Columns shifted: any of `DRIFTABLE`.
    pub columns: Vec<String>,
    /// Shift in standard deviations of the column (for `diabetes`: +size×10
    /// percentage points of prevalence; for `age`: the pool ages by size×16 years).
    pub size: f64,
}

/// Simulator settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulatorConfig {
    /// Size of the patient pool.
    pub patients: usize,
    /// Probability that a patient has an encounter in a given window.
    pub visit_probability: f64,
    /// Event time of the start of window 0, ms since the epoch.
    pub start_ms: i64,
    /// Window length in ms (match the topology's `window.size_secs`).
    pub window_ms: i64,
    /// Share of results with a null value (cancelled tests).
    pub cancelled_rate: f64,
    /// Optional injected drift.
    pub drift: Option<DriftSpec>,
    pub seed: u64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            patients: 4000,
            visit_probability: 0.75,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            window_ms: 3_600_000,
            cancelled_rate: 0.02,
            drift: None,
            seed: 7,
        }
    }
}

#[derive(Debug, Clone)]
struct Patient {
    id: String,
    age: f64,
    male: bool,
    sex: &'static str,
    race: &'static str,
    ethnicity: &'static str,
    zip3: String,
    /// Latent propensity in [0,1) used to decide diabetes consistently across windows.
    diabetes_u: f64,
    /// Latent propensity for hyperlipidaemia / hypertension.
    other_u: f64,
}

/// Generates the event stream, window by window, deterministically from the seed.
pub struct Simulator {
    config: SimulatorConfig,
    patients: Vec<Patient>,
}

const RACES: [(&str, f64); 6] = [
    ("White", 0.60),
    ("Black or African American", 0.13),
    ("Asian", 0.06),
    ("American Indian or Alaska Native", 0.01),
    ("Other", 0.08),
    ("Unknown", 0.12),
];
const ZIP3: [&str; 12] = [
    "021", "100", "112", "191", "200", "303", "331", "441", "482", "606", "750", "941",
];

fn pick<'a>(rng: &mut StdRng, table: &[(&'a str, f64)]) -> &'a str {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (label, p) in table {
        acc += p;
        if u < acc {
            return label;
        }
    }
    table[table.len() - 1].0
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let age_dist = Normal::new(52.0, 16.0).expect("valid normal");
        let patients = (0..config.patients)
            .map(|i| {
                draw_patient(
                    &mut rng,
                    &age_dist,
                    format!("P{:02}-{i:06}", config.seed % 100),
                )
            })
            .collect();
        Simulator { config, patients }
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.config
    }

    fn drift_in(&self, window: usize, column: &str) -> f64 {
        match &self.config.drift {
            Some(d) if window >= d.start_window && d.columns.iter().any(|c| c == column) => d.size,
            _ => 0.0,
        }
    }

    /// The events of one window, in event-time order with a little jitter
    /// (up to a minute out of order), as a real feed delivers them.
    pub fn window_events(&self, window: usize) -> Vec<LabEvent> {
        let mut rng = StdRng::seed_from_u64(
            self.config.seed ^ (window as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let unit = Normal::new(0.0, 1.0).expect("valid normal");
        let window_start = self.config.start_ms + window as i64 * self.config.window_ms;
        let age_shift = self.drift_in(window, "age") * 16.0;
        let diabetes_shift = self.drift_in(window, "diabetes") * 0.10;
        let mut events = Vec::new();
        let mut seq = 0u64;
        for p in &self.patients {
            if rng.random::<f64>() >= self.config.visit_probability {
                continue;
            }
            let age = (p.age + age_shift).clamp(18.0, 95.0).round();
            let (diagnosis, values) = draw_labs(&mut rng, &unit, p, age, diabetes_shift, &|c| {
                self.drift_in(window, c)
            });
            let encounter_time = window_start + rng.random_range(0..self.config.window_ms);
            for ((code, unit_label, _), value) in LABS.iter().zip(values) {
                seq += 1;
                let jitter = rng.random_range(0..60_000);
                let cancelled = rng.random::<f64>() < self.config.cancelled_rate;
                events.push(LabEvent {
                    event_id: format!("w{window}-e{seq}"),
                    patient_id: p.id.clone(),
                    event_time_ms: (encounter_time + jitter)
                        .min(window_start + self.config.window_ms - 1),
                    age: age as i32,
                    sex: p.sex.to_string(),
                    race: p.race.to_string(),
                    ethnicity: p.ethnicity.to_string(),
                    zip3: p.zip3.clone(),
                    diagnosis_code: diagnosis.to_string(),
                    lab_code: code.to_string(),
                    lab_value: (!cancelled).then_some(value),
                    lab_unit: unit_label.to_string(),
                });
            }
        }
        // Delivery order: by encounter time, but results of one encounter may
        // arrive up to a minute apart and out of order.
        let mut keyed: Vec<(i64, LabEvent)> = events
            .into_iter()
            .map(|e| (e.event_time_ms - rng.random_range(0..30_000i64), e))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        keyed.into_iter().map(|(_, e)| e).collect()
    }
}

/// One patient of the population (the draws `Simulator::new` makes, in order).
fn draw_patient(rng: &mut StdRng, age_dist: &Normal<f64>, id: String) -> Patient {
    let sex_u: f64 = rng.random();
    let (male, sex) = if sex_u < 0.49 {
        (true, "M")
    } else if sex_u < 0.995 {
        (false, "F")
    } else {
        (false, "U")
    };
    Patient {
        id,
        age: f64::clamp(age_dist.sample(rng), 18.0, 95.0),
        male,
        sex,
        race: pick(rng, &RACES),
        ethnicity: if rng.random::<f64>() < 0.18 {
            "Hispanic or Latino"
        } else {
            "Not Hispanic or Latino"
        },
        zip3: ZIP3[rng.random_range(0..ZIP3.len())].to_string(),
        diabetes_u: rng.random(),
        other_u: rng.random(),
    }
}

/// A patient's diagnosis and rounded lab values (HbA1c, glucose, LDL,
/// creatinine) at `age`, with `shift(column)` standard deviations of drift.
fn draw_labs(
    rng: &mut StdRng,
    unit: &Normal<f64>,
    p: &Patient,
    age: f64,
    diabetes_shift: f64,
    shift: &dyn Fn(&str) -> f64,
) -> (&'static str, [f64; 4]) {
    // P(type 2 diabetes) rises with age (logistic), ~12% overall.
    let p_diab = 1.0 / (1.0 + (-(age - 68.0) / 9.0).exp()) * 0.35 + diabetes_shift;
    let diabetic = p.diabetes_u < p_diab;
    let diagnosis = if diabetic {
        "E11.9"
    } else if p.other_u < 0.18 {
        "E78.5"
    } else if p.other_u < 0.18 + 0.004 * age {
        "I10"
    } else {
        "Z00.00"
    };
    let hba1c = if diabetic {
        7.8 + 1.1 * unit.sample(rng)
    } else {
        5.3 + 0.008 * (age - 50.0) + 0.35 * unit.sample(rng)
    } + shift("hba1c") * 1.2;
    let glucose = 28.7 * hba1c - 46.7 + 12.0 * unit.sample(rng) + shift("glucose") * 25.0;
    let ldl = 115.0
        + if diagnosis == "E78.5" { 35.0 } else { 0.0 }
        + 28.0 * unit.sample(rng)
        + shift("ldl") * 32.0;
    let creatinine = (0.85
        + if p.male { 0.17 } else { 0.0 }
        + 0.004 * (age - 50.0)
        + 0.15 * unit.sample(rng)
        + shift("creatinine") * 0.2)
        .max(0.3);
    (
        diagnosis,
        [
            (hba1c.max(3.5) * 10.0).round() / 10.0,
            glucose.max(40.0).round(),
            ldl.max(20.0).round(),
            (creatinine * 100.0).round() / 100.0,
        ],
    )
}

/// How the population moves in `patient_table` (drift calibration).
#[derive(Debug, Clone, PartialEq)]
pub enum PopulationDrift {
    None,
    /// From window `start`, `column` (one of `DRIFTABLE`) shifts by `size`
    /// (the units of `DriftSpec::size`: about one standard deviation).
    Shift {
        column: String,
        size: f64,
        start: usize,
    },
    /// From window `start`, in a share `size` of rows glucose no longer
    /// follows HbA1c: those rows' glucose values are permuted among them, so
    /// every column's marginal distribution is unchanged.
    Decouple {
        size: f64,
        start: usize,
    },
    /// A `Shift` only for patients with `sex` = `segment` (e.g. "F").
    Segment {
        column: String,
        size: f64,
        start: usize,
        segment: String,
    },
    /// A shift growing linearly from 0 at window `start` to `size` at `start + ramp`.
    Gradual {
        column: String,
        size: f64,
        start: usize,
        ramp: usize,
    },
}

impl PopulationDrift {
    /// Shift of `column` for a patient of sex `sex` in `window`.
    fn shift(&self, window: usize, column: &str, sex: &str) -> f64 {
        match self {
            PopulationDrift::Shift {
                column: c,
                size,
                start,
            } if c == column && window >= *start => *size,
            PopulationDrift::Segment {
                column: c,
                size,
                start,
                segment,
            } if c == column && window >= *start && sex == segment => *size,
            PopulationDrift::Gradual {
                column: c,
                size,
                start,
                ramp,
            } if c == column && window >= *start => {
                size * ((window - start + 1) as f64 / (*ramp).max(1) as f64).min(1.0)
            }
            _ => 0.0,
        }
    }
}

impl Simulator {
    /// A training table of `rows` patients drawn afresh from the population
    /// for `window` (one row per patient, the columns `topologies/demo.toml`'s
    /// SQL produces, without `patient_id`), seeded by `seed` and the window.
    /// Windows are independent samples — the hardest case for false alarms —
    /// unlike `window_events`, which revisits a fixed pool of patients.
    pub fn patient_table(
        &self,
        window: usize,
        rows: usize,
        drift: &PopulationDrift,
        seed: u64,
    ) -> crate::table::Table {
        use crate::table::{Column, Table};
        let mut rng = StdRng::seed_from_u64(
            seed ^ self.config.seed.rotate_left(17)
                ^ (window as u64).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let age_dist = Normal::new(52.0, 16.0).expect("valid normal");
        let unit = Normal::new(0.0, 1.0).expect("valid normal");
        let mut cat: [Vec<&str>; 5] = Default::default();
        let mut num: [Vec<f64>; 5] = Default::default();
        for _ in 0..rows {
            let p = draw_patient(&mut rng, &age_dist, String::new());
            let shift = |c: &str| drift.shift(window, c, p.sex);
            let age = (p.age + shift("age") * 16.0).clamp(18.0, 95.0).round();
            let (diagnosis, labs) =
                draw_labs(&mut rng, &unit, &p, age, shift("diabetes") * 0.10, &shift);
            let zip3 = ZIP3
                .iter()
                .find(|z| **z == p.zip3)
                .copied()
                .unwrap_or("000");
            for (i, v) in [p.sex, p.race, p.ethnicity, zip3, diagnosis]
                .into_iter()
                .enumerate()
            {
                cat[i].push(v);
            }
            num[0].push(age);
            for (k, v) in labs.into_iter().enumerate() {
                let cancelled = rng.random::<f64>() < self.config.cancelled_rate;
                num[k + 1].push(if cancelled { f64::NAN } else { v });
            }
        }
        if let PopulationDrift::Decouple { size, start } = drift
            && window >= *start
        {
            let chosen: Vec<usize> = (0..rows).filter(|_| rng.random::<f64>() < *size).collect();
            let mut values: Vec<f64> = chosen.iter().map(|&r| num[2][r]).collect();
            // Fisher–Yates over the chosen rows' glucose values.
            for i in (1..values.len()).rev() {
                values.swap(i, rng.random_range(0..=i));
            }
            for (&r, v) in chosen.iter().zip(values) {
                num[2][r] = v;
            }
        }
        fn opt<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
            v.iter().map(|s| Some(*s)).collect()
        }
        let [age, hba1c, glucose, ldl, creatinine] = num;
        Table::new(vec![
            Column::numeric("age", age),
            Column::categorical("sex", &opt(&cat[0])),
            Column::categorical("race", &opt(&cat[1])),
            Column::categorical("ethnicity", &opt(&cat[2])),
            Column::categorical("zip3", &opt(&cat[3])),
            Column::categorical("diagnosis_code", &opt(&cat[4])),
            Column::numeric("hba1c", hba1c),
            Column::numeric("glucose", glucose),
            Column::numeric("ldl", ldl),
            Column::numeric("creatinine", creatinine),
        ])
    }
}

/// Encodes an event as a raw Avro datum of the source schema.
pub fn encode_event_avro(
    schema: &RecordSchema,
    e: &LabEvent,
) -> Result<Vec<u8>, apache_avro::Error> {
    use apache_avro::types::Value as Avro;
    let value = Avro::Record(vec![
        ("event_id".into(), Avro::String(e.event_id.clone())),
        ("patient_id".into(), Avro::String(e.patient_id.clone())),
        ("event_time".into(), Avro::TimestampMillis(e.event_time_ms)),
        ("age".into(), Avro::Int(e.age)),
        ("sex".into(), Avro::String(e.sex.clone())),
        ("race".into(), Avro::String(e.race.clone())),
        ("ethnicity".into(), Avro::String(e.ethnicity.clone())),
        ("zip3".into(), Avro::String(e.zip3.clone())),
        (
            "diagnosis_code".into(),
            Avro::String(e.diagnosis_code.clone()),
        ),
        ("lab_code".into(), Avro::String(e.lab_code.clone())),
        (
            "lab_value".into(),
            match e.lab_value {
                Some(v) => Avro::Union(1, Box::new(Avro::Double(v))),
                None => Avro::Union(0, Box::new(Avro::Null)),
            },
        ),
        ("lab_unit".into(), Avro::String(e.lab_unit.clone())),
    ]);
    crate::schema::write_datum(&schema.avro, value)
}

/// Encodes an event as a JSON object.
pub fn encode_event_json(e: &LabEvent) -> Vec<u8> {
    serde_json::to_vec(e).expect("plain struct serialises")
}

/// Corrupt payloads of several kinds, for dead-letter tests and the demo.
pub fn corrupt_payload(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not avro".to_vec(),
        1 => format!("{{\"broken\": {i}").into_bytes(),
        _ => vec![0x02, b'x'],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn windows_are_deterministic_and_inside_their_bounds() {
        let sim = Simulator::new(SimulatorConfig {
            patients: 300,
            ..Default::default()
        });
        let a = sim.window_events(2);
        assert_eq!(a, sim.window_events(2));
        let c = sim.config();
        let start = c.start_ms + 2 * c.window_ms;
        assert!(
            a.iter()
                .all(|e| e.event_time_ms >= start && e.event_time_ms < start + c.window_ms)
        );
        assert!(a.len() > 4 * 150, "most of 300 patients visit: {}", a.len());
    }

    #[test]
    fn hba1c_depends_on_diabetes_and_drift_shifts_it() {
        let sim = Simulator::new(SimulatorConfig {
            patients: 3000,
            drift: Some(DriftSpec {
                start_window: 1,
                columns: vec!["hba1c".into()],
                size: 1.0,
            }),
            ..Default::default()
        });
        let hba1c = |w: usize, diabetic: bool| -> Vec<f64> {
            sim.window_events(w)
                .into_iter()
                .filter(|e| e.lab_code == "4548-4" && (e.diagnosis_code == "E11.9") == diabetic)
                .filter_map(|e| e.lab_value)
                .collect()
        };
        let (d0, n0) = (mean(&hba1c(0, true)), mean(&hba1c(0, false)));
        assert!(d0 - n0 > 2.0, "diabetics {d0} vs others {n0}");
        let shifted = mean(&hba1c(1, false));
        assert!((shifted - n0 - 1.2).abs() < 0.1, "shift {}", shifted - n0);
    }
}
