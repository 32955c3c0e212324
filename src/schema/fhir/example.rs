//! FHIR R4 Observations made from simulator lab events: seeds for the
//! fuzz tests, input for the decode bench and for tests, and what
//! `source::load` writes to a `fhir` source topic.

use crate::source::simulator::LabEvent;
use crate::topology::{FhirColumn, FhirValueType, SourceConfig};

/// `e` as an Observation: id = event id, LOINC code, value, subject,
/// effective time; `version` and `status` as given.
pub fn observation(e: &LabEvent, version: Option<&str>, status: &str) -> serde_json::Value {
    let mut o = serde_json::json!({
        "resourceType": "Observation",
        "id": e.event_id,
        "status": status,
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}]}],
        "code": {"coding": [
            {"system": "http://loinc.org", "code": e.lab_code, "display": "lab"}
        ], "text": "lab"},
        "subject": {"reference": format!("Patient/{}", e.patient_id)},
        "effectiveDateTime": super::time::format_instant(e.event_time_ms),
        "issued": super::time::format_instant(e.event_time_ms),
    });
    if let Some(v) = e.lab_value {
        o["valueQuantity"] = serde_json::json!({
            "value": v, "unit": e.lab_unit,
            "system": "http://unitsofmeasure.org", "code": e.lab_unit});
    }
    if let Some(v) = version {
        o["meta"] = serde_json::json!({"versionId": v, "lastUpdated": "2024-01-01T00:00:00Z"});
    }
    o
}

/// [`observation`] as bytes, version 1, status `final`.
pub fn observation_bytes(e: &LabEvent) -> Vec<u8> {
    serde_json::to_vec(&observation(e, Some("1"), "final")).expect("JSON")
}

/// A `fhir` source reading [`observation`]s: patient, LOINC code, value,
/// unit and effective time.
pub fn observation_source() -> SourceConfig {
    let col = |name: &str, path: &str, kind, required| FhirColumn {
        name: name.into(),
        path: path.into(),
        kind,
        required,
    };
    SourceConfig {
        format: crate::topology::EventFormat::Fhir,
        schema: Default::default(),
        event_time_field: "event_time".into(),
        resource_type: Some("Observation".into()),
        columns: vec![
            col(
                "patient_id",
                "subject.reference",
                FhirValueType::String,
                true,
            ),
            col(
                "lab_code",
                "code.coding[system='http://loinc.org'].code",
                FhirValueType::String,
                true,
            ),
            col(
                "lab_value",
                "valueQuantity.value",
                FhirValueType::Double,
                false,
            ),
            col(
                "lab_unit",
                "valueQuantity.unit",
                FhirValueType::String,
                false,
            ),
            col(
                "event_time",
                "effectiveDateTime | effectivePeriod.start | issued",
                FhirValueType::Timestamp,
                true,
            ),
        ],
        status_path: None,
        max_resource_bytes: None,
    }
}
