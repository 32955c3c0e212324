//! Where events come from. The Kafka consumer itself lives in `engine`, which
//! owns offsets; this module holds the EHR event simulator used by the demo,
//! the tests and the benches, the helper that loads it into a topic, and the
//! file reader of `resynth validate`.

pub mod files;
pub mod load;
pub mod simulator;
pub mod text_values;
