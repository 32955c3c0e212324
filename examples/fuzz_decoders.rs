//! Deep fuzzing of the network-facing decoders (Avro datum, JSON object,
//! FHIR resource)
//! for as long as asked, with the allocation of every decode measured.
//!
//! ```text
//! cargo run --release --example fuzz_decoders -- [--seconds 300] [--seed N]
//! ```
//! Inputs: arbitrary bytes, mutations of valid simulator events
//! (`resynth::schema::fuzz::mutate`; for FHIR, the same events as
//! Observations) and the fixed hostile cases. Fails (exit 1) on a panic, on
//! a decode using more than 50 ms + 0.1 µs per byte of CPU, or on one that
//! allocates more than 64 KiB + 8 × its size; prints the executions
//! reached, the rate and the worst allocation ratio.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use resynth::schema::RecordSchema;
use resynth::schema::decode::EventDecoder;
use resynth::schema::fuzz::{hostile_cases, mutate};
use resynth::source::simulator::{
    Simulator, SimulatorConfig, encode_event_avro, encode_event_json,
};
use resynth::topology::EventFormat;

/// Counts bytes allocated (not freed) since the last reset: one decode's
/// allocation, single-threaded.
struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time this thread has used. A hang is a decode that keeps the CPU
/// busy; wall time would also count the times the scheduler ran something
/// else, which on a loaded 2-core machine reached 100 ms for 73-byte inputs.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let seconds = arg("--seconds").unwrap_or(60);
    let seed = arg("--seed").unwrap_or(1);
    let schema = Arc::new(
        RecordSchema::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/ehr/lab_result.avsc"
        )))
        .expect("schema"),
    );
    let sim = Simulator::new(SimulatorConfig {
        patients: 200,
        seed,
        ..Default::default()
    });
    let events = sim.window_events(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut executions = 0u64;
    let mut errors = 0u64;
    let mut worst_ratio = 0.0f64;
    let mut worst_bytes = 0usize;
    let mut failures = 0u64;
    let fhir_source = resynth::schema::fhir::example::observation_source();
    let fhir_schema = Arc::new(RecordSchema::for_source(&fhir_source).expect("fhir schema"));
    let new_decoder = |format: EventFormat| match format {
        EventFormat::Fhir => EventDecoder::for_source(fhir_schema.clone(), &fhir_source).unwrap(),
        _ => EventDecoder::new(schema.clone(), format, "event_time").unwrap(),
    };
    'outer: for format in [EventFormat::Avro, EventFormat::Json, EventFormat::Fhir]
        .into_iter()
        .cycle()
    {
        let valid: Vec<Vec<u8>> = events
            .iter()
            .take(500)
            .map(|e| match format {
                EventFormat::Avro => encode_event_avro(&schema, e).unwrap(),
                EventFormat::Json => encode_event_json(e),
                EventFormat::Fhir => resynth::schema::fhir::example::observation_bytes(e),
            })
            .collect();
        let mut d = new_decoder(format);
        let mut inputs: Vec<Vec<u8>> = hostile_cases().into_iter().map(|(_, b)| b).collect();
        for _ in 0..5000 {
            inputs.push(if rng.random_bool(0.2) {
                let n = rng.random_range(0..4096);
                (0..n).map(|_| rng.random()).collect()
            } else {
                {
                    let i = rng.random_range(0..valid.len());
                    mutate(&mut rng, &valid[i])
                }
            });
        }
        for input in &inputs {
            // Builders grow with accepted rows (that is the window's data,
            // bounded by window.max_buffered_rows): measure the decode alone.
            if d.len() >= 256 {
                d.finish();
            }
            ALLOCATED.store(0, Ordering::Relaxed);
            let started = thread_cpu();
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.decode(input, 0, 0)));
            let took = thread_cpu().saturating_sub(started);
            let bytes = ALLOCATED.load(Ordering::Relaxed);
            executions += 1;
            match result {
                Err(_) => {
                    failures += 1;
                    eprintln!(
                        "PANIC on {format:?} input of {} bytes: {:02x?}",
                        input.len(),
                        &input[..input.len().min(64)]
                    );
                    d = new_decoder(format);
                }
                Ok(Err(_)) => errors += 1,
                Ok(Ok(_)) => {}
            }
            let limit = Duration::from_millis(50) + Duration::from_nanos(100 * input.len() as u64);
            if took > limit {
                failures += 1;
                eprintln!(
                    "SLOW: {took:?} on {format:?} input of {} bytes",
                    input.len()
                );
            }
            let bound = 64 * 1024 + 8 * input.len();
            if bytes > bound {
                failures += 1;
                eprintln!(
                    "ALLOC: {bytes} bytes on {format:?} input of {} bytes (bound {bound})",
                    input.len()
                );
            }
            let ratio = bytes as f64 / (input.len().max(1)) as f64;
            if bytes > worst_bytes {
                worst_bytes = bytes;
            }
            if input.len() >= 64 && ratio > worst_ratio {
                worst_ratio = ratio;
            }
            if Instant::now() >= deadline {
                break 'outer;
            }
        }
    }
    println!(
        "fuzz_decoders: {executions} executions in {seconds} s ({:.0}/s), {errors} decode errors (dead letters), \
         {failures} failures; largest allocation per decode {worst_bytes} B, worst ratio {worst_ratio:.2} B per input byte \
         (bound 64 KiB + 8 B/byte)",
        executions as f64 / seconds as f64
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
