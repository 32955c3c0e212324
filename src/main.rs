//! The `resynth` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use resynth::demo::{self, DemoOptions};
use resynth::engine::{self, RunOptions, RunSummary};
use resynth::source::simulator::{DRIFTABLE, DriftSpec};
use resynth::telemetry;
use resynth::topology::Topology;

#[derive(Parser)]
#[command(
    name = "resynth",
    version = telemetry::VERSION,
    about = "Keeps synthetic health data faithful and private, continuously"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole loop on an in-process Kafka with simulated EHR events.
    Demo {
        /// Topology to run (default: the demo topology built into the binary,
        /// written with its schemas to out/demo-topology/ so it can be read
        /// and edited).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Windows of simulated events to produce.
        #[arg(long, default_value_t = 8)]
        windows: usize,
        /// Stop producing after this many lab events.
        #[arg(long)]
        events: Option<usize>,
        /// Stop the engine after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// Simulated patients.
        #[arg(long, default_value_t = 4000)]
        patients: usize,
        /// First window with injected drift (none if larger than --windows).
        #[arg(long, default_value_t = 4)]
        drift_at: usize,
        /// Columns to shift, comma-separated: hba1c, glucose, ldl, creatinine, age, diabetes.
        #[arg(long, default_value = "hba1c,glucose", value_delimiter = ',')]
        drift_columns: Vec<String>,
        /// Size of the shift in standard deviations.
        #[arg(long, default_value_t = 0.8)]
        drift_size: f64,
        /// Corrupt events mixed into the stream.
        #[arg(long, default_value_t = 5)]
        corrupt: usize,
        /// Late events re-sent after their window closed.
        #[arg(long, default_value_t = 3)]
        late: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Overrides telemetry.metrics_addr (`/metrics`, `/livez`, `/readyz`);
        /// empty disables the listener.
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Run a topology against a real Kafka cluster.
    Run {
        topology: PathBuf,
        /// Overrides kafka.brokers.
        #[arg(long)]
        brokers: Option<String>,
        /// Stop after this many windows were processed.
        #[arg(long)]
        max_windows: Option<u64>,
        /// Treat the source as finished after this many seconds without events:
        /// close and process every open window, then exit.
        #[arg(long)]
        until_idle: Option<f64>,
        /// Stop after this many seconds (open windows are kept for the next run).
        #[arg(long)]
        duration: Option<u64>,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate a topology: every problem, with its path in the file.
    Check {
        topology: PathBuf,
        /// Overrides kafka.brokers for the reachability check.
        #[arg(long)]
        brokers: Option<String>,
        /// Skip the broker reachability check.
        #[arg(long)]
        offline: bool,
    },
    /// Run the gate on files (CSV or Parquet): any generator's output,
    /// judged by the same operators as the engine. Exits 0 on pass, 1 on
    /// fail, 2 on error.
    Validate {
        /// Real rows the generator was trained on.
        #[arg(long)]
        train: PathBuf,
        /// Real rows from the same population the generator never saw.
        #[arg(long)]
        holdout: PathBuf,
        /// The synthetic rows to judge.
        #[arg(long)]
        synthetic: PathBuf,
        /// Column roles and thresholds (TOML: id_columns, categorical,
        /// [roles], [gate], seed).
        #[arg(long)]
        roles: PathBuf,
        /// Directory for validation.json and validation.html.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Audit directory to record this action in.
        #[arg(long)]
        audit_dir: Option<PathBuf>,
    },
    /// Fit the engine's generator (CART by default, see the roles file's
    /// `[generator]`) on a CSV or Parquet file and write a synthetic CSV,
    /// e.g. to judge it with `validate`.
    Synthesize {
        /// Real rows to fit on.
        #[arg(long)]
        train: PathBuf,
        /// Roles file: id_columns, categorical, seed and [generator].
        #[arg(long)]
        roles: PathBuf,
        /// Synthetic rows to write (default: as many as the training file).
        #[arg(long)]
        rows: Option<usize>,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
        /// Also write the fitted model (content-hashed JSON) here.
        #[arg(long)]
        model_out: Option<PathBuf>,
        /// Sample only a cohort: `column=label`, `column=number`,
        /// `column=lo..hi` (inclusive) or `column=` (null). Repeat for several.
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        cohort: Vec<String>,
    },
    /// Sample from a saved model: a registry version (`<audit dir>/models/...`)
    /// or `synthesize --model-out`. With the seed from the audit log this
    /// reproduces a published batch exactly.
    Sample {
        /// The model record (JSON).
        #[arg(long)]
        model: PathBuf,
        /// Rows to draw.
        #[arg(long)]
        rows: usize,
        /// Sampling seed (`sample_seed` in the audit log, or printed by synthesize).
        #[arg(long)]
        seed: u64,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
        /// Sample only a cohort (see `synthesize --where`).
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        cohort: Vec<String>,
        /// Audit directory to record this action in (default: the one the
        /// model's registry lives in).
        #[arg(long)]
        audit_dir: Option<PathBuf>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Assemble the audit binder of one release (batch id, or `vN` for model
    /// version N): the seven artifacts, a manifest of sha256 digests and an
    /// index page. `binder verify DIR` re-checks one.
    Binder(BinderArgs),
    /// Sign a decision on a release's binder (in-toto statement in a DSSE
    /// envelope, Ed25519) and record it in the audit log.
    Approve {
        /// Release id (batch id).
        release: String,
        /// Ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`
        /// or `resynth keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The binder that was reviewed.
        #[arg(long)]
        binder: PathBuf,
        /// Topology of the release (audit.dir, audit.approver_keys).
        #[arg(long)]
        topology: PathBuf,
        /// Who decides (default: the OS user).
        #[arg(long)]
        approver: Option<String>,
        /// Record a rejection instead of an approval.
        #[arg(long)]
        reject: bool,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Make an Ed25519 key pair: PREFIX.pem (private, mode 0600) and PREFIX.pub.pem.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish FHIR R4 bulk ndjson (e.g. a Synthea population) to one topic
    /// per resource type, keyed by patient, in event-time order, at a chosen
    /// speed. Prints a JSON summary on stdout.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// ndjson files or folders of them (a `deploy/synthea/synthea.sh
    /// generate` output folder is read from its fhir/).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Bootstrap servers (overrides the topology's kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Take kafka.brokers and kafka.properties (secret references resolved)
    /// from this topology file; only its [kafka] table is read.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// A librdkafka property, e.g. security.protocol=SASL_SSL; secrets as
    /// references: sasl.password=${KAFKA_PASSWORD} or file:/path. Repeatable;
    /// overrides the topology's.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Topic of a type: this prefix and the lowercased type (fhir.observation).
    #[arg(long, default_value = "fhir.")]
    topic_prefix: String,
    /// A type's topic by name instead, e.g. --topic Patient=ehr.patients. Repeatable.
    #[arg(long = "topic", value_name = "TYPE=TOPIC")]
    topics: Vec<String>,
    /// Types to replay, comma-separated (default: every type replay knows
    /// but Provenance).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Replay events at or after this time (FHIR dateTime: 2020, 2020-06,
    /// 2020-06-01, 2020-06-01T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Replay events before this time.
    #[arg(long)]
    until: Option<String>,
    /// Event-time seconds per second (3600: an hour per second), or `max`.
    #[arg(long, default_value = "max")]
    speed: resynth::replay::pacing::Speed,
    /// Partitions of the topics replay creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Replication factor of the topics replay creates (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    replication_factor: i32,
    /// Do not create topics (they must exist).
    #[arg(long)]
    no_create_topics: bool,
    /// Skip lines that cannot be replayed and count them, instead of stopping
    /// before anything is published.
    #[arg(long)]
    skip_bad: bool,
    /// Longer lines are bad lines (Kafka's default max.message.bytes is 1048588).
    #[arg(long, default_value_t = resynth::replay::DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BinderArgs {
    #[command(subcommand)]
    command: Option<BinderCommand>,
    /// Release id (batch id), or `vN` for the batch of model version N.
    release: Option<String>,
    /// Directory to write the binder into.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Topology of the release (audit.dir, lineage.file, kafka).
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Overrides kafka.brokers for the consumer registry.
    #[arg(long)]
    brokers: Option<String>,
    /// Do not query the broker (the consumer registry says so).
    #[arg(long)]
    offline: bool,
}

#[derive(Subcommand)]
enum BinderCommand {
    /// Re-check a binder: digests, audit chain, artifacts re-derived from the
    /// evidence, lineage links, approvals. Exits 0 when every check passes, 1 otherwise.
    Verify {
        dir: PathBuf,
        /// Trusted approver public keys (SPKI PEM); repeatable.
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<PathBuf>,
        /// Also trust this topology's audit.approver_keys (and require an
        /// approval when it sets output.require_approval).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Fail without a valid approval.
        #[arg(long)]
        require_approval: bool,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of an audit log (audit.jsonl); with --brokers,
    /// also against the anchors (`resynth.audit_head`) on the topology's
    /// synthetic and quarantine topics, which reveal a truncated tail or a
    /// rewritten log.
    Verify {
        path: PathBuf,
        #[arg(long)]
        brokers: Option<String>,
        /// Topology whose output and quarantine topics hold the anchors.
        #[arg(long)]
        topology: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing("warn");
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn load(path: &std::path::Path) -> Result<Topology> {
    Topology::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check {
            topology,
            brokers,
            offline,
        } => check(&topology, brokers, offline),
        Command::Validate {
            train,
            holdout,
            synthetic,
            roles,
            report,
            audit_dir,
        } => {
            if let Some(dir) = &audit_dir {
                record_action(dir, "", "validate")?;
            }
            validate(&train, &holdout, &synthetic, &roles, report.as_deref())
        }
        Command::Synthesize {
            train,
            roles,
            rows,
            out,
            model_out,
            cohort,
        } => synthesize(&train, &roles, rows, &out, model_out.as_deref(), &cohort),
        Command::Sample {
            model,
            rows,
            seed,
            out,
            cohort,
            audit_dir,
        } => {
            // The registry lives at <audit dir>/models/<topology>/vN.json.
            let registry_dir = model
                .parent()
                .and_then(|p| p.parent())
                .and_then(|p| p.parent())
                .filter(|d| d.join("audit.jsonl").exists())
                .map(|d| d.to_path_buf());
            let topology = model
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(dir) = audit_dir.or(registry_dir) {
                record_action(&dir, &topology, "sample")?;
            }
            sample(&model, rows, seed, &out, &cohort)
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    path,
                    brokers,
                    topology,
                },
        } => audit_verify(&path, brokers, topology.as_deref()),
        Command::Binder(args) => binder(args),
        Command::Approve {
            release,
            key,
            binder,
            topology,
            approver,
            reject,
            comment,
        } => approve(
            &release, &key, &binder, &topology, approver, reject, &comment,
        ),
        Command::Keygen { out } => keygen(&out),
        Command::Replay(args) => replay(args),
        Command::Run {
            topology,
            brokers,
            max_windows,
            until_idle,
            duration,
            json,
        } => {
            let mut topo = load(&topology)?;
            if let Some(b) = brokers {
                topo.kafka.brokers = b;
            }
            let rt = runtime()?;
            let _guard = rt.enter();
            if !topo.telemetry.metrics_addr.is_empty() {
                telemetry::install_prometheus(&topo.telemetry.metrics_addr)?;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let name = topo.name.clone();
            rt.spawn(async move {
                // Ctrl-C, or SIGTERM from Kubernetes / systemd: not ready at
                // once (even mid-window), then a graceful stop.
                shutdown_signal().await;
                resynth::health::global().draining(&name);
                flag.store(true, Ordering::Relaxed);
            });
            let options = RunOptions {
                max_windows,
                idle_exit: until_idle.map(Duration::from_secs_f64),
                duration: duration.map(Duration::from_secs),
                stop,
            };
            let brokers = topo.kafka.brokers.clone();
            let summary = engine::supervisor::run_supervised(
                &topo,
                &brokers,
                &options,
                rt.handle(),
                &mut |p| {
                    tracing::info!(progress = ?p);
                    demo::print_progress(p)
                },
            )?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print_summary(&summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            topology,
            windows,
            events,
            duration,
            patients,
            drift_at,
            drift_columns,
            drift_size,
            corrupt,
            late,
            seed,
            metrics_addr,
        } => {
            for c in &drift_columns {
                if !DRIFTABLE.contains(&c.as_str()) {
                    bail!(
                        "--drift-columns: {c:?} is not one of {}",
                        DRIFTABLE.join(", ")
                    );
                }
            }
            if patients == 0 || windows == 0 {
                bail!("--patients and --windows must be > 0");
            }
            let topology = match topology {
                Some(path) => path,
                None => demo::write_embedded(std::path::Path::new(EMBEDDED_DEMO_DIR))?,
            };
            let mut topo = load(&topology)?;
            if let Some(addr) = metrics_addr {
                topo.telemetry.metrics_addr = addr;
            }
            let rt = runtime()?;
            let _guard = rt.enter();
            if !topo.telemetry.metrics_addr.is_empty()
                && let Err(e) = telemetry::install_prometheus(&topo.telemetry.metrics_addr)
            {
                eprintln!("warning: {e}; continuing without /metrics");
            }
            let options = DemoOptions {
                windows,
                max_events: events,
                duration: duration.map(Duration::from_secs),
                patients,
                drift: (drift_at < windows).then_some(DriftSpec {
                    start_window: drift_at,
                    columns: drift_columns,
                    size: drift_size,
                }),
                corrupt,
                late,
                seed,
            };
            let started = std::time::Instant::now();
            let (summary, loaded, downstream) = demo::run(&mut topo, &options, rt.handle())?;
            print_summary(&summary);
            println!(
                "downstream consumer: {} synthetic records in {} batches, {} decode with {}, {} carry all {} lineage headers; {} dead letters, {} late events",
                downstream.records,
                downstream.batches.len(),
                downstream.decoded,
                topo.output.schema.display(),
                downstream.with_all_headers,
                resynth::sink::header_names().len(),
                downstream.dead_letters,
                downstream.late
            );
            println!(
                "evidence: {}/audit.jsonl, {}/reports/, {}/models/",
                topo.audit.dir.display(),
                topo.audit.dir.display(),
                topo.audit.dir.display()
            );
            println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
            let expected_dead = loaded.corrupt_payloads.len();
            if downstream.dead_letters != expected_dead
                || downstream.late != loaded.late
                || downstream.decoded != downstream.records
            {
                bail!(
                    "downstream check failed: {} dead letters (expected {expected_dead}), {} late (expected {}), {} of {} records decoded",
                    downstream.dead_letters,
                    downstream.late,
                    loaded.late,
                    downstream.decoded,
                    downstream.records
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where `resynth demo` writes its built-in topology and schemas.
const EMBEDDED_DEMO_DIR: &str = "out/demo-topology";

fn replay(args: ReplayArgs) -> Result<ExitCode> {
    use resynth::replay::{self, index, resource};
    let mut kafka = match &args.topology {
        Some(path) => replay::KafkaSettings::from_topology(path)?,
        None => replay::KafkaSettings::default(),
    };
    kafka.add_properties(&args.properties)?;
    let brokers = args
        .brokers
        .or(kafka.brokers.take())
        .context("no brokers: pass --brokers or a --topology whose [kafka] names them")?;
    let time = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| {
                resource::fhir_time_ms(s).with_context(|| {
                    format!(
                        "{flag} {s:?}: not a FHIR dateTime (2020, 2020-06-01, 2020-06-01T00:00:00Z)"
                    )
                })
            })
            .transpose()
    };
    let mut topics = std::collections::BTreeMap::new();
    for t in &args.topics {
        let (ty, topic) = t
            .split_once('=')
            .with_context(|| format!("--topic {t:?}: expected TYPE=TOPIC"))?;
        topics.insert(ty.to_string(), topic.to_string());
    }
    let mut options = replay::ReplayOptions::new(args.inputs, brokers);
    options.properties = kafka.properties;
    options.topic_prefix = args.topic_prefix;
    options.topics = topics;
    options.types = (!args.types.is_empty()).then_some(args.types);
    options.span = index::Span {
        since_ms: time("--since", &args.since)?,
        until_ms: time("--until", &args.until)?,
    };
    options.speed = args.speed;
    options.partitions = args.partitions;
    options.replication_factor = args.replication_factor;
    options.create_topics = !args.no_create_topics;
    options.max_record_bytes = args.max_record_bytes;
    options.bad_lines = if args.skip_bad {
        index::BadLinePolicy::Skip
    } else {
        index::BadLinePolicy::Stop
    };
    let summary = replay::replay(&options, &mut |sent, total| {
        eprintln!("replay: {sent}/{total} records sent");
    })
    .map_err(|e| anyhow::anyhow!("{}", resynth::topology::secrets::scrub(&e.to_string())))?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &RunSummary) {
    println!(
        "summary: {} events in, {} dead-lettered, {} too late, {} windows closed ({} skipped), {} refits, {} batches published ({} records), {} quarantined, {} transactions, deployed model v{}, {:.1} s{}",
        s.events_in,
        s.dead_lettered,
        s.late,
        s.windows_closed,
        s.windows_skipped,
        s.refits,
        s.batches_published,
        s.records_published,
        s.batches_quarantined,
        s.transactions,
        s.deployed_version
            .map_or("-".to_string(), |v| v.to_string()),
        s.elapsed_secs,
        if s.restarts > 0 {
            format!(
                " ({} restart(s) after Kafka outages; counts are the last start's)",
                s.restarts
            )
        } else {
            String::new()
        }
    );
}

fn check(path: &std::path::Path, brokers: Option<String>, offline: bool) -> Result<ExitCode> {
    let topo = match Topology::load(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let rt = runtime()?;
    let mut problems = match engine::check_offline(&topo, rt.handle()) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    if !offline {
        // Health checks against the broker: connection, TLS, authentication
        // and each ACL. The transactional probes fence a running engine, so
        // they run only while no engine holds the audit directory.
        let b = brokers.unwrap_or_else(|| topo.kafka.brokers.clone());
        let lock = resynth::audit::access::EngineLock::try_acquire(&topo.audit.dir)
            .ok()
            .flatten();
        let options = resynth::preflight::ProbeOptions {
            transactions: lock.is_some(),
            ..Default::default()
        };
        let report = resynth::preflight::probe(&topo, &b, options);
        drop(lock);
        for c in &report.checks {
            let status = if c.problem.is_some() { "FAIL" } else { "ok" };
            let note = c
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            println!("kafka: {status:<4} {}{note}", c.what);
        }
        problems.extend(report.problems().into_iter().map(|p| format!("kafka: {p}")));
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} has {} problem(s):", path.display(), problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        Ok(ExitCode::from(1))
    }
}

/// `resynth validate`: read, gate, print the verdict table, write reports.
fn validate(
    train: &std::path::Path,
    holdout: &std::path::Path,
    synthetic: &std::path::Path,
    roles: &std::path::Path,
    report_dir: Option<&std::path::Path>,
) -> Result<ExitCode> {
    use resynth::audit::validation::{self, Input, ValidationRecord};
    use resynth::source::files::{ValidateSpec, read_tables};

    let spec = ValidateSpec::load(roles)?;
    let rt = runtime()?;
    let tables = rt.block_on(read_tables(train, holdout, synthetic, &spec))?;
    let problems = spec.problems(&tables.train);
    if !problems.is_empty() {
        bail!(
            "{} has {} problem(s):\n  - {}",
            roles.display(),
            problems.len(),
            problems.join("\n  - ")
        );
    }
    let started = std::time::Instant::now();
    let report = resynth::gate::evaluate_in_units(
        &tables.train,
        &tables.holdout,
        &tables.synthetic,
        &tables.units,
        &spec.gate,
        &spec.roles,
        spec.seed.unwrap_or(0),
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    print!("{}", validation::verdict_table(&report));
    println!("gate: {elapsed:.1} s");
    if let Some(dir) = report_dir {
        let record = ValidationRecord {
            run_id: uuid::Uuid::new_v4().to_string(),
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: vec![
                Input::describe("train", train, &tables.train)?,
                Input::describe("holdout", holdout, &tables.holdout)?,
                Input::describe("synthetic", synthetic, &tables.synthetic)?,
            ],
            spec: serde_json::to_value(&spec)?,
            gate_seconds: elapsed,
            report,
        };
        let written = validation::write(
            dir,
            &record,
            &tables.train,
            &tables.holdout,
            &tables.synthetic,
            spec.gate.small_cell_min,
        )?;
        for path in written {
            println!("wrote {}", path.display());
        }
        return Ok(exit_for(record.report.passed));
    }
    Ok(exit_for(report.passed))
}

fn exit_for(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `resynth synthesize`: fit on a file, sample, write CSV (and the model).
fn synthesize(
    train: &std::path::Path,
    roles: &std::path::Path,
    rows: Option<usize>,
    out: &std::path::Path,
    model_out: Option<&std::path::Path>,
    cohort: &[String],
) -> Result<ExitCode> {
    use resynth::generate::cohort::Cohort;
    use resynth::generate::{self, FittedOn, GeneratorSettings};
    use resynth::source::files::{ValidateSpec, read_one};

    let spec = ValidateSpec::load(roles)?;
    let rt = runtime()?;
    let (table, formats) = rt.block_on(read_one(train, &spec))?;
    let cohort = Cohort::parse(cohort, &table)?;
    if let Some(column) = &spec.generator.stratify_by
        && table.column(column).is_none()
    {
        bail!("generator.stratify_by: {column:?} is not a column of the training file");
    }
    let seed = spec.seed.unwrap_or(0);
    let started = std::time::Instant::now();
    let mut model = generate::fit_model(
        "file",
        1,
        &table,
        GeneratorSettings {
            kind: spec.generator.family,
            copula: &spec.generator.copula,
            cart: &spec.generator.cart,
            entities: None,
            gate: Some((&spec.gate, &spec.roles)),
            stratify: spec
                .generator
                .stratify_by
                .as_deref()
                .map(|c| (c, spec.generator.min_stratum_rows)),
            privbayes: None,
        },
        generate::derive_seed(seed, "fit", 0),
        FittedOn {
            window_start_ms: 0,
            window_end_ms: 0,
            source_offsets: vec![train.display().to_string()],
            train_rows: table.n_rows(),
            holdout_rows: 0,
        },
        resynth::drift::ReferenceProfile::build(&table),
    )?;
    let n = rows.unwrap_or(table.n_rows());
    let sample_seed = generate::derive_seed(seed, "sample", 0);
    let synthetic = model.model.sample_cohort(n, sample_seed, &cohort)?;
    let elapsed = started.elapsed().as_secs_f64();
    resynth::sink::files::write_csv_with(&synthetic, &formats, out)
        .with_context(|| format!("writing {}", out.display()))?;
    model.column_formats = formats;
    if let Some(path) = model_out {
        resynth::owner_only::write(path, &serde_json::to_vec_pretty(&model)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(selection) = &model.selection {
        for c in &selection.candidates {
            println!(
                "auto: {:<28} inner gate {} ({} failed), detection AUC {} (holdout {}){}",
                c.generator,
                if c.passed { "pass" } else { "FAIL" },
                c.failed_operators.len(),
                c.detection_auc.map_or("-".into(), |a| format!("{a:.3}")),
                c.holdout_detection_auc
                    .map_or("-".into(), |a| format!("{a:.3}")),
                c.error
                    .as_deref()
                    .map_or(String::new(), |e| format!("; {e}"))
            );
        }
        println!("auto: chose {}", selection.chosen);
    }
    println!(
        "fitted {} (sha256 {}) on {} rows × {} columns and sampled {n} rows (sample seed {sample_seed}) in {elapsed:.2} s; wrote {}",
        model.generator,
        &model.sha256[..16],
        table.n_rows(),
        table.columns.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Re-samples a saved model: the reproduction half of lineage.
fn sample(
    path: &std::path::Path,
    rows: usize,
    seed: u64,
    out: &std::path::Path,
    cohort: &[String],
) -> Result<ExitCode> {
    use resynth::generate::ModelRecord;
    use resynth::generate::cohort::Cohort;

    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record: ModelRecord = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a model record", path.display()))?;
    let actual = record.model.content_sha256();
    if actual != record.sha256 {
        bail!(
            "{}: model content hashes to {actual}, but the record says {}; refusing a tampered model",
            path.display(),
            record.sha256
        );
    }
    let kinds = record.model.sample(1, 0);
    let cohort = Cohort::parse(cohort, &kinds)?;
    let synthetic = record.model.sample_cohort(rows, seed, &cohort)?;
    resynth::sink::files::write_csv_with(&synthetic, &record.column_formats, out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "sampled {rows} rows from {} v{} (sha256 {}) with seed {seed}; wrote {}",
        record.generator,
        record.version,
        &record.sha256[..16],
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Records this command in an audit log (appended, or queued for the
/// running engine), secrets redacted.
fn record_action(audit_dir: &std::path::Path, topology: &str, command: &str) -> Result<()> {
    use resynth::audit::access;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let recorded = access::record_external(
        audit_dir,
        topology,
        "operator_action",
        access::operator_action(command, &args),
    )
    .map_err(|e| anyhow::anyhow!("recording the action in {}: {e}", audit_dir.display()))?;
    if let access::Recorded::Queued(p) = recorded {
        eprintln!(
            "note: the engine is running; this action is queued for its audit log ({})",
            p.display()
        );
    }
    Ok(())
}

fn audit_verify(
    path: &std::path::Path,
    brokers: Option<String>,
    topology: Option<&std::path::Path>,
) -> Result<ExitCode> {
    use resynth::audit::anchor;
    let entries = resynth::audit::verify(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}: {} entries, chain intact",
        path.display(),
        entries.len()
    );
    let Some(brokers) = brokers else {
        return Ok(ExitCode::SUCCESS);
    };
    let Some(topology) = topology else {
        bail!("--brokers needs --topology (its output and quarantine topics hold the anchors)");
    };
    let topo = load(topology)?;
    let topics = vec![
        topo.output.topic.clone(),
        topo.kafka.quarantine_topic.clone(),
    ];
    let anchored = anchor::scan(&brokers, &topics, &topo.kafka.properties)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = anchor::check(&entries, &anchored);
    println!(
        "anchors: {} batches on {} carry {} distinct anchors; {} entries after the last anchor",
        report.batches,
        topics.join(", "),
        report.anchors,
        report.unanchored_tail
    );
    if report.problems.is_empty() {
        println!("the log agrees with every anchor");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &report.problems {
            eprintln!("  - {p}");
        }
        eprintln!(
            "{}: {} problem(s) against the anchors on the topics",
            path.display(),
            report.problems.len()
        );
        Ok(ExitCode::from(1))
    }
}

fn binder(args: BinderArgs) -> Result<ExitCode> {
    use resynth::audit::{approval, binder};
    if let Some(BinderCommand::Verify {
        dir,
        mut trusted_keys,
        topology,
        mut require_approval,
        json,
    }) = args.command
    {
        if let Some(t) = &topology {
            let topo = load(t)?;
            trusted_keys.extend(topo.audit.approver_keys.iter().cloned());
            require_approval |= topo.output.require_approval;
        }
        let trusted = approval::load_trusted(&trusted_keys).map_err(|e| anyhow::anyhow!("{e}"))?;
        let v = binder::verify(&dir, &trusted, require_approval)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for c in &v.checks {
                println!(
                    "{} {:<14} {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.check,
                    c.detail
                );
            }
            println!(
                "binder {} (release {}, manifest sha256 {}): {}",
                dir.display(),
                v.release,
                v.manifest_sha256,
                if v.ok() { "verified" } else { "NOT verified" }
            );
        }
        return Ok(exit_for(v.ok()));
    }
    let (Some(release), Some(out), Some(topology)) = (args.release, args.out, args.topology) else {
        bail!(
            "usage: resynth binder RELEASE --out DIR --topology FILE [--brokers B | --offline], or resynth binder verify DIR"
        );
    };
    let topo = load(&topology)?;
    record_action(&topo.audit.dir, &topo.name, "binder")?;
    let options = binder::BuildOptions {
        brokers: (!args.offline)
            .then(|| args.brokers.unwrap_or_else(|| topo.kafka.brokers.clone())),
        kafka_properties: (*topo.kafka.properties).clone(),
        generated_at_ms: None,
    };
    let manifest = binder::build(
        &topo.audit.dir,
        &topo.lineage.file,
        &release,
        &out,
        &options,
    )?;
    println!(
        "binder of {} ({}) written to {}: {} files, manifest sha256 {}",
        manifest["release"]["batch_id"].as_str().unwrap_or(""),
        manifest["release"]["status"].as_str().unwrap_or(""),
        out.display(),
        manifest["files"].as_array().map_or(0, |f| f.len()),
        binder::manifest_digest(&out)?
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn approve(
    release: &str,
    key: &std::path::Path,
    binder_dir: &std::path::Path,
    topology: &std::path::Path,
    approver: Option<String>,
    reject: bool,
    comment: &str,
) -> Result<ExitCode> {
    use resynth::audit::{access, approval, binder, openlineage};
    let topo = load(topology)?;
    record_action(&topo.audit.dir, &topo.name, "approve")?;
    let trusted =
        approval::load_trusted(&topo.audit.approver_keys).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Never sign a binder that does not verify (approvals aside).
    let v = binder::verify(binder_dir, &trusted, false)?;
    let broken: Vec<String> = v
        .checks
        .iter()
        .filter(|c| !c.ok && c.check != "approvals")
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect();
    if !broken.is_empty() {
        bail!(
            "{} does not verify; not signing:\n  - {}",
            binder_dir.display(),
            broken.join("\n  - ")
        );
    }
    if v.release != release {
        bail!(
            "{} is the binder of {}, not {release}",
            binder_dir.display(),
            v.release
        );
    }
    let signing = approval::load_signing_key(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keyid = approval::keyid(&signing.verifying_key());
    if !trusted.iter().any(|k| approval::keyid(k) == keyid) {
        eprintln!(
            "warning: this key is not among {}'s audit.approver_keys; the engine and `binder verify --topology` will not accept it",
            topology.display()
        );
    }
    let decision = approval::Decision {
        release: release.to_string(),
        manifest_sha256: v.manifest_sha256.clone(),
        result: if reject { "fail" } else { "pass" }.into(),
        approver: approver.unwrap_or_else(access::os_user),
        time: openlineage::rfc3339(resynth::audit::now_ms()),
        comment: comment.to_string(),
    };
    let envelope = approval::sign(&decision, &signing);
    let bytes = serde_json::to_vec_pretty(&envelope)?;
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let dir = binder_dir.join("approvals");
    resynth::owner_only::create_dir_all(&dir)?;
    let file = dir.join(format!(
        "{}-{}.dsse.json",
        resynth::audit::now_ms(),
        &keyid[..12]
    ));
    resynth::owner_only::write(&file, &bytes)?;
    let recorded = access::record_external(
        &topo.audit.dir,
        &topo.name,
        "release_approval",
        serde_json::json!({"release": release, "batch_id": release, "result": decision.result,
            "approver": decision.approver, "keyid": keyid, "manifest_sha256": v.manifest_sha256,
            "envelope_sha256": digest, "envelope": envelope,
            "manifest_text": std::fs::read_to_string(binder_dir.join("manifest.json"))?}),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{} {release}: signed manifest {} as {} (key {}…); envelope {} ({})",
        if reject { "rejected" } else { "approved" },
        v.manifest_sha256,
        decision.approver,
        &keyid[..16],
        file.display(),
        match recorded {
            access::Recorded::Appended(seq) => format!("audit entry {seq}"),
            access::Recorded::Queued(_) => "queued for the running engine".into(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &std::path::Path) -> Result<ExitCode> {
    use std::io::Write;
    let (private, public) =
        resynth::audit::approval::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let private_path = out.with_extension("pem");
    let public_path = out.with_extension("pub.pem");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&private_path)
        .with_context(|| format!("creating {} (it must not exist)", private_path.display()))?
        .write_all(private.as_bytes())?;
    std::fs::write(&public_path, public)?;
    println!(
        "wrote {} (private, 0600) and {}",
        private_path.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
