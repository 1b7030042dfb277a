//! Unit tests of `metrics`.

use super::*;

#[test]
fn every_series_exists_right_after_startup() {
    let text = Metrics::new(4).expect("metrics").render();
    let expected = [
        ("robson_events_applied_total", "counter"),
        ("robson_events_skipped_total", "counter"),
        ("robson_events_dead_lettered_total", "counter"),
        ("robson_projection_checkpoint", "gauge"),
        ("robson_projection_lag_events", "gauge"),
        ("robson_projection_lag_seconds", "gauge"),
        ("robson_eventlog_head_position", "gauge"),
        ("robson_parked_streams", "gauge"),
        ("robson_held_events", "gauge"),
        ("robson_read_blocked_seconds", "gauge"),
        ("robson_batch_duration_seconds", "histogram"),
        ("robson_batch_size", "histogram"),
        ("robson_actor_restarts_total", "counter"),
        ("robson_poller_wakeups_total", "counter"),
        ("robson_db_errors_total", "counter"),
        ("robson_partition_coverage_months", "gauge"),
        ("robson_partitions_owned", "gauge"),
        ("robson_heartbeat_age_seconds", "gauge"),
        ("robson_database_up", "gauge"),
    ];
    for (name, kind) in expected {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "no {kind} {name} in\n{text}"
        );
    }
    let series = [
        "robson_events_applied_total{partition=\"3\"} 0",
        "robson_projection_checkpoint{partition=\"0\"} 0",
        "robson_events_skipped_total{reason=\"poison_skipped\"} 0",
        "robson_events_dead_lettered_total{error_kind=\"invariant_violation\"} 0",
        "robson_actor_restarts_total{actor=\"poller\"} 0",
        "robson_poller_wakeups_total{source=\"notify\"} 0",
        "robson_db_errors_total{kind=\"transient\"} 0",
        "robson_partition_coverage_months{table=\"snapshots\"} 0",
        "robson_batch_duration_seconds_bucket{le=\"0.0005\"} 0",
        "robson_batch_size_bucket{le=\"10000\"} 0",
        "robson_read_blocked_seconds 0",
    ];
    for line in series {
        assert!(
            text.contains(&format!("\n{line}\n")),
            "no `{line}` in\n{text}"
        );
    }
    assert!(!text.contains("partition=\"4\""), "only partitions 0..4");
    #[cfg(target_os = "linux")]
    assert!(
        text.contains("\nprocess_resident_memory_bytes "),
        "no process collector in\n{text}"
    );
}

#[test]
fn instances_have_separate_registries() {
    let (a, b) = (
        Metrics::new(1).expect("first"),
        Metrics::new(1).expect("second"),
    );
    a.events_skipped(SkipReason::AlreadyApplied).inc_by(3);
    a.database_up.set(1);
    assert!(a
        .render()
        .contains("robson_events_skipped_total{reason=\"already_applied\"} 3"));
    assert!(b.render().contains("robson_database_up 0"));
}

#[test]
fn event_totals_sum_every_label_value() {
    let m = Metrics::new(3).expect("metrics");
    m.events_applied(0).inc_by(5);
    m.events_applied(2).inc_by(7);
    m.events_skipped(SkipReason::UnhandledType).inc();
    m.events_skipped(SkipReason::PoisonSkipped).inc_by(2);
    m.events_dead_lettered(robson_projector::ErrorKind::InvalidPayload)
        .inc();
    assert_eq!(
        m.event_totals(),
        EventTotals {
            applied: 12,
            skipped: 3,
            dead_lettered: 1
        }
    );
}
