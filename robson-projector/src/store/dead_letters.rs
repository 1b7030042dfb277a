//! Recording failed events in `projection_dead_letters` (SPEC §4.3). A
//! repeated failure of the same event (after a retry) bumps `attempts` and
//! replaces the error instead of adding a row; each letter learns which of
//! the two happened ([`DeadLetter::new_row`]), so that counts of dead letters
//! count rows, not attempts.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{DeadLetter, PoisonPolicy};

/// Records the dead letters of a batch in one statement. Under
/// [`PoisonPolicy::Skip`] they are resolved as `skipped` at once; under
/// [`PoisonPolicy::Park`] they stay unresolved until an operator acts.
pub async fn record(
    conn: &mut PgConnection,
    letters: &mut [DeadLetter],
    policy: PoisonPolicy,
) -> Result<(), sqlx::Error> {
    if letters.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<Uuid> = letters.iter().map(|d| d.event_id).collect();
    let tenant_ids: Vec<Uuid> = letters.iter().map(|d| d.tenant_id).collect();
    let stream_keys: Vec<&str> = letters.iter().map(|d| d.stream_key.as_str()).collect();
    let seqs: Vec<i64> = letters.iter().map(|d| d.seq).collect();
    let positions: Vec<i64> = letters.iter().map(|d| d.global_position).collect();
    let event_types: Vec<&str> = letters.iter().map(|d| d.event_type.as_str()).collect();
    let kinds: Vec<&str> = letters.iter().map(|d| d.error_kind.as_str()).collect();
    let errors: Vec<&str> = letters.iter().map(|d| d.error.as_str()).collect();
    let resolution = match policy {
        PoisonPolicy::Park => None,
        PoisonPolicy::Skip => Some("skipped"),
    };
    // `xmax = 0` holds for a row this statement inserted, not for one it
    // updated on conflict.
    let inserted: Vec<(Uuid, bool)> = sqlx::query_as(
        r#"
        INSERT INTO projection_dead_letters AS d
               (event_id, tenant_id, stream_key, seq, global_position, event_type,
                error_kind, error, resolution, resolved_at)
        SELECT u.event_id, u.tenant_id, u.stream_key, u.seq, u.global_position, u.event_type,
               u.error_kind, u.error, $9::text, CASE WHEN $9::text IS NULL THEN NULL ELSE now() END
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], $6::text[],
                      $7::text[], $8::text[])
               AS u(event_id, tenant_id, stream_key, seq, global_position, event_type, error_kind, error)
        ON CONFLICT (event_id) DO UPDATE
           SET attempts = d.attempts + 1,
               error_kind = EXCLUDED.error_kind,
               error = EXCLUDED.error,
               failed_at = now(),
               resolution = EXCLUDED.resolution,
               resolved_at = EXCLUDED.resolved_at
        RETURNING d.event_id, (d.xmax = 0)
        "#,
    )
    .bind(&event_ids)
    .bind(&tenant_ids)
    .bind(&stream_keys)
    .bind(&seqs)
    .bind(&positions)
    .bind(&event_types)
    .bind(&kinds)
    .bind(&errors)
    .bind(resolution)
    .fetch_all(conn)
    .await?;
    for letter in letters.iter_mut() {
        letter.new_row = inserted
            .iter()
            .any(|(id, new)| *id == letter.event_id && *new);
    }
    Ok(())
}
