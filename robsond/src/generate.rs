//! Realistic trading flows for demos, tests and benchmarks (`robsond
//! generate`): per order, a strategy and a position around it, the order
//! with its ack, partial and complete fills (sometimes a repeated exchange
//! report), rejects and cancels after partial fills, balance samples, risk
//! checks, and a few event types the projector does not handle.
//!
//! Deterministic: the same seed gives the same events (ids included), in the
//! same order; timestamps advance from a fixed origin.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use robson_eventlog::Event;
use serde_json::{json, Value};
use uuid::Uuid;

const SYMBOLS: [(&str, i64); 4] = [
    ("BTCUSDT", 6_500_000),
    ("ETHUSDT", 350_000),
    ("SOLUSDT", 15_000),
    ("XRPUSDT", 60),
];

/// A deterministic source of trading flows.
#[derive(Debug)]
pub struct FlowGenerator {
    rng: ChaCha8Rng,
    tenants: Vec<(Uuid, Uuid)>,
    clock: DateTime<Utc>,
    orders: u64,
}

impl FlowGenerator {
    /// `tenants` tenants (each with one account), seeded by `seed`.
    pub fn new(seed: u64, tenants: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tenants = (0..tenants.max(1))
            .map(|_| (uuid_from(&mut rng), uuid_from(&mut rng)))
            .collect();
        FlowGenerator {
            rng,
            tenants,
            // Fixed origin: timestamps are part of the determinism.
            clock: Utc
                .with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
                .single()
                .unwrap_or_default(),
            orders: 0,
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += Duration::milliseconds(self.rng.gen_range(1..50));
        self.clock
    }

    fn event(&mut self, tenant: Uuid, stream: String, ty: &str, payload: Value) -> Event {
        let at = self.tick();
        let mut e = Event::new(tenant, stream, ty, payload, at);
        e.command_id = Some(uuid_from(&mut self.rng));
        e
    }

    /// The events of one more order's flow (5–12 events), in append order.
    pub fn next_flow(&mut self) -> Vec<Event> {
        self.orders += 1;
        let (tenant, account) = self.tenants[self.rng.gen_range(0..self.tenants.len())];
        let (symbol, base_price) = SYMBOLS[self.rng.gen_range(0..SYMBOLS.len())];
        let price_cents = base_price
            + self
                .rng
                .gen_range(-base_price / 50..=base_price / 50)
                .max(1);
        let price = format!("{}.{:02}", price_cents / 100, price_cents % 100);
        let order_id = uuid_from(&mut self.rng);
        let position_id = uuid_from(&mut self.rng);
        let strategy_id = uuid_from(&mut self.rng);
        let order_stream = format!("order:{order_id}");
        let account_stream = format!("account:{account}");
        let mut out = Vec::new();

        if self.rng.gen_bool(0.2) {
            out.push(self.event(
                tenant,
                format!("strategy:{strategy_id}"),
                "STRATEGY_ENABLED",
                json!({
                    "strategy_id": strategy_id, "account_id": account,
                    "strategy_name": format!("trend-{}", self.orders % 7), "strategy_type": "trend",
                    "detector_config": {"timeframe": "1h", "lookback": 20},
                    "risk_config": {"max_position_pct": 2, "stop_atr_mult": "1.50"}
                }),
            ));
            if self.rng.gen_bool(0.3) {
                out.push(self.event(
                    tenant,
                    format!("strategy:{strategy_id}"),
                    "STRATEGY_DISABLED",
                    json!({
                        "strategy_id": strategy_id, "reason": "drawdown"
                    }),
                ));
            }
        }
        let (check_type, check_payload) = if self.rng.gen_bool(0.1) {
            (
                "RISK_CHECK_FAILED",
                json!({"account_id": account, "violation_reason": "daily loss limit", "daily_loss_limit": "500.00", "daily_pnl": "-512.30"}),
            )
        } else {
            (
                "RISK_CHECK_PASSED",
                json!({"account_id": account, "checks_performed": ["exposure", "daily_loss"]}),
            )
        };
        out.push(self.event(tenant, account_stream.clone(), check_type, check_payload));
        out.push(self.event(
            tenant,
            format!("decision:{order_id}"),
            "DECISION_PROPOSED",
            json!({"order_id": order_id, "symbol": symbol}),
        ));

        let quantity_milli: i64 = self.rng.gen_range(2..2000);
        let quantity = milli(quantity_milli);
        let order_type =
            ["market", "limit", "stop_loss", "stop_loss_limit"][self.rng.gen_range(0..4)];
        let mut submitted = json!({
            "order_id": order_id, "account_id": account, "position_id": position_id,
            "client_order_id": format!("gen-{}", self.orders), "symbol": symbol, "side": "buy",
            "order_type": order_type, "quantity": quantity,
        });
        if order_type == "limit" || order_type == "stop_loss_limit" {
            submitted["price"] = json!(price);
        }
        if order_type == "stop_loss" || order_type == "stop_loss_limit" {
            submitted["stop_price"] = json!(price);
        }
        out.push(self.event(tenant, order_stream.clone(), "ORDER_SUBMITTED", submitted));
        if self.rng.gen_bool(0.05) {
            out.push(self.event(
                tenant,
                order_stream,
                "ORDER_REJECTED",
                json!({"order_id": order_id, "reason": "insufficient balance"}),
            ));
            return out;
        }
        let exchange_order_id = self.rng.gen_range(10_000_000u64..99_999_999).to_string();
        out.push(self.event(
            tenant,
            order_stream.clone(),
            "ORDER_ACKED",
            json!({"order_id": order_id, "exchange_order_id": exchange_order_id}),
        ));
        let first = if quantity_milli > 1 {
            self.rng.gen_range(1..quantity_milli)
        } else {
            quantity_milli
        };
        let trade = format!("t-{}", self.rng.gen_range(0u64..u64::MAX / 2));
        let fill = |qty: i64, trade: &str| {
            json!({
                "order_id": order_id, "exchange_trade_id": trade, "fill_price": price,
                "fill_quantity": milli(qty), "fee": "0.01000000", "fee_asset": "USDT", "is_maker": false
            })
        };
        out.push(self.event(
            tenant,
            order_stream.clone(),
            "FILL_RECEIVED",
            fill(first, &trade),
        ));
        if self.rng.gen_bool(0.1) {
            // The exchange reports the same trade again under a new command.
            out.push(self.event(
                tenant,
                order_stream.clone(),
                "FILL_RECEIVED",
                fill(first, &trade),
            ));
        }
        if self.rng.gen_bool(0.1) {
            out.push(self.event(
                tenant,
                order_stream,
                "ORDER_CANCELED",
                json!({"order_id": order_id, "reason": "user"}),
            ));
        } else if first < quantity_milli {
            let trade2 = format!("t-{}", self.rng.gen_range(0u64..u64::MAX / 2));
            out.push(self.event(
                tenant,
                order_stream,
                "FILL_RECEIVED",
                fill(quantity_milli - first, &trade2),
            ));
        }

        let stop_cents = price_cents - price_cents / 20 - 1;
        let stop = format!("{}.{:02}", stop_cents / 100, stop_cents % 100);
        let distance = format!(
            "{}.{:02}",
            (price_cents - stop_cents) / 100,
            (price_cents - stop_cents) % 100
        );
        let position_stream = format!("position:{position_id}");
        out.push(self.event(tenant, position_stream.clone(), "POSITION_OPENED", json!({
            "position_id": position_id, "account_id": account, "strategy_id": strategy_id,
            "symbol": symbol, "side": "long", "entry_price": price, "entry_quantity": quantity,
            "technical_stop_price": stop, "technical_stop_distance": distance, "entry_order_id": order_id
        })));
        if self.rng.gen_bool(0.5) {
            let pnl = self.rng.gen_range(-50_000i64..80_000);
            out.push(self.event(tenant, position_stream, "POSITION_CLOSED", json!({
                "position_id": position_id, "realized_pnl": format!("{}{}.{:02}", if pnl < 0 { "-" } else { "" }, pnl.abs() / 100, pnl.abs() % 100),
                "exit_reason": "target"
            })));
        }
        let free = self.rng.gen_range(0i64..10_000_000);
        out.push(self.event(tenant, account_stream, "BALANCE_SAMPLED", json!({
            "account_id": account, "asset": "USDT", "free": format!("{}.{:02}", free / 100, free % 100), "locked": "0"
        })));
        out
    }

    /// Flows for `orders` orders, concatenated.
    pub fn events(&mut self, orders: u64) -> Vec<Event> {
        (0..orders).flat_map(|_| self.next_flow()).collect()
    }
}

fn milli(q: i64) -> String {
    format!("{}.{:03}", q / 1000, q % 1000)
}

fn uuid_from(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events() {
        assert_eq!(
            FlowGenerator::new(7, 3).events(50),
            FlowGenerator::new(7, 3).events(50)
        );
    }

    #[test]
    fn another_seed_gives_other_events() {
        assert_ne!(
            FlowGenerator::new(7, 3).events(5),
            FlowGenerator::new(8, 3).events(5)
        );
    }

    #[test]
    fn flows_cover_every_handled_type_and_an_unhandled_one() {
        let events = FlowGenerator::new(1, 2).events(300);
        let handled = robson_projector::rules::HANDLED_TYPES;
        for ty in handled.into_iter().chain(["DECISION_PROPOSED"]) {
            assert!(events.iter().any(|e| e.event_type == ty), "no {ty}");
        }
    }
}
