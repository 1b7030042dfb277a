//! The daemon's Prometheus metrics (SPEC §4.4): one `Metrics` struct owning its
//! own `Registry`, with every series created at startup so dashboards and alerts
//! see zeros rather than gaps. Labels take only the closed sets below or a
//! partition number: never a stream key or another unbounded value. Serving
//! `/metrics` over HTTP belongs to the HTTP module.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use robson_projector::ErrorKind;

/// Defines a closed set of label values with `ALL` (to create every series at
/// startup) and `as_str` (the value written in /metrics).
macro_rules! label_set {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

label_set!(
    /// Why an event was passed over without effect.
    SkipReason { UnhandledType => "unhandled_type", AlreadyApplied => "already_applied", PoisonSkipped => "poison_skipped" }
);
label_set!(
    /// A supervised actor kind.
    Actor { Poller => "poller", Projector => "projector" }
);
label_set!(
    /// What woke the poller.
    WakeupSource { Notify => "notify", Poll => "poll" }
);
label_set!(
    /// A database error as classified by the daemon's one classifier.
    DbErrorKind { Transient => "transient", Permanent => "permanent" }
);
label_set!(
    /// What became of a small batch handed to the projectors' group
    /// (`daemon::group`).
    GroupVerdict { Committed => "committed", Alone => "alone" }
);
label_set!(
    /// A monthly-partitioned table whose future coverage is watched.
    CoverageTable { EventLog => "event_log", Snapshots => "snapshots" }
);

/// Batch commit time. A caught-up batch of a few events commits in about a
/// millisecond, a full default batch (500) in tens of milliseconds; seconds
/// mean lock waits or a struggling database, and 10 s is where to page.
const BATCH_DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Events per batch, spanning ROBSON_BATCH_SIZE's range (1–10000) with the
/// default (500) as an edge, so "full batches" (a backlog) stand out.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// This process's event counters summed over their labels (for the
/// console's throughput, `daemon::trend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTotals {
    pub applied: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
}

/// Every metric of the daemon, registered in `registry`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    events_applied: IntCounterVec,
    events_skipped: IntCounterVec,
    events_dead_lettered: IntCounterVec,
    projection_checkpoint: IntGaugeVec,
    actor_restarts: IntCounterVec,
    poller_wakeups: IntCounterVec,
    db_errors: IntCounterVec,
    grouped_batches: IntCounterVec,
    partition_coverage_months: IntGaugeVec,
    /// Committed events not yet projected, excluding those held behind parked streams.
    pub projection_lag_events: IntGauge,
    /// Age of the oldest unprojected event; 0 when caught up.
    pub projection_lag_seconds: Gauge,
    pub eventlog_head_position: IntGauge,
    pub parked_streams: IntGauge,
    /// Events waiting behind parked streams.
    pub held_events: IntGauge,
    /// How long committed events have waited behind an open transaction.
    pub read_blocked_seconds: Gauge,
    pub batch_duration_seconds: Histogram,
    pub batch_size: Histogram,
    pub partitions_owned: IntGauge,
    /// Completed partition-ownership rounds (one a second while alive).
    pub ownership_rounds: IntCounter,
    pub heartbeat_age_seconds: Gauge,
    /// 1 while the database answers, 0 otherwise.
    pub database_up: IntGauge,
    /// Streams the drift check compared to the end (clean or not).
    pub verify_checked_streams: IntCounter,
    /// Streams the drift check found different from the log (each time).
    pub verify_mismatched_streams: IntCounter,
    /// Streams whose last drift check found a difference (standing).
    pub verify_mismatched_streams_now: IntGauge,
    /// When the last drift-check run ended (Unix seconds; 0 before any).
    pub verify_last_run_timestamp_seconds: Gauge,
}

impl Metrics {
    /// Registers every metric, with each known label value (and partitions
    /// `0..partitions`) already at 0.
    pub fn new(partitions: usize) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let m = Self {
            events_applied: counter_vec(
                r,
                "robson_events_applied_total",
                "Events whose effect was applied, by partition.",
                "partition",
            )?,
            events_skipped: counter_vec(
                r,
                "robson_events_skipped_total",
                "Events passed over without effect, by reason.",
                "reason",
            )?,
            events_dead_lettered: counter_vec(
                r,
                "robson_events_dead_lettered_total",
                "Events recorded as dead letters, by error kind.",
                "error_kind",
            )?,
            projection_checkpoint: gauge_vec(
                r,
                "robson_projection_checkpoint",
                "Global position of each partition's checkpoint.",
                "partition",
            )?,
            actor_restarts: counter_vec(
                r,
                "robson_actor_restarts_total",
                "Actor restarts by the supervisor, by actor kind.",
                "actor",
            )?,
            poller_wakeups: counter_vec(
                r,
                "robson_poller_wakeups_total",
                "Poller wake-ups, by source (notify or poll).",
                "source",
            )?,
            db_errors: counter_vec(
                r,
                "robson_db_errors_total",
                "Database errors, by kind (transient or permanent).",
                "kind",
            )?,
            grouped_batches: counter_vec(
                r,
                "robson_grouped_batches_total",
                "Small batches handed to a group transaction, by outcome (committed with the group, or alone after all).",
                "outcome",
            )?,
            partition_coverage_months: gauge_vec(
                r,
                "robson_partition_coverage_months",
                "Future monthly partitions that exist, by table.",
                "table",
            )?,
            projection_lag_events: register(
                r,
                IntGauge::new(
                    "robson_projection_lag_events",
                    "Committed events not yet projected, excluding held events.",
                )?,
            )?,
            projection_lag_seconds: register(
                r,
                Gauge::new(
                    "robson_projection_lag_seconds",
                    "Age of the oldest unprojected event in seconds; 0 when caught up.",
                )?,
            )?,
            eventlog_head_position: register(
                r,
                IntGauge::new(
                    "robson_eventlog_head_position",
                    "Highest committed global position in the event log.",
                )?,
            )?,
            parked_streams: register(
                r,
                IntGauge::new("robson_parked_streams", "Streams parked on a poison event.")?,
            )?,
            held_events: register(
                r,
                IntGauge::new(
                    "robson_held_events",
                    "Events waiting behind parked streams.",
                )?,
            )?,
            read_blocked_seconds: register(
                r,
                Gauge::new(
                    "robson_read_blocked_seconds",
                    "Seconds committed events have waited behind an open transaction (0 when none does).",
                )?,
            )?,
            batch_duration_seconds: histogram(
                r,
                "robson_batch_duration_seconds",
                "Time to project and commit one batch.",
                BATCH_DURATION_BUCKETS,
            )?,
            batch_size: histogram(
                r,
                "robson_batch_size",
                "Events in one projected batch.",
                BATCH_SIZE_BUCKETS,
            )?,
            partitions_owned: register(
                r,
                IntGauge::new(
                    "robson_partitions_owned",
                    "Stream partitions this instance projects.",
                )?,
            )?,
            ownership_rounds: register(
                r,
                IntCounter::new(
                    "robson_ownership_rounds_total",
                    "Partition-ownership rounds completed (one a second while the instance shares partitions).",
                )?,
            )?,
            heartbeat_age_seconds: register(
                r,
                Gauge::new(
                    "robson_heartbeat_age_seconds",
                    "Seconds since the poller and every owned projector last completed a cycle.",
                )?,
            )?,
            database_up: register(
                r,
                IntGauge::new(
                    "robson_database_up",
                    "1 while the database answers, 0 otherwise.",
                )?,
            )?,
            verify_checked_streams: register(
                r,
                IntCounter::new(
                    "robson_verify_checked_streams_total",
                    "Streams the drift check re-projected and compared with the live rows.",
                )?,
            )?,
            verify_mismatched_streams: register(
                r,
                IntCounter::new(
                    "robson_verify_mismatched_streams_total",
                    "Stream checks that found live rows differing from the log.",
                )?,
            )?,
            verify_mismatched_streams_now: register(
                r,
                IntGauge::new(
                    "robson_verify_mismatched_streams",
                    "Streams whose last drift check found a difference.",
                )?,
            )?,
            verify_last_run_timestamp_seconds: register(
                r,
                Gauge::new(
                    "robson_verify_last_run_timestamp_seconds",
                    "When the last drift-check run ended, in Unix seconds (0 before the first).",
                )?,
            )?,
            registry,
        };
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        for partition in 0..partitions {
            m.events_applied(partition);
            m.projection_checkpoint(partition);
        }
        // Looking a child up creates its series at 0.
        for &reason in SkipReason::ALL {
            m.events_skipped(reason);
        }
        for &kind in ErrorKind::ALL {
            m.events_dead_lettered(kind);
        }
        for &actor in Actor::ALL {
            m.actor_restarts(actor);
        }
        for &source in WakeupSource::ALL {
            m.poller_wakeups(source);
        }
        for &kind in DbErrorKind::ALL {
            m.db_errors(kind);
        }
        for &table in CoverageTable::ALL {
            m.partition_coverage_months(table);
        }
        for &verdict in GroupVerdict::ALL {
            m.grouped_batches(verdict);
        }
        Ok(m)
    }

    pub fn events_applied(&self, partition: usize) -> IntCounter {
        self.events_applied
            .with_label_values(&[&partition.to_string()])
    }

    pub fn events_skipped(&self, reason: SkipReason) -> IntCounter {
        self.events_skipped.with_label_values(&[reason.as_str()])
    }

    /// By the dead letter's `error_kind` (SPEC §3.3), spelled as stored.
    pub fn events_dead_lettered(&self, kind: ErrorKind) -> IntCounter {
        self.events_dead_lettered
            .with_label_values(&[kind.as_str()])
    }

    pub fn projection_checkpoint(&self, partition: usize) -> IntGauge {
        self.projection_checkpoint
            .with_label_values(&[&partition.to_string()])
    }

    pub fn actor_restarts(&self, actor: Actor) -> IntCounter {
        self.actor_restarts.with_label_values(&[actor.as_str()])
    }

    pub fn poller_wakeups(&self, source: WakeupSource) -> IntCounter {
        self.poller_wakeups.with_label_values(&[source.as_str()])
    }

    pub fn db_errors(&self, kind: DbErrorKind) -> IntCounter {
        self.db_errors.with_label_values(&[kind.as_str()])
    }

    pub fn grouped_batches(&self, verdict: GroupVerdict) -> IntCounter {
        self.grouped_batches.with_label_values(&[verdict.as_str()])
    }

    pub fn partition_coverage_months(&self, table: CoverageTable) -> IntGauge {
        self.partition_coverage_months
            .with_label_values(&[table.as_str()])
    }

    /// The event counters, each summed over its label values.
    pub fn event_totals(&self) -> EventTotals {
        EventTotals {
            applied: counter_sum(&self.events_applied),
            skipped: counter_sum(&self.events_skipped),
            dead_lettered: counter_sum(&self.events_dead_lettered),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %error, "Failed to encode metrics.");
        }
        // The text encoder writes only UTF-8 (names, labels and numbers).
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

fn counter_sum(counters: &IntCounterVec) -> u64 {
    use prometheus::core::Collector as _;
    counters
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntCounterVec, prometheus::Error> {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), &[label])?,
    )
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntGaugeVec, prometheus::Error> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), &[label])?)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, prometheus::Error> {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?,
    )
}

#[cfg(test)]
mod tests;
