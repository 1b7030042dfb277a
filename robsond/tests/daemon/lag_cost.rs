//! The lag sample (`/health`, `/metrics`, `status`) costs in proportion to
//! the lag, never to the number of streams: with 100,000 streams projected
//! and a few thousand events waiting, its plan probes progress and streams
//! by key and scans neither table.

use robsond::progress::lag::{sample, LAG_COUNT_CAP, SAMPLE_SQL};

use crate::support::{append_flows, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_lag_sample_probes_streams_by_key_whatever_their_number() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO projection_stream_progress (stream_key, tenant_id, last_seq)
         SELECT 'order:' || g, gen_random_uuid(), 1 FROM generate_series(1, 100000) AS g",
    )
    .execute(&db.pool)
    .await
    .expect("progress rows");
    let waiting = append_flows(&db.pool, 5, 3_000).await as i64;
    sqlx::query("ANALYZE")
        .execute(&db.pool)
        .await
        .expect("analyze");

    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {SAMPLE_SQL}"))
        .bind(LAG_COUNT_CAP)
        .bind(1_000_i64)
        .fetch_all(&db.pool)
        .await
        .expect("explain the lag sample");
    let plan = plan.join("\n");
    for table in ["projection_stream_progress", "event_streams", "event_log"] {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "the lag sample scans {table}:\n{plan}"
        );
    }

    let lag = sample(&db.pool).await.expect("sample");
    assert_eq!(
        lag.lag_events, waiting,
        "every appended event is unprojected"
    );
}
