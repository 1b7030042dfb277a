use super::testing::*;
use super::*;

fn ack_payload() -> Value {
    json(&format!(
        r#"{{"order_id": "{ORDER}", "exchange_order_id": "X1"}}"#
    ))
}

#[test]
fn unhandled_types_change_nothing_and_names_are_exact() {
    for name in [
        "INTENT_CREATED",
        "DECISION_PROPOSED",
        "order_acked",
        "Order_Acked",
        "ORDER_ACKED ",
        "ORDER_ACK",
        "",
    ] {
        assert!(
            matches!(parse(name, &ack_payload(), TENANT), Ok(None)),
            "{name:?}"
        );
    }
    assert!(matches!(
        parse("ORDER_ACKED", &ack_payload(), TENANT),
        Ok(Some(Command::OrderAcked(_)))
    ));
}

#[test]
fn unhandled_types_are_not_validated() {
    assert!(matches!(
        parse("SIGNAL_DETECTED", &json("[1, 2]"), TENANT),
        Ok(None)
    ));
}

#[test]
fn every_handled_type_parses_a_valid_payload() {
    let payloads = [
        (
            "ORDER_SUBMITTED",
            format!(
                r#"{{"order_id": "{ORDER}", "account_id": "{ACCOUNT}", "client_order_id": "c", "symbol": "BTCUSDT", "side": "sell", "order_type": "market", "quantity": "1"}}"#
            ),
        ),
        (
            "ORDER_ACKED",
            format!(r#"{{"order_id": "{ORDER}", "exchange_order_id": "1"}}"#),
        ),
        (
            "FILL_RECEIVED",
            format!(
                r#"{{"order_id": "{ORDER}", "exchange_trade_id": "T", "fill_price": "1", "fill_quantity": "1", "fee": "0", "fee_asset": "USDT"}}"#
            ),
        ),
        (
            "ORDER_REJECTED",
            format!(r#"{{"order_id": "{ORDER}", "reason": "r"}}"#),
        ),
        ("ORDER_CANCELED", format!(r#"{{"order_id": "{ORDER}"}}"#)),
        (
            "POSITION_OPENED",
            format!(
                r#"{{"position_id": "{POSITION}", "account_id": "{ACCOUNT}", "symbol": "BTCUSDT", "side": "long", "technical_stop_price": "1", "technical_stop_distance": "1"}}"#
            ),
        ),
        (
            "POSITION_CLOSED",
            format!(r#"{{"position_id": "{POSITION}"}}"#),
        ),
        (
            "BALANCE_SAMPLED",
            format!(r#"{{"account_id": "{ACCOUNT}", "asset": "BTC", "free": "1", "locked": "0"}}"#),
        ),
        (
            "RISK_CHECK_FAILED",
            format!(r#"{{"account_id": "{ACCOUNT}", "violation_reason": "x"}}"#),
        ),
        (
            "RISK_CHECK_PASSED",
            format!(r#"{{"account_id": "{ACCOUNT}"}}"#),
        ),
        (
            "STRATEGY_ENABLED",
            format!(
                r#"{{"strategy_id": "{STRATEGY}", "account_id": "{ACCOUNT}", "strategy_name": "n", "strategy_type": "t", "risk_config": {{}}}}"#
            ),
        ),
        (
            "STRATEGY_DISABLED",
            format!(r#"{{"strategy_id": "{STRATEGY}"}}"#),
        ),
    ];
    assert_eq!(payloads.len(), HANDLED_TYPES.len());
    for (name, payload) in payloads {
        assert!(
            matches!(parse(name, &json(&payload), TENANT), Ok(Some(_))),
            "{name}"
        );
    }
}

#[test]
fn a_payload_tenant_that_differs_from_the_envelope_is_an_invalid_payload() {
    let payload = with(&ack_payload(), "tenant_id", &format!("\"{OTHER_TENANT}\""));
    assert!(is_invalid(parse("ORDER_ACKED", &payload, TENANT)));
    assert!(is_invalid(parse(
        "ORDER_ACKED",
        &with(&ack_payload(), "tenant_id", r#""x""#),
        TENANT
    )));
}

#[test]
fn a_payload_tenant_equal_to_the_envelope_or_null_is_accepted() {
    let same = with(&ack_payload(), "tenant_id", &format!("\"{TENANT}\""));
    assert!(matches!(parse("ORDER_ACKED", &same, TENANT), Ok(Some(_))));
    let null = with(&ack_payload(), "tenant_id", "null");
    assert!(matches!(parse("ORDER_ACKED", &null, TENANT), Ok(Some(_))));
}

#[test]
fn a_handled_payload_that_is_not_an_object_is_invalid() {
    assert!(is_invalid(parse("ORDER_ACKED", &json("[]"), TENANT)));
    assert!(is_invalid(parse("ORDER_ACKED", &json("\"x\""), TENANT)));
}

#[test]
fn unknown_fields_are_ignored() {
    let payload = with(&ack_payload(), "acked_at", r#"{"anything": [1, "x"]}"#);
    assert!(matches!(
        parse("ORDER_ACKED", &payload, TENANT),
        Ok(Some(_))
    ));
}

#[test]
fn stamps_are_kept_in_microseconds() {
    let mut event = event("order:x", 1, "ORDER_ACKED", ack_payload());
    event.occurred_at = ts("2024-03-01T08:00:00.123456789Z");
    assert_eq!(
        Stamp::of(&event).occurred_at,
        ts("2024-03-01T08:00:00.123457Z")
    );
}

#[test]
fn every_handled_type_has_a_parser() {
    for name in HANDLED_TYPES {
        // An empty payload is invalid for every type, but it must be the
        // type's own parser that says so.
        match parse(name, &json("{}"), TENANT) {
            Err(ProjectionError::InvalidPayload(msg)) => {
                assert!(!msg.contains("has no parser"), "{name}: {msg}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
