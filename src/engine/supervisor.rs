//! Riding through outages (issue 12, defect 6): a run that ends on a Kafka
//! error the next start recovers from is started again, in this process,
//! with no operator action.
//!
//! Why a restart and not a retry inside the loop: everything a run keeps
//! between windows is either committed with the window's transaction
//! (offsets, engine state, the commit journal) or rebuilt from it on start,
//! and the restore and kill tests hold a start after a crash to "changes
//! nothing". An aborted transaction, a producer fenced because its
//! transaction timed out during a broker pause, or a consumer that lost its
//! group membership while the broker (or this process) was frozen all leave
//! the client objects in states that are simplest and safest to throw away:
//! a new start aborts, rejoins and reprocesses from the committed offsets.
//!
//! What is never retried: configuration, schema, SQL, model, gate and audit
//! errors (a restart would fail the same way), the first start's access
//! check (a wrong password or a missing ACL must exit at once, naming it),
//! and a stop request. A restart that keeps failing without one committed
//! transaction in between gives up after [`MAX_FRUITLESS_RESTARTS`], so a
//! second instance with our transactional id, fencing us on every start,
//! ends in an exit rather than a fencing duel.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{EngineError, Progress, RunOptions, RunSummary, run};
use crate::sink::SinkError;
use crate::topology::Topology;

/// Restarts in a row without a committed transaction before the error is
/// returned (with the backoff below, about ten minutes of outage).
pub const MAX_FRUITLESS_RESTARTS: u32 = 25;
/// First wait before a restart; doubled per fruitless restart.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two restarts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a backoff wait looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Why a run's error is worth a restart: the `reason` label of
/// `resynth_engine_restarts_total`, or `None` for an error to return.
/// `restarting` is true for every start after the first.
pub fn recoverable(error: &EngineError, restarting: bool) -> Option<&'static str> {
    match error {
        EngineError::Sink(e) => match **e {
            SinkError::Aborted { .. } => Some("transaction_aborted"),
            SinkError::Fatal(_) => Some("producer_fenced"),
            // The broker may still be electing or fencing after an outage.
            SinkError::Init(_) if restarting => Some("init_transactions"),
            SinkError::Init(_) | SinkError::Create(_) => None,
        },
        EngineError::Consumer(_) => Some("consumer"),
        // After an outage the access check can fail on an unreachable
        // broker; on the first start it is the answer the operator needs.
        EngineError::Access(_) if restarting => Some("access_check"),
        _ => None,
    }
}

/// [`run`], started again after a recoverable Kafka error until it ends by
/// itself (input drained, stopped, `duration` or `max_windows` reached) or
/// fails for good. The summary is that of the last start, with `restarts`
/// counting the starts before it; a start that failed committed whatever
/// windows it finished, which the later starts do not count again.
/// `duration` bounds the whole supervised run.
pub fn run_supervised(
    topology: &Topology,
    brokers: &str,
    options: &RunOptions,
    rt: &tokio::runtime::Handle,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let name = topology.name.as_str();
    let mut restarts = 0u64;
    let mut fruitless = 0u32;
    loop {
        let mut attempt = options.clone();
        if let Some(d) = options.duration {
            attempt.duration = Some(d.saturating_sub(started.elapsed()));
        }
        let mut committed = false;
        let result = run(topology, brokers, &attempt, rt, &mut |p| {
            committed |= matches!(p, Progress::Committed { .. });
            progress(p)
        });
        let error = match result {
            Ok(mut summary) => {
                summary.restarts = restarts;
                summary.elapsed_secs = started.elapsed().as_secs_f64();
                return Ok(summary);
            }
            Err(e) => e,
        };
        if committed {
            fruitless = 0;
        }
        let Some(reason) = recoverable(&error, restarts > 0) else {
            return Err(error);
        };
        if options.stop.load(Ordering::Relaxed) || fruitless >= MAX_FRUITLESS_RESTARTS {
            return Err(error);
        }
        let wait = backoff(fruitless);
        fruitless += 1;
        restarts += 1;
        // The error names Kafka's state (member, epoch, broker), never a
        // record: no PHI reaches this line.
        warn!(
            topology = %name,
            reason,
            restart = restarts,
            wait_ms = wait.as_millis() as u64,
            error = %error,
            "kafka outage: starting again from the committed state"
        );
        metrics::counter!(
            "resynth_engine_restarts_total",
            "topology" => name.to_string(),
            "reason" => reason,
        )
        .increment(1);
        crate::health::global().starting(name, &format!("restarting after {reason}"));
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if options.stop.load(Ordering::Relaxed) {
                return Err(error);
            }
            std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

/// Exponential backoff: 0.5 s, 1 s, 2 s, … capped at 30 s.
fn backoff(fruitless: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1u32 << fruitless.min(16))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    fn sink(e: SinkError) -> EngineError {
        EngineError::Sink(Box::new(e))
    }

    #[test]
    fn kafka_state_errors_restart_and_the_rest_are_returned() {
        let aborted = sink(SinkError::Aborted {
            during: "adding offsets".into(),
            source: KafkaError::Global(RDKafkaErrorCode::UnknownMemberId),
        });
        assert_eq!(recoverable(&aborted, false), Some("transaction_aborted"));
        let fenced = sink(SinkError::Fatal(KafkaError::Global(
            RDKafkaErrorCode::ProducerFenced,
        )));
        assert_eq!(recoverable(&fenced, false), Some("producer_fenced"));
        let consumer = EngineError::Consumer(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown));
        assert_eq!(recoverable(&consumer, false), Some("consumer"));

        // The first start's answers are the operator's: wrong password,
        // missing ACL, unreachable broker at startup.
        let access = EngineError::Access(crate::preflight::AccessError(vec!["x".into()]));
        assert_eq!(recoverable(&access, false), None);
        assert_eq!(recoverable(&access, true), Some("access_check"));
        let init = sink(SinkError::Init("timed out".into()));
        assert_eq!(recoverable(&init, false), None);
        assert_eq!(recoverable(&init, true), Some("init_transactions"));

        for never in [
            EngineError::Check(vec!["window.size_secs".into()]),
            EngineError::Generate("singular".into()),
            EngineError::Gate("no holdout".into()),
        ] {
            assert_eq!(recoverable(&never, true), None, "{never}");
        }
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        let waits: Vec<u64> = (0..9).map(|i| backoff(i).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
