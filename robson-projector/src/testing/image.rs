//! The projection read back in the fixtures' format: the SPEC §3.2
//! columns in order, event ids as `stream_key#seq`, decimals as text with 8
//! places, timestamps as RFC 3339 UTC with 6 places; rows sorted so that a
//! comparison ignores row order.

use serde_json::Value;
use sqlx::PgPool;

use crate::tables::READ_MODELS;

/// The JSON expression of one column, chosen by its SQL type; the columns
/// holding an event id become `stream_key#seq`.
fn expression(column: &str, data_type: &str) -> String {
    match (column, data_type) {
        ("last_event_id" | "fill_id", _) => format!(
            "to_jsonb((SELECT k.stream_key || '#' || k.seq FROM event_log_keys k WHERE k.event_id = {column}))"
        ),
        (_, t) if t.starts_with("numeric") => format!("to_jsonb({column}::text)"),
        (_, "timestamp with time zone") => format!(
            "to_jsonb(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
        ),
        _ => format!("to_jsonb({column})"),
    }
}

/// The rows of every projection table, each table sorted canonically.
pub async fn tables(pool: &PgPool) -> Value {
    let mut out = serde_json::Map::new();
    for spec in READ_MODELS {
        let pairs: Vec<String> = spec
            .columns
            .iter()
            .filter(|c| c.in_spec)
            .map(|c| format!("'{}', {}", c.name, expression(c.name, c.sql_type)))
            .collect();
        let (table, pairs) = (spec.name, pairs.join(", "));
        let sql = format!("SELECT jsonb_build_object({pairs}) FROM {table}");
        let rows: Vec<Value> = sqlx::query_scalar(&sql)
            .fetch_all(pool)
            .await
            .expect("read table");
        out.insert(table.to_string(), Value::Array(sorted(rows)));
    }
    Value::Object(out)
}

/// Dead letters as in the fixtures (event, tenant_id, stream_key, seq,
/// event_type, error_kind), sorted.
pub async fn dead_letters(pool: &PgPool) -> Vec<Value> {
    let rows: Vec<Value> = sqlx::query_scalar(
        r#"
        SELECT jsonb_build_object(
                 'event', d.stream_key || '#' || d.seq, 'tenant_id', d.tenant_id,
                 'stream_key', d.stream_key, 'seq', d.seq, 'event_type', d.event_type,
                 'error_kind', d.error_kind)
          FROM projection_dead_letters d
        "#,
    )
    .fetch_all(pool)
    .await
    .expect("read dead letters");
    sorted(rows)
}

/// Rows sorted by their JSON text: the comparison ignores row order.
pub fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_cached_key(|row| row.to_string());
    rows
}

/// The streams waiting behind a dead letter, sorted.
pub async fn parked_streams(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        r#"SELECT stream_key FROM projection_stream_progress WHERE parked_seq IS NOT NULL
            ORDER BY stream_key COLLATE "C""#,
    )
    .fetch_all(pool)
    .await
    .expect("read parked streams")
}

/// Everything a projection run produces, for comparing runs.
pub async fn state(pool: &PgPool) -> Value {
    serde_json::json!({
        "tables": tables(pool).await,
        "dead_letters": dead_letters(pool).await,
        "parked_streams": parked_streams(pool).await,
    })
}

/// The first difference between two table sets, for readable failures.
pub fn first_difference(actual: &Value, expected: &Value) -> Option<String> {
    for table in READ_MODELS.iter().map(|t| t.name) {
        let (a, e) = (&actual[table], &expected[table]);
        if a == e {
            continue;
        }
        let empty = Vec::new();
        let a_rows = a.as_array().unwrap_or(&empty);
        let e_rows = e.as_array().unwrap_or(&empty);
        let missing: Vec<&Value> = e_rows
            .iter()
            .filter(|row| !a_rows.contains(row))
            .take(2)
            .collect();
        let extra: Vec<&Value> = a_rows
            .iter()
            .filter(|row| !e_rows.contains(row))
            .take(2)
            .collect();
        return Some(format!(
            "{table}: {} rows, expected {}\n  expected but missing: {missing:#?}\n  present but not expected: {extra:#?}",
            a_rows.len(),
            e_rows.len()
        ));
    }
    None
}
