//! resynth: a streaming engine that keeps synthetic health data honest.
//!
//! Kafka EHR events are decoded into Arrow, windowed by event time, compared
//! with the deployed generator's reference profile for drift, refitted when
//! drift persists, and every synthetic batch is gated for fidelity and privacy
//! before it is published with lineage headers, in one Kafka transaction with
//! the source offsets it consumed. See `DESIGN.md`-style overview in README.
//!
//! The pure core (`table`, `stats`, `drift`, `generate`, `gate`) does no I/O;
//! `source`, `sink`, `audit` and `engine` are the imperative shell.

pub mod audit;
pub mod demo;
pub mod drift;
pub mod engine;
pub mod gate;
pub mod generate;
pub mod health;
pub mod kill_point;
pub mod owner_only;
pub mod preflight;
pub mod replay;
pub mod schema;
pub mod sink;
pub mod source;
pub mod stats;
pub mod table;
pub mod telemetry;
pub mod topology;
pub mod window;
