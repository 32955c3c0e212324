//! Lineage headers: the public contract that tells a downstream consumer where
//! each synthetic record came from. The names are listed in the README; tests
//! check every published record carries all of them.

use serde::{Deserialize, Serialize};

/// Values of the lineage headers for one batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    pub batch_id: String,
    pub topology: String,
    pub model_version: u64,
    pub model_sha256: String,
    pub generator: String,
    /// `topic/partition/first-last` ranges, comma-separated.
    pub source: String,
    /// `start_ms-end_ms` of event time, half-open.
    pub window: String,
    pub validation_run: String,
    /// `model=<eps|none>;ledger_total=<eps>`.
    pub epsilon: String,
    /// `passed <k>/<n>` or `failed <k>/<n>: op,op`.
    pub gates: String,
    pub engine_version: String,
}

/// Header names, in the order they are written.
pub fn header_names() -> [&'static str; 11] {
    [
        "resynth.batch_id",
        "resynth.topology",
        "resynth.model_version",
        "resynth.model_sha256",
        "resynth.generator",
        "resynth.source",
        "resynth.window",
        "resynth.validation_run",
        "resynth.epsilon",
        "resynth.gates",
        "resynth.engine_version",
    ]
}

impl Lineage {
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let values = [
            self.batch_id.clone(),
            self.topology.clone(),
            self.model_version.to_string(),
            self.model_sha256.clone(),
            self.generator.clone(),
            self.source.clone(),
            self.window.clone(),
            self.validation_run.clone(),
            self.epsilon.clone(),
            self.gates.clone(),
            self.engine_version.clone(),
        ];
        header_names()
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v.into_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_is_written_once() {
        let l = Lineage {
            batch_id: "b".into(),
            topology: "t".into(),
            model_version: 3,
            model_sha256: "ab".into(),
            generator: "gaussian_copula".into(),
            source: "in/0/0-9".into(),
            window: "0-100".into(),
            validation_run: "v".into(),
            epsilon: "model=none;ledger_total=0".into(),
            gates: "passed 3/3".into(),
            engine_version: "0.1.0".into(),
        };
        let h = l.headers();
        assert_eq!(h.len(), header_names().len());
        assert_eq!(h[2], ("resynth.model_version".to_string(), b"3".to_vec()));
    }
}
