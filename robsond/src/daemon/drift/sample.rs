//! Which streams a drift run checks: half the sample (rounded up) among
//! the streams that changed last — found from the tail of `event_log`,
//! newest first — and the rest at random among every projected stream
//! (`TABLESAMPLE SYSTEM` on `projection_stream_progress`, sized from the
//! table's statistics so that it reads about four times the pages needed,
//! never the whole table unless it is small), then every stream still
//! standing as a mismatch, so that a mismatch is confirmed or cleared by
//! the next run. Nothing here reads in proportion to the log.

use sqlx::PgConnection;

/// The streams to check, without duplicates: recent, random, standing.
pub async fn pick(
    conn: &mut PgConnection,
    sample: usize,
    standing: Vec<String>,
) -> Result<Vec<String>, sqlx::Error> {
    let recent_wanted = sample.div_ceil(2);
    let mut picked = recently_changed(&mut *conn, recent_wanted).await?;
    let random = at_random(&mut *conn, sample).await?;
    for key in random {
        if picked.len() >= sample {
            break;
        }
        if !picked.contains(&key) {
            picked.push(key);
        }
    }
    for key in standing {
        if !picked.contains(&key) {
            picked.push(key);
        }
    }
    Ok(picked)
}

/// Projected streams of the last events appended, newest first.
async fn recently_changed(
    conn: &mut PgConnection,
    wanted: usize,
) -> Result<Vec<String>, sqlx::Error> {
    if wanted == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        r#"
        SELECT r.stream_key FROM (
            SELECT t.stream_key, max(t.global_position) AS at
              FROM (SELECT stream_key, global_position FROM event_log
                     ORDER BY global_position DESC LIMIT $2) t
             GROUP BY t.stream_key) r
          JOIN projection_stream_progress p ON p.stream_key = r.stream_key
         ORDER BY r.at DESC LIMIT $1
        "#,
    )
    .bind(wanted as i64)
    .bind((wanted as i64).saturating_mul(8))
    .fetch_all(conn)
    .await
}

/// Up to `wanted` projected streams at random.
async fn at_random(conn: &mut PgConnection, wanted: usize) -> Result<Vec<String>, sqlx::Error> {
    let (rows, pages): (f64, f64) = sqlx::query_as(
        r#"
        SELECT c.reltuples::float8,
               (pg_relation_size(c.oid) / current_setting('block_size')::int)::float8
          FROM pg_class c WHERE c.oid = 'projection_stream_progress'::regclass
        "#,
    )
    .fetch_one(&mut *conn)
    .await?;
    let percent = sample_percent(rows, pages, wanted);
    sqlx::query_scalar(
        "SELECT stream_key FROM projection_stream_progress TABLESAMPLE SYSTEM ($1::float4)
          ORDER BY random() LIMIT $2",
    )
    .bind(percent as f32)
    .bind(wanted as i64)
    .fetch_all(conn)
    .await
}

/// The share of the table's pages to read for `wanted` rows: about four
/// times what is needed, everything for a small table. `rows` is the
/// planner's estimate (negative before the first ANALYZE: then the pages
/// are counted at 50 rows each).
fn sample_percent(rows: f64, pages: f64, wanted: usize) -> f64 {
    let rows = if rows > 0.0 { rows } else { pages * 50.0 };
    let wanted = wanted as f64;
    if rows <= wanted * 20.0 {
        return 100.0;
    }
    (wanted * 4.0 / rows * 100.0).clamp(0.0001, 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_table_is_read_whole_and_a_large_one_in_proportion_to_the_sample() {
        assert_eq!(sample_percent(1_000.0, 10.0, 200), 100.0);
        assert_eq!(sample_percent(-1.0, 2.0, 200), 100.0);
        let p = sample_percent(10_000_000.0, 100_000.0, 200);
        assert!((p - 0.008).abs() < 1e-9, "{p}");
    }
}
