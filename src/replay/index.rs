//! The replay order without the population in memory: one pass over every
//! ndjson file records, per resource, its event time, patient, file and
//! byte range (32 bytes an event, however large the resource); sorting that
//! index gives the order across files, and the publisher reads each line
//! back by its range (`pread`, in order of time, not of file).
//!
//! Synthea's bulk files hold one patient after another, each patient's
//! records roughly in time order, so a k-way merge over the files would
//! need one cursor per patient and file; the index is simpler and its size
//! is bounded by the events in the span (`--since`/`--until`), which is
//! what a replay of a whole population's lifetimes needs cutting to anyway.
//!
//! The whole index is built before the first record is sent, so a bad line
//! (see [`BadLinePolicy`]) stops the replay before anything is published.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::resource::{self, Line, LineError, TYPES};

/// One resource's place in the files and in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Event time, ms since the epoch; `i64::MIN` for a Patient.
    pub time_ms: i64,
    /// Byte offset of the line in its file.
    pub offset: u64,
    /// Line length in bytes, without the newline.
    pub len: u32,
    /// Position in [`Index::patients`].
    pub patient: u32,
    /// Position in [`Index::files`].
    pub file: u16,
    /// Position in [`TYPES`].
    pub kind: u8,
}

/// Event-time bounds, `[since, until)`, ms since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Span {
    pub fn contains(&self, t: i64) -> bool {
        self.since_ms.is_none_or(|s| t >= s) && self.until_ms.is_none_or(|u| t < u)
    }
}

/// What a line that cannot be replayed does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLinePolicy {
    /// Stop before publishing anything (the default).
    Stop,
    /// Skip it, count it, and report the first few in the summary.
    Skip,
}

/// A line that cannot be replayed: file, 1-based line number and the path
/// at fault (never the content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub reason: LineError,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} (rerun with --skip-bad to skip and count such lines)")]
    Bad(BadLine),
    #[error("{0}")]
    Input(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How many resources of one type the files hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TypeCount {
    /// To publish (every Patient; timed resources inside the span).
    pub in_span: u64,
    /// Timed resources outside the span.
    pub outside_span: u64,
}

/// The replay plan.
#[derive(Debug, Default)]
pub struct Index {
    pub files: Vec<PathBuf>,
    /// Patient ids, each once (the keys).
    pub patients: Vec<String>,
    /// Patients, in file order: published before every event.
    pub demographics: Vec<Entry>,
    /// Timed resources inside the span, in replay order: event time, then
    /// the type's position in [`TYPES`], then file and offset.
    pub events: Vec<Entry>,
    /// Per position in [`TYPES`].
    pub counts: Vec<TypeCount>,
    /// Lines of types not replayed, by `resourceType`.
    pub skipped_types: BTreeMap<String, u64>,
    /// Files not read because their name says they hold a type not selected.
    pub skipped_files: Vec<String>,
    /// Lines skipped as bad ([`BadLinePolicy::Skip`]) and the first few.
    pub bad_lines: u64,
    pub bad_examples: Vec<BadLine>,
    /// Bytes read.
    pub bytes: u64,
}

/// Bad lines reported by name in the summary.
pub const BAD_EXAMPLES: usize = 10;

/// The ndjson files of `inputs` (files, or folders of `*.ndjson`; a
/// `synthea.sh generate` output folder is read from its `fhir/`), ordered
/// by the type their name starts with, then name.
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, IndexError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let dir = if !has_ndjson(input)? && input.join("fhir").is_dir() {
                input.join("fhir")
            } else {
                input.clone()
            };
            for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let p = e.map_err(io(&dir))?.path();
                if p.extension().is_some_and(|x| x == "ndjson") && p.is_file() {
                    files.push(p);
                }
            }
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(IndexError::Input(format!(
                "{}: no such file or folder",
                input.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(IndexError::Input(
            "no .ndjson files in the given paths".into(),
        ));
    }
    files.sort_by_key(|p| (name_type(p).unwrap_or(usize::MAX), p.clone()));
    files.dedup();
    if files.len() > u16::MAX as usize {
        return Err(IndexError::Input(format!(
            "{} files; at most {} per replay",
            files.len(),
            u16::MAX
        )));
    }
    Ok(files)
}

fn has_ndjson(dir: &Path) -> Result<bool, IndexError> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        if e.map_err(io(dir))?
            .path()
            .extension()
            .is_some_and(|x| x == "ndjson")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The type a bulk-export file name announces (`Observation.ndjson`,
/// `Observation.000.ndjson`), if it is one of [`TYPES`].
fn name_type(p: &Path) -> Option<usize> {
    let name = p.file_name()?.to_str()?;
    resource::type_index(name.split('.').next()?)
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Reads every file once and builds the plan. `selected[k]`: whether
/// `TYPES[k]` is replayed.
/// Lines longer than `max_record_bytes` are bad lines.
pub fn build(
    files: Vec<PathBuf>,
    selected: &[bool],
    span: Span,
    policy: BadLinePolicy,
    max_record_bytes: usize,
) -> Result<Index, IndexError> {
    let mut index = Index {
        counts: vec![TypeCount::default(); TYPES.len()],
        ..Default::default()
    };
    let mut ids: HashMap<String, u32> = HashMap::new();
    let is_selected = |k: usize| selected.get(k).copied().unwrap_or(false);
    let mut kept_files = Vec::new();
    for path in files {
        if name_type(&path).is_some_and(|k| !is_selected(k)) {
            index.skipped_files.push(display_name(&path));
            continue;
        }
        let file_no = kept_files.len() as u16;
        let name = display_name(&path);
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&path).map_err(io(&path))?);
        let mut buf = Vec::with_capacity(64 << 10);
        let mut offset = 0u64;
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io(&path))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = offset;
            offset += n as u64;
            let line = trim_line(&buf);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let bad = |reason: LineError| BadLine {
                file: name.clone(),
                line: line_no,
                reason,
            };
            let probed = if line.len() > max_record_bytes {
                // Its type and key are not read: a skipped line of an
                // unselected type may be large, a replayed one may not.
                match resource::probe(line, &is_selected) {
                    Ok(Line::Skipped(t)) => Ok(Line::Skipped(t)),
                    Ok(Line::Resource(_)) | Err(_) => Err(LineError::TooLarge {
                        bytes: line.len(),
                        max: max_record_bytes,
                    }),
                }
            } else {
                resource::probe(line, &is_selected)
            };
            let probed = match probed {
                Ok(Line::Resource(p)) => p,
                Ok(Line::Skipped(t)) => {
                    *index.skipped_types.entry(t).or_default() += 1;
                    continue;
                }
                Err(reason) => match policy {
                    BadLinePolicy::Stop => return Err(IndexError::Bad(bad(reason))),
                    BadLinePolicy::Skip => {
                        index.bad_lines += 1;
                        if index.bad_examples.len() < BAD_EXAMPLES {
                            index.bad_examples.push(bad(reason));
                        }
                        continue;
                    }
                },
            };
            let len = u32::try_from(line.len()).map_err(|_| {
                IndexError::Input(format!("{name}:{line_no}: a line of over 4 GiB"))
            })?;
            let count = &mut index.counts[probed.kind];
            let time_ms = match probed.time_ms {
                Some(t) if span.contains(t) => t,
                Some(_) => {
                    count.outside_span += 1;
                    continue;
                }
                None => i64::MIN,
            };
            count.in_span += 1;
            let patient = match ids.get(&probed.patient) {
                Some(&p) => p,
                None => {
                    let p = u32::try_from(index.patients.len())
                        .map_err(|_| IndexError::Input("over 4 billion patients".into()))?;
                    ids.insert(probed.patient.clone(), p);
                    index.patients.push(probed.patient);
                    p
                }
            };
            let entry = Entry {
                time_ms,
                offset: start,
                len,
                patient,
                file: file_no,
                kind: probed.kind as u8,
            };
            if probed.time_ms.is_some() {
                index.events.push(entry);
            } else {
                index.demographics.push(entry);
            }
        }
        index.bytes += offset;
        kept_files.push(path);
    }
    index.files = kept_files;
    index
        .events
        .sort_unstable_by_key(|e| (e.time_ms, e.kind, e.file, e.offset));
    index.events.shrink_to_fit();
    Ok(index)
}

/// The line without its `\n` / `\r\n`.
pub fn trim_line(buf: &[u8]) -> &[u8] {
    let buf = buf.strip_suffix(b"\n").unwrap_or(buf);
    buf.strip_suffix(b"\r").unwrap_or(buf)
}

impl Index {
    /// Event time of the first and last event in replay order.
    pub fn first_last(&self) -> Option<(i64, i64)> {
        Some((self.events.first()?.time_ms, self.events.last()?.time_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        p
    }

    fn obs(patient: &str, at: &str) -> String {
        format!(
            r#"{{"resourceType":"Observation","subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"{at}"}}"#
        )
    }

    fn enc(patient: &str, at: &str) -> String {
        format!(
            r#"{{"resourceType":"Encounter","subject":{{"reference":"Patient/{patient}"}},"period":{{"start":"{at}"}}}}"#
        )
    }

    const MAX: usize = 1_000_000;

    #[test]
    fn a_line_over_the_record_limit_is_a_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let small = obs("a", "2020-01-01T10:00:00Z");
        let big = obs(&"x".repeat(200), "2020-01-01T10:00:00Z");
        write(d.path(), "Observation.ndjson", &[&small, &big]);
        let files = || collect_files(&[d.path().to_path_buf()]).unwrap();
        let limit = small.len() + 10;
        let err = build(files(), &all(), Span::default(), BadLinePolicy::Stop, limit)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "Observation.ndjson:2: {} bytes, over the {limit}-byte record limit",
                big.len()
            )),
            "{err}"
        );
        let ix = build(files(), &all(), Span::default(), BadLinePolicy::Skip, limit).unwrap();
        assert_eq!((ix.events.len(), ix.bad_lines), (1, 1));
    }

    fn all() -> Vec<bool> {
        vec![true; TYPES.len()]
    }

    fn kind(name: &str) -> u8 {
        resource::type_index(name).unwrap() as u8
    }

    /// Reads an entry's line back the way the publisher does.
    fn line_of(index: &Index, e: &Entry) -> String {
        use std::os::unix::fs::FileExt;
        let f = File::open(&index.files[e.file as usize]).unwrap();
        let mut buf = vec![0; e.len as usize];
        f.read_exact_at(&mut buf, e.offset).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn events_are_ordered_by_time_across_files_and_ties_by_type() {
        let d = tempfile::tempdir().unwrap();
        // Each file holds one patient after another, as Synthea writes them.
        write(
            d.path(),
            "Observation.ndjson",
            &[
                &obs("a", "2020-01-01T10:00:00Z"),
                &obs("a", "2020-03-01T10:00:00Z"),
                &obs("b", "2020-02-01T10:00:00Z"),
                &obs("b", "2020-01-01T09:00:00Z"),
            ],
        );
        write(
            d.path(),
            "Encounter.ndjson",
            &[
                &enc("a", "2020-01-01T10:00:00Z"),
                &enc("b", "2020-02-01T09:30:00+00:00"),
            ],
        );
        write(
            d.path(),
            "Patient.ndjson",
            &[
                r#"{"resourceType":"Patient","id":"b"}"#,
                r#"{"resourceType":"Patient","id":"a"}"#,
            ],
        );
        let files = collect_files(&[d.path().to_path_buf()]).unwrap();
        let ix = build(files, &all(), Span::default(), BadLinePolicy::Stop, MAX).unwrap();
        let order: Vec<(i64, u8, &str)> = ix
            .events
            .iter()
            .map(|e| (e.time_ms, e.kind, ix.patients[e.patient as usize].as_str()))
            .collect();
        let t = |s: &str| resource::fhir_time_ms(s).unwrap();
        let (e, o) = (kind("Encounter"), kind("Observation"));
        assert_eq!(
            order,
            vec![
                (t("2020-01-01T09:00:00Z"), o, "b"),
                // Same instant: the Encounter first.
                (t("2020-01-01T10:00:00Z"), e, "a"),
                (t("2020-01-01T10:00:00Z"), o, "a"),
                (t("2020-02-01T09:30:00Z"), e, "b"),
                (t("2020-02-01T10:00:00Z"), o, "b"),
                (t("2020-03-01T10:00:00Z"), o, "a"),
            ]
        );
        // Patients in file order, keyed by their own id.
        let demo: Vec<&str> = ix
            .demographics
            .iter()
            .map(|e| ix.patients[e.patient as usize].as_str())
            .collect();
        assert_eq!(demo, ["b", "a"]);
        // Byte ranges give the line back.
        assert_eq!(
            line_of(&ix, &ix.events[0]),
            obs("b", "2020-01-01T09:00:00Z")
        );
        assert_eq!(
            line_of(&ix, &ix.demographics[1]),
            r#"{"resourceType":"Patient","id":"a"}"#
        );
        assert_eq!(ix.counts[o as usize].in_span, 4);
    }

    #[test]
    fn the_span_is_half_open_and_patients_are_always_in_it() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Observation.ndjson",
            &[
                &obs("a", "2019-12-31T23:59:59Z"),
                &obs("a", "2020-01-01T00:00:00Z"),
                &obs("a", "2020-06-01T00:00:00Z"),
                &obs("a", "2021-01-01T00:00:00Z"),
            ],
        );
        write(
            d.path(),
            "Patient.ndjson",
            &[r#"{"resourceType":"Patient","id":"a"}"#],
        );
        let span = Span {
            since_ms: resource::fhir_time_ms("2020"),
            until_ms: resource::fhir_time_ms("2021"),
        };
        let ix = build(
            collect_files(&[d.path().to_path_buf()]).unwrap(),
            &all(),
            span,
            BadLinePolicy::Stop,
            MAX,
        )
        .unwrap();
        let o = kind("Observation") as usize;
        assert_eq!(
            ix.counts[o],
            TypeCount {
                in_span: 2,
                outside_span: 2
            }
        );
        assert_eq!(ix.events.len(), 2);
        assert_eq!(ix.demographics.len(), 1);
        assert_eq!(
            ix.first_last(),
            Some((
                resource::fhir_time_ms("2020-01-01").unwrap(),
                resource::fhir_time_ms("2020-06-01").unwrap()
            ))
        );
    }

    #[test]
    fn a_bad_line_stops_with_file_and_line_or_is_skipped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Observation.ndjson",
            &[
                &obs("a", "2020-01-01T10:00:00Z"),
                "",
                r#"{"resourceType":"Observation","subject":{"reference":"Patient/a"},"effectiveDateTime":"Jan 2nd"}"#,
                r#"{"resourceType":"Observation","name":"Alice Smith""#,
            ],
        );
        let files = || collect_files(&[d.path().to_path_buf()]).unwrap();
        let err = build(files(), &all(), Span::default(), BadLinePolicy::Stop, MAX).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("Observation.ndjson:3: effectiveDateTime: not a FHIR dateTime"),
            "{text}"
        );
        let ix = build(files(), &all(), Span::default(), BadLinePolicy::Skip, MAX).unwrap();
        assert_eq!(ix.bad_lines, 2);
        assert_eq!(ix.events.len(), 1);
        let reasons: Vec<String> = ix.bad_examples.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons[0],
            "Observation.ndjson:3: effectiveDateTime: not a FHIR dateTime or instant"
        );
        assert!(
            reasons[1].starts_with("Observation.ndjson:4: not a JSON object"),
            "{reasons:?}"
        );
        // No content of the line in any reason.
        assert!(
            !reasons
                .iter()
                .any(|r| r.contains("Alice") || r.contains("Jan 2nd"))
        );
    }

    #[test]
    fn unselected_types_skip_their_files_and_unknown_types_are_counted() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Observation.ndjson",
            &[&obs("a", "2020-01-01T10:00:00Z")],
        );
        write(d.path(), "Encounter.ndjson", &["not even json"]);
        write(
            d.path(),
            "Organization.ndjson",
            &[r#"{"resourceType":"Organization","id":"o"}"#],
        );
        let mut selected = vec![false; TYPES.len()];
        selected[kind("Observation") as usize] = true;
        let ix = build(
            collect_files(&[d.path().to_path_buf()]).unwrap(),
            &selected,
            Span::default(),
            BadLinePolicy::Stop,
            MAX,
        )
        .unwrap();
        assert_eq!(ix.skipped_files, ["Encounter.ndjson"]);
        assert_eq!(ix.skipped_types.get("Organization"), Some(&1));
        assert_eq!(ix.events.len(), 1);
    }

    #[test]
    fn a_generate_folder_is_read_from_its_fhir_subfolder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("fhir")).unwrap();
        write(&d.path().join("fhir"), "Observation.ndjson", &[]);
        write(&d.path().join("fhir"), "Patient.ndjson", &[]);
        let files = collect_files(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<String> = files.iter().map(|p| display_name(p)).collect();
        // Ordered by type (Patient first), not by name.
        assert_eq!(names, ["Patient.ndjson", "Observation.ndjson"]);
        assert!(collect_files(&[d.path().join("nope")]).is_err());
    }
}
