//! Group-coordinator calls on a broker that has just started (or just moved a
//! coordinator) fail with transient codes until `__consumer_offsets` is
//! loaded. Those are retried with backoff up to a deadline; any other error is
//! returned at once, so a real misconfiguration still fails fast.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// How long a coordinator lookup may stay transient before we give up.
pub const COORDINATOR_DEADLINE: Duration = Duration::from_secs(60);

/// True for the codes a broker returns while its group coordinator is not
/// ready yet; they clear on their own.
pub fn is_transient(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
        )
    )
}

/// Runs `call` until it succeeds, fails with a non-transient error, or
/// `deadline` has passed (then the last error is returned).
pub fn retry_transient<T>(
    deadline: Duration,
    mut call: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match call() {
            Ok(v) => return Ok(v),
            Err(err) if is_transient(&err) && start.elapsed() + backoff < deadline => {
                tracing::debug!(error = %err, "transient coordinator error; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retried_until_success() {
        let mut calls = 0;
        let got = retry_transient(Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 {
                Err(KafkaError::MetadataFetch(RDKafkaErrorCode::NotCoordinator))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.unwrap(), 3);
    }

    #[test]
    fn other_errors_fail_at_once() {
        let mut calls = 0;
        let got: KafkaResult<()> = retry_transient(Duration::from_secs(5), || {
            calls += 1;
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ))
        });
        assert!(got.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn transient_errors_give_up_at_the_deadline() {
        let got: KafkaResult<()> = retry_transient(Duration::from_millis(200), || {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::CoordinatorLoadInProgress,
            ))
        });
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(RDKafkaErrorCode::CoordinatorLoadInProgress)
        );
    }
}
