use super::*;
use crate::rules::testing::*;

fn balance_payload(free: &str, locked: &str) -> serde_json::Value {
    json(&format!(
        r#"{{"account_id": "{ACCOUNT}", "asset": "USDT", "free": {free}, "locked": {locked}}}"#
    ))
}

fn parse_balance(payload: &serde_json::Value) -> Result<Balance> {
    Balance::parse(&fields(payload))
}

fn risk(payload: &str, failed: bool) -> Result<RiskCheck> {
    let payload = json(payload);
    if failed {
        RiskCheck::parse_failed(&fields(&payload))
    } else {
        RiskCheck::parse_passed(&fields(&payload))
    }
}

#[test]
fn balance_total_is_free_plus_locked() {
    let cmd = parse_balance(&balance_payload(r#""4.5""#, "0.25")).expect("valid");
    let row = sample_balance(&cmd, &stamp(3));
    assert_eq!(
        (row.free, row.locked, row.total),
        (dec("4.5"), dec("0.25"), dec("4.75"))
    );
    assert_eq!(
        (row.sampled_at, row.updated_at, row.last_seq),
        (at(3), at(3), 3)
    );
}

#[test]
fn balance_sampled_at_comes_from_the_payload_when_present() {
    let payload = with(
        &balance_payload("1", "0"),
        "sampled_at",
        r#""2024-03-01T08:00:10.818Z""#,
    );
    let row = sample_balance(&parse_balance(&payload).expect("valid"), &stamp(20));
    assert_eq!(row.sampled_at, ts("2024-03-01T08:00:10.818Z"));
    assert_eq!(row.updated_at, at(20));
}

#[test]
fn balance_amounts_must_not_be_negative() {
    assert!(is_invalid(parse_balance(&balance_payload(
        r#""-1.5""#,
        "0"
    ))));
    assert!(is_invalid(parse_balance(&balance_payload(
        "0",
        r#""-0.00000001""#
    ))));
    assert!(parse_balance(&balance_payload("0", "0")).is_ok());
}

#[test]
fn balance_asset_must_be_one_to_ten_characters() {
    assert!(is_invalid(parse_balance(&with(
        &balance_payload("1", "0"),
        "asset",
        r#""""#
    ))));
    assert!(is_invalid(parse_balance(&with(
        &balance_payload("1", "0"),
        "asset",
        r#""ABCDEFGHIJK""#
    ))));
    assert!(parse_balance(&with(
        &balance_payload("1", "0"),
        "asset",
        r#""ABCDEFGHIJ""#
    ))
    .is_ok());
}

#[test]
fn balance_total_reaching_ten_to_the_twelve_is_invalid() {
    assert!(is_invalid(parse_balance(&balance_payload(
        "1000000000000",
        "0"
    ))));
    assert!(is_invalid(parse_balance(&balance_payload(
        r#""600000000000""#,
        r#""400000000000""#
    ))));
    assert!(parse_balance(&balance_payload(
        r#""600000000000""#,
        r#""399999999999.99999999""#
    ))
    .is_ok());
}

#[test]
fn risk_check_failed_marks_the_row_violated() {
    let cmd = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "violation_reason": "daily loss limit", "daily_pnl": "207.9444", "drawdown": 0.0979}}"#),
        true,
    )
    .expect("valid");
    let row = check_risk(None, &cmd, &stamp(4));
    assert!(row.is_violated);
    assert_eq!(row.violation_reason.as_deref(), Some("daily loss limit"));
    assert_eq!(
        (row.violated_at, row.calculated_at, row.updated_at),
        (Some(at(4)), at(4), at(4))
    );
    assert_eq!(
        (row.daily_pnl, row.drawdown),
        (dec("207.9444"), dec("0.0979"))
    );
    assert_eq!(
        (row.total_exposure, row.max_exposure),
        (Decimal::ZERO, Decimal::ZERO)
    );
    assert_eq!(row.strategy_id, None);
}

#[test]
fn risk_limits_are_taken_from_the_payload_else_kept_else_zero() {
    let first = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "violation_reason": "x", "max_exposure": "21948.0815", "max_drawdown": "0.1758"}}"#),
        true,
    )
    .expect("valid");
    let before = check_risk(None, &first, &stamp(1));
    let passed = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "checks_performed": ["exposure"], "total_exposure": "14646.4712", "max_drawdown": "0.1946"}}"#),
        false,
    )
    .expect("valid");
    let row = check_risk(Some(&before), &passed, &stamp(2));
    assert_eq!(row.total_exposure, dec("14646.4712"));
    assert_eq!(row.max_exposure, dec("21948.0815"));
    assert_eq!(row.max_drawdown, dec("0.1946"));
    assert_eq!(row.daily_loss_limit, Decimal::ZERO);
}

#[test]
fn risk_check_passed_clears_the_violation() {
    let failed = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "violation_reason": "x"}}"#),
        true,
    )
    .expect("valid");
    let before = check_risk(None, &failed, &stamp(1));
    let passed = risk(&format!(r#"{{"account_id": "{ACCOUNT}"}}"#), false).expect("valid");
    let row = check_risk(Some(&before), &passed, &stamp(2));
    assert!(!row.is_violated);
    assert_eq!((row.violation_reason, row.violated_at), (None, None));
    assert_eq!((row.calculated_at, row.last_seq), (at(2), 2));
}

#[test]
fn risk_check_failed_requires_a_violation_reason() {
    let payload = format!(r#"{{"account_id": "{ACCOUNT}", "daily_pnl": "-548.749"}}"#);
    assert!(is_invalid(risk(&payload, true)));
    assert!(risk(&payload, false).is_ok());
}

#[test]
fn risk_payload_fields_are_validated() {
    let base = format!(r#""account_id": "{ACCOUNT}", "violation_reason": "x""#);
    assert!(is_invalid(risk(
        &format!(r#"{{{base}, "max_exposure": "100.000000001"}}"#),
        true
    )));
    assert!(is_invalid(risk(
        &format!(r#"{{{base}, "failed_checks": "exposure"}}"#),
        true
    )));
    assert!(is_invalid(risk(
        &format!(r#"{{{base}, "severity": 3}}"#),
        true
    )));
    assert!(is_invalid(risk(
        &format!(r#"{{{base}, "strategy_id": "nope"}}"#),
        true
    )));
    assert!(is_invalid(risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "checks_performed": {{}}}}"#),
        false
    )));
}

#[test]
fn a_null_strategy_id_is_the_account_wide_key() {
    let absent = risk(&format!(r#"{{"account_id": "{ACCOUNT}"}}"#), false).expect("valid");
    let null = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "strategy_id": null}}"#),
        false,
    )
    .expect("valid");
    let some = risk(
        &format!(r#"{{"account_id": "{ACCOUNT}", "strategy_id": "{STRATEGY}"}}"#),
        false,
    )
    .expect("valid");
    assert_eq!(absent.key(TENANT), null.key(TENANT));
    assert_ne!(absent.key(TENANT), some.key(TENANT));
}
