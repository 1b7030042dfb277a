//! Streams that park, for the console: one to skip, one to retry once its
//! cause is fixed, and one whose key and error text hold markup.

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{append_all, event, wait_for_stream, Daemon};

/// The admin token of the daemon under test.
pub const TOKEN: &str = "console-token-7d1e93b0c4";

pub const PARKED_SEQ: &str =
    "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress WHERE stream_key = $1";
pub const LAST_SEQ: &str = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";

/// Markup in a payload value, echoed by the projector's error text.
pub const HTML_SIDE: &str =
    "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=3\">";

#[derive(Debug)]
pub struct Corpus {
    /// Parked on seq 1: an ORDER_ACKED before its ORDER_SUBMITTED.
    pub skip_key: String,
    /// Parked on seq 2: a fill quantity with 9 fractional digits.
    pub retry_key: String,
    /// Parked on seq 1: a side that is markup, in a key with markup.
    pub html_key: String,
}

fn order(order: Uuid, side: &str) -> Value {
    json!({
        "order_id": order, "account_id": Uuid::new_v4(),
        "client_order_id": format!("console-{order}"), "symbol": "ETHUSDT",
        "side": side, "order_type": "market", "quantity": "2"
    })
}

impl Corpus {
    pub async fn append(pool: &PgPool) -> Corpus {
        let tenant = Uuid::new_v4();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let skip_key = format!("order:{a}");
        let retry_key = format!("order:{b}");
        let html_key = format!("order:<b>bold</b><img src=x onerror=\"window.__pwned=2\">{c}");
        let fill = json!({
            "order_id": b, "exchange_trade_id": "console-t1", "fill_price": "3000.5",
            "fill_quantity": "0.123456789", "fee": "0.1", "fee_asset": "USDT"
        });
        let ack = |id: &str| json!({"order_id": a, "exchange_order_id": id});
        let events = [
            event(tenant, &skip_key, "ORDER_ACKED", ack("x-1")),
            event(tenant, &skip_key, "ORDER_SUBMITTED", order(a, "buy")),
            event(tenant, &skip_key, "ORDER_ACKED", ack("x-2")),
            event(tenant, &retry_key, "ORDER_SUBMITTED", order(b, "sell")),
            event(tenant, &retry_key, "FILL_RECEIVED", fill),
            event(
                tenant,
                &retry_key,
                "ORDER_CANCELED",
                json!({"order_id": b, "reason": "user"}),
            ),
            event(tenant, &html_key, "ORDER_SUBMITTED", order(c, HTML_SIDE)),
        ];
        append_all(pool, &events).await;
        Corpus {
            skip_key,
            retry_key,
            html_key,
        }
    }

    /// Each parked stream with the seq it parks on.
    pub fn parked(&self) -> [(&str, i64); 3] {
        [
            (self.skip_key.as_str(), 1),
            (self.retry_key.as_str(), 2),
            (self.html_key.as_str(), 1),
        ]
    }

    /// Waits until the daemon has parked each of the three streams.
    pub async fn wait_parked(&self, pool: &PgPool, daemon: &mut Daemon) {
        for (key, seq) in self.parked() {
            wait_for_stream(pool, daemon, key, PARKED_SEQ, seq).await;
        }
    }

    pub fn all_keys(&self) -> [&str; 3] {
        [&self.skip_key, &self.retry_key, &self.html_key]
    }

    /// What an operator does before Retry here: the producer's bad value
    /// corrected in the log (the fill quantity cut to 8 places).
    pub async fn fix_retry_cause(&self, pool: &PgPool) {
        let fixed = sqlx::query(
            "UPDATE event_log SET payload = jsonb_set(payload, '{fill_quantity}', '\"0.12345678\"')
              WHERE stream_key = $1 AND seq = 2",
        )
        .bind(&self.retry_key)
        .execute(pool)
        .await
        .expect("correct the bad fill");
        assert_eq!(fixed.rows_affected(), 1);
    }
}

/// The resolution of the stream's dead letter (null while it is parked).
pub async fn resolution(pool: &PgPool, key: &str) -> Option<String> {
    sqlx::query_scalar("SELECT resolution FROM projection_dead_letters WHERE stream_key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .expect("one dead letter for the stream")
}

/// The status of the order the stream `key` is about.
pub async fn order_status(pool: &PgPool, key: &str) -> Option<String> {
    let id: Uuid = key
        .rsplit(':')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("an order key");
    sqlx::query_scalar("SELECT status FROM orders_current WHERE order_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("read the order")
}
