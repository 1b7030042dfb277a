//! Complete images of the projection: every row of the six read models
//! (all columns), per-stream progress and dead letters (every column that
//! is derived from the log or from an operator's decision; not the
//! wall-clock ones), so that two projections can be compared exactly.

use std::collections::{BTreeMap, BTreeSet};

use robson_projector::tables::READ_MODELS;
use sqlx::PgPool;

/// Table name → its rows as JSON text, sorted.
pub type Image = BTreeMap<String, Vec<String>>;

pub async fn image(pool: &PgPool) -> Image {
    let mut image = Image::new();
    for table in READ_MODELS.iter().map(|t| t.name) {
        let sql = format!("SELECT to_jsonb(t)::text AS j FROM {table} t ORDER BY j");
        image.insert(table.into(), rows(pool, &sql).await);
    }
    let progress = "SELECT jsonb_build_array(stream_key, tenant_id, last_seq, last_event_id, \
        last_position, parked_seq, resume_requested)::text AS j \
        FROM projection_stream_progress ORDER BY j";
    image.insert(
        "projection_stream_progress".into(),
        rows(pool, progress).await,
    );
    let dead_letters = "SELECT jsonb_build_array(event_id, tenant_id, stream_key, seq, \
        global_position, event_type, error_kind, error, attempts, resolution)::text AS j \
        FROM projection_dead_letters ORDER BY j";
    image.insert(
        "projection_dead_letters".into(),
        rows(pool, dead_letters).await,
    );
    image
}

async fn rows(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rows in the image.
pub fn row_count(image: &Image) -> usize {
    image.values().map(Vec::len).sum()
}

/// Asserts that two images are the same, naming the first differing rows.
pub fn assert_same(expected: &Image, actual: &Image, what: &str) {
    let mut report = Vec::new();
    for (table, rows) in expected {
        let other = actual.get(table).cloned().unwrap_or_default();
        if *rows == other {
            continue;
        }
        let (mine, theirs): (BTreeSet<&String>, BTreeSet<&String>) =
            (rows.iter().collect(), other.iter().collect());
        let missing: Vec<_> = mine.difference(&theirs).take(3).collect();
        let extra: Vec<_> = theirs.difference(&mine).take(3).collect();
        report.push(format!(
            "{table}: {} rows expected, {} found\n  missing: {missing:#?}\n  unexpected: {extra:#?}",
            rows.len(),
            other.len()
        ));
    }
    assert!(report.is_empty(), "{what}:\n{}", report.join("\n"));
}
