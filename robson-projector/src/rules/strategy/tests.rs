use super::*;
use crate::rules::testing::*;

fn enable_payload(name: &str) -> serde_json::Value {
    json(&format!(
        r#"{{"strategy_id": "{STRATEGY}", "account_id": "{ACCOUNT}", "strategy_name": "{name}",
            "strategy_type": "trend", "detector_config": {{"lookback": 53, "threshold": "2.142"}},
            "risk_config": {{"max_position_pct": 5, "stop_atr_mult": "2.42"}}}}"#
    ))
}

fn parse_enable(payload: &serde_json::Value) -> Result<Enable> {
    Enable::parse(&fields(payload))
}

fn enabled() -> StrategyRow {
    enable(
        None,
        &parse_enable(&enable_payload("v1")).expect("valid"),
        &stamp(1),
    )
}

fn disable_cmd(reason: Option<&str>) -> Disable {
    Disable {
        strategy_id: uuid(STRATEGY),
        reason: reason.map(str::to_string),
    }
}

#[test]
fn enable_creates_an_enabled_strategy_with_its_configs() {
    let row = enabled();
    assert!(row.is_enabled);
    assert_eq!(row.enabled_at, Some(at(1)));
    assert_eq!((row.created_at, row.updated_at), (at(1), at(1)));
    assert_eq!(
        row.detector_config,
        Some(json(r#"{"lookback": 53, "threshold": "2.142"}"#))
    );
    assert_eq!(
        row.risk_config,
        json(r#"{"max_position_pct": 5, "stop_atr_mult": "2.42"}"#)
    );
}

#[test]
fn re_enable_keeps_created_at_and_refreshes_everything_else() {
    let disabled =
        disable(Some(&enabled()), &disable_cmd(Some("drawdown")), &stamp(2)).expect("disabled");
    let cmd = parse_enable(&without(&enable_payload("v2"), "detector_config")).expect("valid");
    let row = enable(Some(&disabled), &cmd, &stamp(3));
    assert_eq!(row.created_at, at(1));
    assert_eq!(row.enabled_at, Some(at(3)));
    assert_eq!((row.disabled_at, row.disabled_reason), (None, None));
    assert_eq!(row.strategy_name, "v2");
    assert_eq!(row.detector_config, None);
    assert!(row.is_enabled);
}

#[test]
fn disable_keeps_enabled_at_and_records_the_reason() {
    let row =
        disable(Some(&enabled()), &disable_cmd(Some("drawdown")), &stamp(2)).expect("disabled");
    assert!(!row.is_enabled);
    assert_eq!(row.enabled_at, Some(at(1)));
    assert_eq!(row.disabled_at, Some(at(2)));
    assert_eq!(row.disabled_reason.as_deref(), Some("drawdown"));
    let no_reason = disable(Some(&row), &disable_cmd(None), &stamp(3)).expect("disabled again");
    assert_eq!((no_reason.disabled_reason, no_reason.last_seq), (None, 3));
}

#[test]
fn disabling_a_missing_strategy_is_an_invariant_violation() {
    assert!(is_violation(disable(None, &disable_cmd(None), &stamp(1))));
}

#[test]
fn configs_must_be_json_objects_and_risk_config_is_required() {
    let payload = enable_payload("v1");
    assert!(is_invalid(parse_enable(&without(&payload, "risk_config"))));
    assert!(is_invalid(parse_enable(&with(
        &payload,
        "risk_config",
        "[1]"
    ))));
    assert!(is_invalid(parse_enable(&with(
        &payload,
        "detector_config",
        r#""x""#
    ))));
    assert!(is_invalid(parse_enable(&without(
        &payload,
        "strategy_name"
    ))));
    assert!(is_invalid(parse_enable(&with(
        &payload,
        "strategy_type",
        "1"
    ))));
    assert!(parse_enable(&with(&payload, "detector_config", "null")).is_ok());
}

#[test]
fn disable_reason_must_be_a_string() {
    let payload = json(&format!(r#"{{"strategy_id": "{STRATEGY}", "reason": 5}}"#));
    assert!(is_invalid(Disable::parse(&fields(&payload))));
}
