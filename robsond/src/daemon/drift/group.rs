//! Checking a group of streams in one snapshot: most sampled streams are
//! short (an order's 1–6 events), and checking each alone cost about ten
//! statements (its progress, its events, its fills, its rows, a snapshot
//! of its own) — two thousand per run of 200 streams, most of the run's
//! cost. A group of up to [`GROUP`] streams is checked with one statement
//! of each kind for all of them, in one repeatable-read, read-only
//! transaction: their progress, their events up to it (at most [`SHORT`]
//! per stream, so a group read holds at most `GROUP × SHORT` events, one
//! page), the live fills of the fills folded, the live rows of every key
//! folded, the fill counts of every order. Everything is read in the
//! snapshot the rows are compared in, so a stream of the group is never
//! "moving".
//!
//! A stream with more than [`SHORT`] events left to fold (a long stream,
//! not resumed or far on since) is checked alone afterwards
//! ([`super::check`]: folded page by page outside a snapshot), from the
//! fold it already has.

use std::collections::BTreeMap;

use robson_eventlog::{event_columns, EventEnvelope, EventRow};
use robson_projector::fold::Keys;
use robson_projector::rows::{FillRow, OrderKey};
use sqlx::{Connection as _, PgConnection};

use super::check::{self, Checked, Limits, Replay, Resume, Stop, Verdict};

/// Streams checked together. A group's statements are one burst of work
/// beside the projectors' (on a machine short of CPU, every probe that
/// falls in it waits): ten keeps each burst short. With 50, the drift
/// phase's p99 under load came out 1.24 and 1.30 times the check-off runs'
/// in two runs, with 10 1.18 and 1.07 (docs/performance.md, runs 12–15).
pub const GROUP: usize = 10;

/// Events left to fold for a stream to be folded in the group's snapshot.
pub const SHORT: i64 = 10;

/// What the check of a group found: one [`Checked`] per stream, in order,
/// and the most events held at once (a group read, or a page of a stream
/// checked alone).
#[derive(Debug)]
pub struct GroupChecked {
    pub checked: Vec<Checked>,
    pub largest_read: usize,
}

/// Checks `streams` (each with the fold to resume from, if any) on `conn`
/// (outside any transaction). A database error fails the whole group.
pub async fn check_group(
    conn: &mut PgConnection,
    streams: Vec<(&str, Option<Resume>)>,
    limits: Limits,
) -> Result<GroupChecked, sqlx::Error> {
    let mut replays = Vec::with_capacity(streams.len());
    for (key, resume) in streams {
        let mut replay = Replay::new(key, limits);
        if let Some(resume) = resume {
            replay.resume(conn, resume).await?;
        }
        replays.push(replay);
    }
    let mut outcomes: Vec<Option<Result<Verdict, Stop>>> =
        (0..replays.len()).map(|_| None).collect();
    let mut alone = Vec::new();

    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let keys: Vec<&str> = replays.iter().map(|r| r.stream_key()).collect();
    let progress = progress_of(&mut tx, &keys).await?;
    let mut wanted = Vec::new();
    for (i, replay) in replays.iter().enumerate() {
        match progress.get(replay.stream_key()).copied() {
            None => outcomes[i] = Some(Err(Stop::no_progress())),
            Some(upto) if upto < replay.folded_to => {
                outcomes[i] = Some(Err(Stop::went_back(replay.folded_to, upto)));
            }
            Some(upto) if upto - replay.folded_to > SHORT => alone.push(i),
            Some(upto) if upto > replay.folded_to => wanted.push((i, replay.folded_to, upto)),
            Some(_) => {}
        }
    }
    let mut pages = read_streams(&mut tx, &keys, &wanted).await?;
    let largest_read = pages.values().map(Vec::len).sum::<usize>();
    for &(i, _, _) in &wanted {
        let page = pages.remove(&i).unwrap_or_default();
        if let Err(stop) = replays[i].apply_page(&page) {
            outcomes[i] = Some(Err(stop));
        }
    }
    let folded: Vec<usize> = (0..replays.len())
        .filter(|i| outcomes[*i].is_none() && !alone.contains(i))
        .collect();

    let fills: Vec<(usize, Vec<FillRow>)> = folded
        .iter()
        .map(|&i| (i, replays[i].take_fills()))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let all: Vec<FillRow> = fills.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    if !all.is_empty() {
        let live = check::live_fills(&mut tx, &all).await?;
        for (i, own) in &fills {
            replays[*i].compare_fills(own, &live);
        }
    }
    let mut union = Keys::default();
    for &i in &folded {
        let k = &replays[i].keys;
        union.orders.extend(k.orders.iter().cloned());
        union.positions.extend(k.positions.iter().cloned());
        union.balances.extend(k.balances.iter().cloned());
        union.risks.extend(k.risks.iter().cloned());
        union.strategies.extend(k.strategies.iter().cloned());
    }
    let live = robson_projector::load_rows(&mut tx, &union).await?;
    let orders: Vec<OrderKey> = union.orders.iter().copied().collect();
    let counts = check::fill_counts(&mut tx, &orders).await?;
    tx.commit().await?;
    for &i in &folded {
        let diffs = replays[i].finish(&live, &counts);
        outcomes[i] = Some(Ok(if diffs.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Differs(diffs)
        }));
    }

    for &i in &alone {
        outcomes[i] = Some(replays[i].run(conn).await);
    }
    let mut checked = Vec::with_capacity(replays.len());
    for (replay, outcome) in replays.into_iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| Err(Stop::Unchecked("not checked".into())));
        checked.push(replay.checked(outcome)?);
    }
    let largest_read = checked
        .iter()
        .map(|c| c.largest_page)
        .fold(largest_read, usize::max);
    Ok(GroupChecked {
        checked,
        largest_read,
    })
}

/// The `last_seq` of those of `keys` that have a progress row.
async fn progress_of(
    conn: &mut PgConnection,
    keys: &[&str],
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_key, last_seq FROM projection_stream_progress WHERE stream_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

#[derive(sqlx::FromRow)]
struct GroupEvent {
    #[sqlx(flatten)]
    event: EventRow,
    skipped: bool,
    /// The index of the stream in the group.
    n: i64,
}

/// For each `(i, after, upto)` of `wanted`, the events of stream
/// `keys[i]` with `after < seq <= upto` (at most [`SHORT`]), in seq
/// order, each with whether it was skipped; by `i`.
async fn read_streams(
    conn: &mut PgConnection,
    keys: &[&str],
    wanted: &[(usize, i64, i64)],
) -> Result<BTreeMap<usize, Vec<(EventEnvelope, bool)>>, sqlx::Error> {
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let streams: Vec<&str> = wanted.iter().map(|&(i, _, _)| keys[i]).collect();
    let index: Vec<i64> = wanted.iter().map(|&(i, _, _)| i as i64).collect();
    let after: Vec<i64> = wanted.iter().map(|w| w.1).collect();
    let upto: Vec<i64> = wanted.iter().map(|w| w.2).collect();
    let sql = format!(
        r#"
        SELECT e.*, k.n FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                             AS k(stream_key, n, after, upto)
         CROSS JOIN LATERAL (
            SELECT {columns}, coalesce(d.resolution = 'skipped', false) AS skipped
              FROM event_log e
              LEFT JOIN projection_dead_letters d ON d.event_id = e.event_id
             WHERE e.stream_key = k.stream_key AND e.seq > k.after AND e.seq <= k.upto
             ORDER BY e.seq LIMIT $5) e
         ORDER BY k.n, e.seq
        "#,
        columns = event_columns("e"),
    );
    let rows: Vec<GroupEvent> = sqlx::query_as(&sql)
        .bind(&streams)
        .bind(&index)
        .bind(&after)
        .bind(&upto)
        .bind(SHORT)
        .fetch_all(conn)
        .await?;
    let mut pages: BTreeMap<usize, Vec<(EventEnvelope, bool)>> = BTreeMap::new();
    for row in rows {
        pages
            .entry(row.n as usize)
            .or_default()
            .push((EventEnvelope::from(row.event), row.skipped));
    }
    Ok(pages)
}
