//! Privacy-budget ledger: what every differentially private fit has spent.
//!
//! Each DP fit on a source population spends part of a budget that does not
//! come back: refitting on the same patients every window adds up. The
//! ledger is the durable record of that spending, one append-only JSONL file
//! per topology and source population (the caller chooses the path), and the
//! place where a cap is enforced *before* a model's output can be published:
//! the engine books a fit with [`Ledger::try_book`], and only a successful
//! booking lets the batch go on to the gates.
//!
//! * **Accounting** is basic sequential composition: the total is the sum of
//!   the entries' ε and the sum of their δ (Dwork & Roth, *The Algorithmic
//!   Foundations of Differential Privacy*, Thm 3.16). It is loose for many
//!   small releases but needs no assumption about the mechanisms.
//! * **zCDP** where the mechanisms allow it: a pure ε-DP fit (δ = 0, as every
//!   PrivBayes fit is) is also ρ = ε²/2 zero-concentrated DP, and ρ adds up
//!   (Bun & Steinke 2016, Prop. 1.4 and Lemma 2.3). At a target δ > 0 the sum
//!   gives (ρ + 2√(ρ ln(1/δ)), δ)-DP (their Prop. 1.3). Both totals are valid
//!   bounds, so with a δ configured the smaller one is the spent budget: for
//!   many small fits zCDP is much tighter (100 fits of ε = 0.1 at δ = 10⁻⁶
//!   total 5.75 instead of 10); for few large fits the plain sum is. Entries
//!   keep their own (ε, δ), so the accounting can change without
//!   reinterpreting old lines.
//! * **Only DP fits are booked.** Non-DP generators (the copula) spend no ε
//!   and give no guarantee (`epsilon: None` in the model record); an entry
//!   must have ε > 0, so they cannot be booked by mistake.
//! * **Durability**: a booking is one `write` of one line to a file opened in
//!   append mode, then `fsync`, under an exclusive file lock; the file is
//!   re-read under that lock first, so two processes sharing a ledger see
//!   each other's bookings and cannot both take the last of the budget. A
//!   refused booking writes nothing.
//! * **No silent loss**: a line that does not parse, or is not
//!   newline-terminated (a torn write), is an error naming the file and
//!   line. Skipping it would under-count spent budget, which is the one
//!   failure a ledger must never have; an operator repairs the file.
//! * All entries of one file belong to one topology; a booking for another
//!   topology is refused, as it signals two topologies sharing a path.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Relative slack allowed when comparing a sum of floats with a cap, so that
/// e.g. ten bookings of 0.1 fit a cap of 1.0. Never more than this.
const CAP_TOLERANCE: f64 = 1e-9;

/// How an entry composes with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accounting {
    /// ε and δ add up (sequential composition).
    BasicComposition,
}

/// One booked DP fit: one line of the ledger file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// When the fit was booked (Unix ms; supplied by the caller).
    pub at_ms: i64,
    pub topology: String,
    pub model_version: u64,
    /// Content hash of the model, as in the `resynth.model_sha256` header.
    pub model_sha256: String,
    /// The DP mechanism, e.g. `privbayes_exponential_laplace`.
    pub mechanism: String,
    /// ε spent by this fit; finite and > 0.
    pub epsilon: f64,
    /// δ spent by this fit; in [0, 1).
    pub delta: f64,
    pub accounting: Accounting,
}

/// Budget spent so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    /// Sum of ε (basic composition).
    pub epsilon: f64,
    /// Sum of δ (basic composition).
    pub delta: f64,
    /// Number of booked entries.
    pub entries: usize,
    /// Sum of ρ = ε²/2 when every entry is pure ε-DP (δ = 0); `None` otherwise.
    pub rho: Option<f64>,
}

impl Totals {
    /// ε of the zCDP total at `delta` (ρ + 2√(ρ ln(1/δ))), when it applies.
    pub fn zcdp_epsilon(&self, delta: f64) -> Option<f64> {
        let rho = self.rho?;
        (delta > 0.0 && delta < 1.0).then(|| rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt())
    }

    /// The tightest valid ε: the plain sum, or the zCDP total at `delta` when
    /// a δ is given and every entry is pure.
    pub fn epsilon_bound(&self, delta: Option<f64>) -> f64 {
        delta
            .and_then(|d| self.zcdp_epsilon(d))
            .map_or(self.epsilon, |z| z.min(self.epsilon))
    }
}

/// Why the ledger could not be read or a fit could not be booked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("privacy ledger {path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "privacy ledger {path} line {line}: {reason} (the ledger is not read past a bad line; repair it)"
    )]
    CorruptLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("privacy ledger entry refused: {0}")]
    InvalidEntry(String),
    #[error("privacy ledger cap: {0}")]
    InvalidCap(String),
    #[error(
        "privacy ledger {path} belongs to topology `{expected}`, refusing an entry for `{found}`"
    )]
    TopologyMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "privacy budget exceeded: booking {budget} = {requested} on top of {spent} already spent would pass the cap of {cap}"
    )]
    CapExceeded {
        /// `"epsilon"` or `"delta"`.
        budget: &'static str,
        requested: f64,
        spent: f64,
        cap: f64,
    },
}

/// An open ledger file with its entries in memory.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    cap_epsilon: Option<f64>,
    cap_delta: Option<f64>,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// Opens (creating if absent) the ledger at `path` and reads every entry
    /// back. Caps bound future bookings only: a ledger already past a lowered
    /// cap still opens, and refuses every further booking.
    pub fn open(
        path: impl AsRef<Path>,
        cap_epsilon: Option<f64>,
        cap_delta: Option<f64>,
    ) -> Result<Ledger, LedgerError> {
        for (name, cap) in [("epsilon", cap_epsilon), ("delta", cap_delta)] {
            if cap.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
                return Err(LedgerError::InvalidCap(format!(
                    "{name} cap must be finite and >= 0, got {cap:?}"
                )));
            }
        }
        let path = path.as_ref().to_path_buf();
        let mut ledger = Ledger {
            path,
            cap_epsilon,
            cap_delta,
            entries: Vec::new(),
        };
        let mut file = ledger.open_file()?;
        file.lock_shared()
            .map_err(|source| ledger.io("lock", source))?;
        ledger.entries = ledger.read_all(&mut file)?;
        Ok(ledger)
    }

    /// ε and δ spent so far, by basic composition (and ρ where it applies).
    pub fn total(&self) -> Totals {
        totals(&self.entries)
    }

    /// The ε spent so far as the cap sees it: the tighter of basic composition
    /// and zCDP at the cap's δ (module docs).
    pub fn spent_epsilon(&self) -> f64 {
        self.total().epsilon_bound(self.zcdp_delta())
    }

    /// The ε the cap would see after one more pure ε-DP fit of `epsilon`, so a
    /// refit that cannot be booked is refused before any work is done.
    pub fn epsilon_after(&self, epsilon: f64) -> f64 {
        let mut t = self.total();
        t.epsilon += epsilon;
        t.rho = t.rho.map(|r| r + epsilon * epsilon / 2.0);
        t.epsilon_bound(self.zcdp_delta())
    }

    /// The δ at which zCDP totals are stated: the δ cap, when it is positive.
    fn zcdp_delta(&self) -> Option<f64> {
        self.cap_delta.filter(|d| *d > 0.0 && *d < 1.0)
    }

    /// Every booked entry, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// The file this ledger reads and appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Books `entry` unless it would take the total past a cap; returns the
    /// new totals. A refusal ([`LedgerError::CapExceeded`] or any other
    /// error) writes nothing. Bookings by other processes since `open` are
    /// read back first, under an exclusive lock, and count toward the cap.
    pub fn try_book(&mut self, entry: LedgerEntry) -> Result<Totals, LedgerError> {
        check_entry(&entry).map_err(LedgerError::InvalidEntry)?;
        let mut file = self.open_file()?;
        file.lock().map_err(|source| self.io("lock", source))?;
        self.entries = self.read_all(&mut file)?;
        if let Some(first) = self.entries.first()
            && first.topology != entry.topology
        {
            return Err(LedgerError::TopologyMismatch {
                path: self.path.clone(),
                expected: first.topology.clone(),
                found: entry.topology,
            });
        }
        let spent = self.total();
        let mut after = self.entries.clone();
        after.push(entry.clone());
        let after = totals(&after);
        let target = self.zcdp_delta();
        // With zCDP at δ the guarantee is (ε_zcdp, δ): the δ cap is then met
        // by construction, and only the ε bound is checked.
        let zcdp_used = target.is_some_and(|d| after.zcdp_epsilon(d).is_some());
        for (budget, requested, spent, total, cap) in [
            (
                "epsilon",
                entry.epsilon,
                spent.epsilon_bound(target),
                after.epsilon_bound(target),
                self.cap_epsilon,
            ),
            (
                "delta",
                entry.delta,
                spent.delta,
                after.delta,
                self.cap_delta.filter(|_| !zcdp_used),
            ),
        ] {
            if let Some(cap) = cap
                && total > cap * (1.0 + CAP_TOLERANCE)
            {
                return Err(LedgerError::CapExceeded {
                    budget,
                    requested,
                    spent,
                    cap,
                });
            }
        }
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| LedgerError::InvalidEntry(format!("cannot serialize: {e}")))?;
        line.push('\n');
        file.write_all(line.as_bytes())
            .map_err(|source| self.io("append", source))?;
        file.sync_all().map_err(|source| self.io("fsync", source))?;
        self.entries.push(entry);
        Ok(self.total())
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// Opens the file for reading and appending, creating it (and making its
    /// directory entry durable) when absent.
    fn open_file(&self) -> Result<File, LedgerError> {
        let existed = self.path.exists();
        let file = crate::owner_only::open(&self.path, |o| {
            o.read(true).append(true).create(true);
        })
        .map_err(|source| self.io("open", source))?;
        if !existed {
            file.sync_all().map_err(|source| self.io("fsync", source))?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Durable creation needs the directory entry synced too;
                // platforms that cannot open a directory skip this.
                if let Ok(dir) = File::open(dir) {
                    dir.sync_all()
                        .map_err(|source| self.io("fsync directory", source))?;
                }
            }
        }
        Ok(file)
    }

    fn read_all(&self, file: &mut File) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .map_err(|source| self.io("read", source))?;
        let corrupt = |line: usize, reason: String| LedgerError::CorruptLine {
            path: self.path.clone(),
            line,
            reason,
        };
        let mut entries: Vec<LedgerEntry> = Vec::new();
        let mut rest = text.as_str();
        let mut number = 0;
        while !rest.is_empty() {
            number += 1;
            let Some(end) = rest.find('\n') else {
                return Err(corrupt(
                    number,
                    "not newline-terminated (a torn write?)".into(),
                ));
            };
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let entry: LedgerEntry = serde_json::from_str(line)
                .map_err(|e| corrupt(number, format!("not a ledger entry: {e}")))?;
            check_entry(&entry).map_err(|reason| corrupt(number, reason))?;
            if let Some(first) = entries.first()
                && first.topology != entry.topology
            {
                return Err(corrupt(
                    number,
                    format!(
                        "topology `{}` differs from `{}` on line 1",
                        entry.topology, first.topology
                    ),
                ));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

fn totals(entries: &[LedgerEntry]) -> Totals {
    Totals {
        epsilon: entries.iter().map(|e| e.epsilon).sum(),
        delta: entries.iter().map(|e| e.delta).sum(),
        entries: entries.len(),
        rho: entries
            .iter()
            .all(|e| e.delta == 0.0)
            .then(|| entries.iter().map(|e| e.epsilon * e.epsilon / 2.0).sum()),
    }
}

fn check_entry(entry: &LedgerEntry) -> Result<(), String> {
    if !(entry.epsilon.is_finite() && entry.epsilon > 0.0) {
        return Err(format!(
            "epsilon must be finite and > 0 (only DP fits are booked), got {}",
            entry.epsilon
        ));
    }
    if !(entry.delta.is_finite() && (0.0..1.0).contains(&entry.delta)) {
        return Err(format!("delta must be in [0, 1), got {}", entry.delta));
    }
    if entry.topology.is_empty() || entry.mechanism.is_empty() || entry.model_sha256.is_empty() {
        return Err("topology, mechanism and model_sha256 must not be empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epsilon: f64) -> LedgerEntry {
        LedgerEntry {
            at_ms: 1_700_000_000_000,
            topology: "ehr-labs".into(),
            model_version: 1,
            model_sha256: "ab".repeat(32),
            mechanism: "privbayes_exponential_laplace".into(),
            epsilon,
            delta: 0.0,
            accounting: Accounting::BasicComposition,
        }
    }

    #[test]
    fn totals_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.jsonl");
        let mut ledger = Ledger::open(&path, Some(3.0), None).unwrap();
        assert_eq!(ledger.total().entries, 0);
        ledger.try_book(entry(1.0)).unwrap();
        let t = ledger.try_book(entry(0.5)).unwrap();
        assert_eq!((t.epsilon, t.delta, t.entries), (1.5, 0.0, 2));
        drop(ledger);
        let reopened = Ledger::open(&path, Some(3.0), None).unwrap();
        assert_eq!(reopened.total(), t);
        assert_eq!(reopened.entries()[1], entry(0.5));
    }

    #[test]
    fn cap_refusal_leaves_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.jsonl");
        let mut ledger = Ledger::open(&path, Some(1.0), Some(0.0)).unwrap();
        ledger.try_book(entry(0.75)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = ledger.try_book(entry(0.5)).unwrap_err();
        match err {
            LedgerError::CapExceeded {
                budget,
                requested,
                spent,
                cap,
            } => assert_eq!((budget, requested, spent, cap), ("epsilon", 0.5, 0.75, 1.0)),
            other => panic!("{other}"),
        }
        let mut with_delta = entry(0.1);
        with_delta.delta = 1e-6;
        assert!(matches!(
            ledger.try_book(with_delta),
            Err(LedgerError::CapExceeded {
                budget: "delta",
                ..
            })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(ledger.total().entries, 1);
        // Exactly reaching the cap is allowed, float rounding included.
        let mut ledger = Ledger::open(&path, Some(0.75 + 0.1 * 10.0), None).unwrap();
        for _ in 0..10 {
            ledger.try_book(entry(0.1)).unwrap();
        }
        assert!(ledger.try_book(entry(1e-6)).is_err());
    }

    #[test]
    fn bookings_by_another_handle_count_toward_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.jsonl");
        let mut a = Ledger::open(&path, Some(1.0), None).unwrap();
        let mut b = Ledger::open(&path, Some(1.0), None).unwrap();
        a.try_book(entry(0.6)).unwrap();
        assert!(matches!(
            b.try_book(entry(0.6)),
            Err(LedgerError::CapExceeded { spent, .. }) if spent == 0.6
        ));
        assert_eq!(b.total().epsilon, 0.6);
    }

    #[test]
    fn corrupt_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.jsonl");
        let mut ledger = Ledger::open(&path, None, None).unwrap();
        ledger.try_book(entry(1.0)).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"at_ms\": 1, oops\n");
        text.push_str(&serde_json::to_string(&entry(1.0)).unwrap());
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        let err = Ledger::open(&path, None, None).unwrap_err();
        assert!(
            matches!(err, LedgerError::CorruptLine { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 2"), "{err}");

        // A torn final write is not skipped either.
        let good = serde_json::to_string(&entry(1.0)).unwrap();
        std::fs::write(&path, format!("{good}\n{}", &good[..20])).unwrap();
        let err = Ledger::open(&path, None, None).unwrap_err();
        assert!(
            matches!(err, LedgerError::CorruptLine { line: 2, .. }),
            "{err}"
        );

        // Values that parse but cannot be a DP booking are corrupt too.
        std::fs::write(&path, format!("{}\n", good.replace("1.0", "-1.0"))).unwrap();
        assert!(matches!(
            Ledger::open(&path, None, None),
            Err(LedgerError::CorruptLine { line: 1, .. })
        ));
    }

    #[test]
    fn non_dp_and_foreign_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.jsonl");
        let mut ledger = Ledger::open(&path, None, None).unwrap();
        assert!(matches!(
            ledger.try_book(entry(0.0)),
            Err(LedgerError::InvalidEntry(_))
        ));
        assert!(matches!(
            ledger.try_book(entry(f64::NAN)),
            Err(LedgerError::InvalidEntry(_))
        ));
        ledger.try_book(entry(1.0)).unwrap();
        let mut other = entry(1.0);
        other.topology = "another".into();
        assert!(matches!(
            ledger.try_book(other),
            Err(LedgerError::TopologyMismatch { .. })
        ));
        assert!(matches!(
            Ledger::open(&path, Some(f64::NAN), None),
            Err(LedgerError::InvalidCap(_))
        ));
        assert_eq!(Ledger::open(&path, None, None).unwrap().total().entries, 1);
    }

    /// Bun & Steinke (2016): pure ε-DP is ε²/2-zCDP, ρ adds, and ρ-zCDP is
    /// (ρ + 2√(ρ ln 1/δ), δ)-DP. 100 fits of ε = 0.1: ρ = 0.5, so at δ = 10⁻⁶
    /// ε = 0.5 + 2√(0.5 · ln 10⁶) = 5.7566, where the plain sum is 10.
    #[test]
    fn zcdp_admits_many_small_fits_that_basic_composition_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let zcdp_path = dir.path().join("zcdp.jsonl");
        let mut zcdp = Ledger::open(&zcdp_path, Some(6.0), Some(1e-6)).unwrap();
        let mut basic = Ledger::open(dir.path().join("basic.jsonl"), Some(6.0), None).unwrap();
        let mut basic_booked = 0;
        for _ in 0..100 {
            zcdp.try_book(entry(0.1)).unwrap();
            if basic.try_book(entry(0.1)).is_ok() {
                basic_booked += 1;
            }
        }
        assert_eq!(basic_booked, 60);
        let total = zcdp.total();
        assert!((total.epsilon - 10.0).abs() < 1e-9);
        assert!((total.rho.unwrap() - 0.5).abs() < 1e-12);
        let expected = 0.5 + 2.0 * (0.5 * 1e6f64.ln()).sqrt();
        assert!(
            (zcdp.spent_epsilon() - expected).abs() < 1e-9,
            "{}",
            zcdp.spent_epsilon()
        );
        assert!((expected - 5.7566).abs() < 1e-4);
        // Survives a reopen, and the cap still binds under zCDP.
        let mut reopened = Ledger::open(&zcdp_path, Some(6.0), Some(1e-6)).unwrap();
        assert!((reopened.spent_epsilon() - expected).abs() < 1e-9);
        assert!(matches!(
            reopened.try_book(entry(1.0)),
            Err(LedgerError::CapExceeded {
                budget: "epsilon",
                ..
            })
        ));
    }

    #[test]
    fn few_large_fits_keep_the_plain_sum_and_approximate_entries_disable_zcdp() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path().join("l.jsonl"), Some(10.0), Some(1e-6)).unwrap();
        ledger.try_book(entry(1.0)).unwrap();
        ledger.try_book(entry(1.0)).unwrap();
        // zCDP would say 1 + 2√(ln 10⁶) ≈ 8.43; the plain sum 2 is tighter.
        assert!((ledger.spent_epsilon() - 2.0).abs() < 1e-12);
        let mut approx = entry(0.5);
        approx.delta = 1e-9;
        ledger.try_book(approx).unwrap();
        assert_eq!(ledger.total().rho, None);
        assert!((ledger.spent_epsilon() - 2.5).abs() < 1e-12);
    }
}
