//! Kill points for the restore tests: the process ends as `kill -9` ends it
//! (SIGKILL to itself: no destructor, no flush, no transaction abort) the
//! n-th time it reaches a named point, so a test can crash the engine at
//! the moments a random `kill -9` rarely hits: mid-fit, mid-gate, between
//! `send_offsets_to_transaction` and the commit, right after the commit.
//!
//! `RESYNTH_KILL_AT=<point>[:<n>]` (n counts from 1, default 1). Unset, a
//! point costs one atomic load. A value that names no point, or a bad `n`,
//! is reported once on stderr and kills nothing: a typo in a test must not
//! pass as "the engine survived".
//!
//! `RESYNTH_KILL_SIGNAL=SIGSTOP` freezes the process there instead, as a
//! long GC pause, a frozen VM or a laptop lid does: librdkafka's heartbeats
//! stop with it, so a test that holds it past `session.timeout.ms` (then
//! sends SIGCONT) makes the engine lose its group membership mid-window.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every point the engine has, in the order a window reaches them.
pub const POINTS: &[&str] = &[
    // The model is fitted and its file saved, before the gate.
    "fitted",
    // One gate attempt is evaluated, before the next or the routing.
    "gated",
    // Offsets and records are in the transaction, not yet committed.
    "before_commit",
    // The transaction committed; nothing after it is written yet.
    "after_commit",
    // The first of the window's audit entries after the commit is written.
    "mid_audit",
    // A held release's own transaction committed, its entry not written.
    "released",
];

struct Armed {
    point: String,
    at: u64,
    seen: AtomicU64,
    signal: libc::c_int,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let signal = std::env::var("RESYNTH_KILL_SIGNAL").ok();
            parse(&std::env::var("RESYNTH_KILL_AT").ok()?, signal.as_deref())
        })
        .as_ref()
}

fn parse(spec: &str, signal: Option<&str>) -> Option<Armed> {
    let (point, at) = match spec.split_once(':') {
        Some((p, n)) => (p, n.parse::<u64>().ok().filter(|&n| n > 0)),
        None => (spec, Some(1)),
    };
    let signal = match signal {
        None | Some("SIGKILL") => Some(libc::SIGKILL),
        Some("SIGSTOP") => Some(libc::SIGSTOP),
        Some(_) => None,
    };
    match (at, signal) {
        (Some(at), Some(signal)) if POINTS.contains(&point) => Some(Armed {
            point: point.to_string(),
            at,
            seen: AtomicU64::new(0),
            signal,
        }),
        _ => {
            eprintln!(
                "RESYNTH_KILL_AT={spec:?} RESYNTH_KILL_SIGNAL={signal:?}: expected <point>[:<n>], \
                 n >= 1, point one of {}, signal SIGKILL (default) or SIGSTOP; no kill point armed",
                POINTS.join(", ")
            );
            None
        }
    }
}

/// Ends (or freezes) the process here if this is the armed point's n-th
/// arrival.
pub fn reached(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "{point} is not listed");
    let Some(a) = armed() else { return };
    if a.point == point && a.seen.fetch_add(1, Ordering::Relaxed) + 1 == a.at {
        // SAFETY: kill(2) on our own pid with SIGKILL or SIGSTOP.
        unsafe {
            libc::kill(libc::getpid(), a.signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_point_and_an_arrival() {
        let a = parse("before_commit:3", None).unwrap();
        assert_eq!((a.point.as_str(), a.at), ("before_commit", 3));
        assert_eq!(a.signal, libc::SIGKILL);
        assert_eq!(parse("fitted", None).unwrap().at, 1);
        assert!(parse("fited", None).is_none(), "a typo arms nothing");
        assert!(parse("gated:0", None).is_none());
        assert!(parse("gated:x", None).is_none());
        assert_eq!(
            parse("gated", Some("SIGSTOP")).unwrap().signal,
            libc::SIGSTOP
        );
        assert!(
            parse("gated", Some("STOP")).is_none(),
            "nor does a bad signal"
        );
    }
}
