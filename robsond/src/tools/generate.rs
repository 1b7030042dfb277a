//! Realistic trading flows for demos, tests and benchmarks (`robsond
//! generate`): per order, a strategy and a position around it, the order
//! with its ack, partial and complete fills (sometimes a repeated exchange
//! report), rejects and cancels after partial fills, balance samples, risk
//! checks, and a few event types the projector does not handle.
//!
//! A [`Profile`] gives the flow its shape: `mixed` (the flow above, one
//! order after another), `short-streams` (thousands of short order streams
//! whose lifecycles interleave in time, plus 20 hot account streams),
//! `hot-streams` (20 account streams carrying ~80 % of the events, and long
//! strategy streams) and `wide-tenants` (the mixed flow over 200 tenants).
//!
//! Deterministic: the same seed and profile give the same events (ids
//! included), in the same order; timestamps advance from a fixed origin.
//!
//! The `robsond generate` command itself is [`command`].

pub mod command;

use std::collections::VecDeque;

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

/// The shape of a generated workload (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The mixed trading flow: per order a strategy, a risk check, the order
    /// with its ack and fills, a position and a balance sample, one order
    /// after another, one account per tenant.
    Mixed,
    /// ~68 % of the events on order streams of 1–6 events whose lifecycles
    /// interleave in time, ~18 % on 20 hot account streams, the rest on
    /// position, strategy and unhandled streams.
    ShortStreams,
    /// 20 account streams carry ~80 % of the events; 40 long strategy
    /// streams; short orders.
    HotStreams,
    /// The mixed flow spread over 200 tenants (one account each).
    WideTenants,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Mixed,
        Profile::ShortStreams,
        Profile::HotStreams,
        Profile::WideTenants,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Mixed => "mixed",
            Profile::ShortStreams => "short-streams",
            Profile::HotStreams => "hot-streams",
            Profile::WideTenants => "wide-tenants",
        }
    }

    /// Tenants the profile spreads its flows over, given the requested number.
    pub fn tenants(self, requested: u32) -> u32 {
        match self {
            Profile::WideTenants => requested.max(200),
            _ => requested.max(1),
        }
    }

    /// Events per flow ("order"), roughly: to size a run in events.
    pub fn events_per_flow(self) -> f64 {
        match self {
            Profile::Mixed | Profile::WideTenants => 8.6,
            Profile::ShortStreams => 5.6,
            Profile::HotStreams => 16.5,
        }
    }

    /// Hot account streams shared by every flow (0: one account per tenant).
    fn hot_accounts(self) -> usize {
        match self {
            Profile::ShortStreams | Profile::HotStreams => 20,
            _ => 0,
        }
    }

    /// Flows open at once whose events interleave (1: one after another).
    fn interleaved(self) -> usize {
        match self {
            Profile::ShortStreams | Profile::HotStreams => 500,
            _ => 1,
        }
    }
}

/// Long-lived strategy streams of `hot-streams`.
const LONG_STRATEGIES: usize = 40;

/// A deterministic source of trading flows.
#[derive(Debug)]
pub struct FlowGenerator {
    rng: ChaCha8Rng,
    profile: Profile,
    tenants: Vec<(Uuid, Uuid)>,
    /// (tenant, account) of the hot accounts; empty for the mixed shapes.
    accounts: Vec<(Uuid, Uuid)>,
    /// (tenant, account, strategy) of `hot-streams`' long strategy streams.
    strategies: Vec<(Uuid, Uuid, Uuid)>,
    clock: DateTime<Utc>,
    orders: u64,
    /// Flows started by [`FlowGenerator::take`].
    flows: u64,
    /// Flows started and not yet emitted completely (interleaved profiles).
    open: Vec<VecDeque<Event>>,
}

impl FlowGenerator {
    /// `tenants` tenants (each with one account), seeded by `seed`: the
    /// mixed flow.
    pub fn new(seed: u64, tenants: u32) -> Self {
        Self::with_profile(seed, tenants, Profile::Mixed)
    }

    /// A generator of `profile`'s shape (see [`Profile::tenants`]).
    pub fn with_profile(seed: u64, tenants: u32, profile: Profile) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tenants: Vec<(Uuid, Uuid)> = (0..profile.tenants(tenants))
            .map(|_| (uuid_from(&mut rng), uuid_from(&mut rng)))
            .collect();
        let accounts = (0..profile.hot_accounts())
            .map(|i| (tenants[i % tenants.len()].0, uuid_from(&mut rng)))
            .collect::<Vec<_>>();
        let strategies = if profile == Profile::HotStreams {
            (0..LONG_STRATEGIES)
                .map(|i| {
                    let (tenant, account) = accounts[i % accounts.len()];
                    (tenant, account, uuid_from(&mut rng))
                })
                .collect()
        } else {
            Vec::new()
        };
        FlowGenerator {
            rng,
            profile,
            tenants,
            accounts,
            strategies,
            // Fixed origin: timestamps are part of the determinism.
            clock: Utc
                .with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
                .single()
                .unwrap_or_default(),
            orders: 0,
            flows: 0,
            open: Vec::new(),
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += Duration::milliseconds(self.rng.gen_range(1..50));
        self.clock
    }

    /// The exchange's answer to a submitted order: rejected (5 %; false,
    /// the order's flow ends) or acknowledged (true).
    fn reject_or_ack(
        &mut self,
        out: &mut Vec<Event>,
        tenant: Uuid,
        stream: &str,
        order_id: Uuid,
    ) -> bool {
        if self.rng.gen_bool(0.05) {
            let reject = json!({"order_id": order_id, "reason": "insufficient balance"});
            out.push(self.event(tenant, stream.to_owned(), "ORDER_REJECTED", reject));
            return false;
        }
        let exchange_order_id = self.rng.gen_range(10_000_000u64..99_999_999).to_string();
        let ack = json!({"order_id": order_id, "exchange_order_id": exchange_order_id});
        out.push(self.event(tenant, stream.to_owned(), "ORDER_ACKED", ack));
        true
    }

    fn event(&mut self, tenant: Uuid, stream: String, ty: &str, payload: Value) -> Event {
        let at = self.tick();
        let mut e = Event::new(tenant, stream, ty, payload, at);
        e.command_id = Some(uuid_from(&mut self.rng));
        e
    }

    /// The events of one more order's flow, in append order (timestamps
    /// are taken when the flow is made, so interleaved flows keep them).
    pub fn next_flow(&mut self) -> Vec<Event> {
        match self.profile {
            Profile::Mixed | Profile::WideTenants => self.mixed_flow(),
            Profile::ShortStreams => self.short_flow(),
            Profile::HotStreams => self.hot_flow(),
        }
    }

    /// Up to `n` more events of the profile's stream of events: for
    /// interleaved profiles the next event of one of the open flows, picked
    /// at random (per stream the order is kept), opening flows as others
    /// end, as long as fewer than `flow_limit` flows were started. Fewer than
    /// `n` once every flow up to the limit is emitted completely.
    pub fn take(&mut self, n: usize, flow_limit: u64) -> Vec<Event> {
        let width = self.profile.interleaved();
        let mut out = Vec::new();
        while out.len() < n {
            while self.flows < flow_limit && self.open.len() < width {
                let flow: VecDeque<Event> = self.next_flow().into();
                self.open.push(flow);
                self.flows += 1;
            }
            if self.open.is_empty() {
                break;
            }
            let i = self.pick_open();
            match self.open[i].pop_front() {
                Some(e) => out.push(self.stamped(e)),
                None => {
                    self.open.swap_remove(i);
                }
            }
        }
        out
    }

    /// The events of `flows` more flows, complete (the flows already open
    /// end among them).
    pub fn events(&mut self, flows: u64) -> Vec<Event> {
        let limit = self.flows + flows;
        self.take(usize::MAX, limit)
    }

    /// Flows started so far.
    pub fn flows_started(&self) -> u64 {
        self.flows
    }

    /// Which open flow emits next (no draw when there is one: the mixed
    /// flow stays the same sequence as before profiles existed).
    fn pick_open(&mut self) -> usize {
        match self.open.len() {
            1 => 0,
            n => self.rng.gen_range(0..n),
        }
    }

    /// An interleaved event takes the time at which it is emitted, so time
    /// advances along the log as a whole (and so along every stream).
    fn stamped(&mut self, mut e: Event) -> Event {
        if self.profile.interleaved() > 1 {
            e.occurred_at = self.tick();
        }
        e
    }

    fn mixed_flow(&mut self) -> Vec<Event> {
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
        if !self.reject_or_ack(&mut out, tenant, &order_stream, order_id) {
            return out;
        }
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

    fn hot_account(&mut self) -> (Uuid, Uuid) {
        self.accounts[self.rng.gen_range(0..self.accounts.len())]
    }

    /// One event on an account stream: a balance sample or a risk check.
    fn account_event(&mut self, tenant: Uuid, account: Uuid) -> Event {
        let stream = format!("account:{account}");
        if self.rng.gen_bool(0.5) {
            let free = self.rng.gen_range(0i64..10_000_000);
            let asset = ["USDT", "BTC", "ETH"][self.rng.gen_range(0..3)];
            self.event(tenant, stream, "BALANCE_SAMPLED", json!({
                "account_id": account, "asset": asset, "free": format!("{}.{:02}", free / 100, free % 100), "locked": "0"
            }))
        } else if self.rng.gen_bool(0.1) {
            self.event(tenant, stream, "RISK_CHECK_FAILED", json!({
                "account_id": account, "violation_reason": "daily loss limit", "daily_loss_limit": "500.00", "daily_pnl": "-512.30"
            }))
        } else {
            self.event(
                tenant,
                stream,
                "RISK_CHECK_PASSED",
                json!({
                    "account_id": account, "checks_performed": ["exposure", "daily_loss"]
                }),
            )
        }
    }

    /// An order's lifecycle of 1–6 events on its own stream: submitted,
    /// then rejected, or acked with 0–3 fills and maybe a cancel (a few
    /// stay open after the submit).
    fn order_lifecycle(
        &mut self,
        tenant: Uuid,
        account: Uuid,
        position_id: Option<Uuid>,
        max_fills: u32,
    ) -> Vec<Event> {
        self.orders += 1;
        let (symbol, base_price) = SYMBOLS[self.rng.gen_range(0..SYMBOLS.len())];
        let price_cents = base_price.max(1);
        let price = format!("{}.{:02}", price_cents / 100, price_cents % 100);
        let order_id = uuid_from(&mut self.rng);
        let stream = format!("order:{order_id}");
        let quantity_milli: i64 = self.rng.gen_range(4..2000);
        let mut out =
            vec![self.event(tenant, stream.clone(), "ORDER_SUBMITTED", json!({
            "order_id": order_id, "account_id": account, "position_id": position_id,
            "client_order_id": format!("gen-{}", self.orders), "symbol": symbol, "side": "buy",
            "order_type": "limit", "quantity": milli(quantity_milli), "price": price,
        }))];
        if self.rng.gen_bool(0.05) {
            return out;
        }
        if !self.reject_or_ack(&mut out, tenant, &stream, order_id) {
            return out;
        }
        let fills = self.rng.gen_range(0..=max_fills);
        let per_fill = quantity_milli / 4;
        for _ in 0..fills {
            let trade = format!("t-{}", self.rng.gen_range(0u64..u64::MAX / 2));
            out.push(self.event(tenant, stream.clone(), "FILL_RECEIVED", json!({
                "order_id": order_id, "exchange_trade_id": trade, "fill_price": price,
                "fill_quantity": milli(per_fill), "fee": "0.01000000", "fee_asset": "USDT", "is_maker": true
            })));
        }
        if fills < 3 && self.rng.gen_bool(0.3) {
            out.push(self.event(
                tenant,
                stream,
                "ORDER_CANCELED",
                json!({"order_id": order_id, "reason": "user"}),
            ));
        }
        out
    }

    /// `short-streams`: an order lifecycle, one event on a hot account,
    /// sometimes a position, a strategy or an unhandled event.
    fn short_flow(&mut self) -> Vec<Event> {
        let (tenant, account) = self.hot_account();
        let mut out = Vec::new();
        if self.rng.gen_bool(0.05) {
            let strategy_id = uuid_from(&mut self.rng);
            out.push(self.event(tenant, format!("strategy:{strategy_id}"), "STRATEGY_ENABLED", json!({
                "strategy_id": strategy_id, "account_id": account,
                "strategy_name": "short", "strategy_type": "scalp", "risk_config": {"max_position_pct": 1}
            })));
        }
        let position_id = self.rng.gen_bool(0.4).then(|| uuid_from(&mut self.rng));
        out.extend(self.order_lifecycle(tenant, account, position_id, 3));
        out.push(self.account_event(tenant, account));
        if let Some(position_id) = position_id {
            out.push(self.event(tenant, format!("position:{position_id}"), "POSITION_OPENED", json!({
                "position_id": position_id, "account_id": account, "symbol": "BTCUSDT", "side": "long",
                "entry_price": "65000.00", "entry_quantity": "0.010",
                "technical_stop_price": "64000.00", "technical_stop_distance": "1000.00"
            })));
        }
        if self.rng.gen_bool(0.2) {
            let id = uuid_from(&mut self.rng);
            out.push(self.event(
                tenant,
                format!("decision:{id}"),
                "DECISION_PROPOSED",
                json!({"order_id": id}),
            ));
        }
        out
    }

    /// `hot-streams`: 13 events on hot accounts, one on a long strategy
    /// stream, and a short order (none of them can be poison in any order).
    fn hot_flow(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        for _ in 0..13 {
            let (tenant, account) = self.hot_account();
            out.push(self.account_event(tenant, account));
        }
        // Only enables (the configuration replaced each time): flows are
        // interleaved at random, so a disable could come before the
        // strategy's first enable and be dead-lettered.
        let i = self.rng.gen_range(0..self.strategies.len());
        let (tenant, account, strategy_id) = self.strategies[i];
        let lookback = self.rng.gen_range(5..50);
        out.push(self.event(tenant, format!("strategy:{strategy_id}"), "STRATEGY_ENABLED", json!({
            "strategy_id": strategy_id, "account_id": account, "strategy_name": format!("long-{i}"),
            "strategy_type": "trend", "detector_config": {"lookback": lookback},
            "risk_config": {"max_position_pct": 2}
        })));
        let (tenant, account) = self.hot_account();
        out.extend(self.order_lifecycle(tenant, account, None, 1));
        out
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
    fn every_profile_is_deterministic_and_keeps_per_stream_timestamps_in_order() {
        for profile in Profile::ALL {
            let events = FlowGenerator::with_profile(3, 4, profile).events(400);
            assert_eq!(
                events,
                FlowGenerator::with_profile(3, 4, profile).events(400),
                "{profile:?}"
            );
            let mut last: std::collections::HashMap<&str, DateTime<Utc>> = Default::default();
            for e in &events {
                // Interleaving keeps each stream's lifecycle valid: it
                // opens with the event that creates its row.
                if !last.contains_key(e.stream_key.as_str()) {
                    let kind = e.stream_key.split(':').next().unwrap_or("");
                    let opening = match kind {
                        "order" => e.event_type == "ORDER_SUBMITTED",
                        "strategy" => e.event_type == "STRATEGY_ENABLED",
                        "position" => e.event_type == "POSITION_OPENED",
                        _ => true,
                    };
                    assert!(
                        opening,
                        "{profile:?}: {} opens with {}",
                        e.stream_key, e.event_type
                    );
                }
                let prev = last.insert(e.stream_key.as_str(), e.occurred_at);
                assert!(
                    prev.is_none_or(|p| p <= e.occurred_at),
                    "{profile:?}: {}",
                    e.stream_key
                );
            }
        }
    }

    #[test]
    fn short_streams_puts_most_events_on_short_order_streams_and_a_few_hot_accounts() {
        let events = FlowGenerator::with_profile(5, 4, Profile::ShortStreams).events(3000);
        let share = |prefix: &str| {
            events
                .iter()
                .filter(|e| e.stream_key.starts_with(prefix))
                .count() as f64
                / events.len() as f64
        };
        let mut per_order: std::collections::HashMap<&str, usize> = Default::default();
        let mut accounts = std::collections::HashSet::new();
        for e in &events {
            if e.stream_key.starts_with("order:") {
                *per_order.entry(e.stream_key.as_str()).or_default() += 1;
            }
            if e.stream_key.starts_with("account:") {
                accounts.insert(e.stream_key.as_str());
            }
        }
        assert!(
            (0.6..0.75).contains(&share("order:")),
            "{}",
            share("order:")
        );
        assert!(
            (0.14..0.22).contains(&share("account:")),
            "{}",
            share("account:")
        );
        assert_eq!(accounts.len(), 20);
        assert!(per_order.values().all(|n| (1..=6).contains(n)));
        // Interleaved: the first order's events are not all adjacent.
        let Some(first) = events.iter().find(|e| e.stream_key.starts_with("order:")) else {
            panic!("no order stream");
        };
        let first = &first.stream_key;
        let at: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| &e.stream_key == first)
            .map(|(i, _)| i)
            .collect();
        assert!(
            at.len() < 2 || at[at.len() - 1] - at[0] > at.len(),
            "{at:?}"
        );
    }

    #[test]
    fn hot_streams_puts_most_events_on_twenty_accounts_and_wide_tenants_uses_200() {
        let events = FlowGenerator::with_profile(5, 4, Profile::HotStreams).events(500);
        let on_accounts = events
            .iter()
            .filter(|e| e.stream_key.starts_with("account:"))
            .count();
        let share = on_accounts as f64 / events.len() as f64;
        assert!((0.75..0.85).contains(&share), "{share}");
        let wide = FlowGenerator::with_profile(5, 4, Profile::WideTenants).events(2000);
        let tenants: std::collections::HashSet<_> = wide.iter().map(|e| e.tenant_id).collect();
        assert!(tenants.len() > 150, "{}", tenants.len());
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
