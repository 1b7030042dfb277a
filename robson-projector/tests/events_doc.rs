//! docs/events.md against the rules: every handled type has a section, every
//! field of a section's table is read by the parser with the documented type
//! and required/optional flag, every example is accepted and uses exactly the
//! documented fields, every field the rules read is documented, and the
//! documented error kinds are the stored ones.

use std::collections::{BTreeMap, BTreeSet};

use robson_projector::rules::{parse, HANDLED_TYPES};
use robson_projector::{ErrorKind, ProjectionError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

struct Field {
    name: String,
    kind: String,
    required: bool,
    rule: String,
}

struct Section {
    fields: Vec<Field>,
    example: Value,
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md");
    std::fs::read_to_string(path).expect("docs/events.md is readable")
}

/// The cells of a markdown table row, without the outer pipes.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The `### TYPE` sections of "## Handled event types".
fn sections(doc: &str) -> BTreeMap<String, Section> {
    let start = doc
        .find("\n## Handled event types")
        .expect("a Handled event types chapter");
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let chapter = &rest[..end];
    let mut out = BTreeMap::new();
    for part in chapter.split("\n### ").skip(1) {
        let name = part.lines().next().expect("a heading").trim().to_string();
        let mut fields = Vec::new();
        for line in part.lines().filter(|l| l.starts_with("| `")) {
            let c = cells(line);
            assert_eq!(c.len(), 4, "{name}: a field row has 4 cells: {line}");
            let required = match c[2].as_str() {
                "yes" => true,
                "no" => false,
                other => panic!("{name}: required is yes or no, not {other:?}"),
            };
            fields.push(Field {
                name: c[0].trim_matches('`').to_string(),
                kind: c[1].clone(),
                required,
                rule: c[3].clone(),
            });
        }
        let json_start = part.find("```json\n").expect("an example") + 8;
        let json_len = part[json_start..].find("```").expect("the example ends");
        let example: Value = serde_json::from_str(&part[json_start..json_start + json_len])
            .unwrap_or_else(|e| panic!("{name}: the example is not JSON: {e}"));
        out.insert(name, Section { fields, example });
    }
    out
}

/// A value of the wrong type for a documented field type.
fn wrong_value(kind: &str) -> Value {
    match kind {
        "uuid" => json!("not-a-uuid"),
        "string" => json!(7),
        "decimal" => json!(true),
        "boolean" => json!("yes"),
        "timestamp" => json!("2026-05-01 12:00:00"),
        "object" => json!([1]),
        "array" => json!({"a": 1}),
        other => panic!("undocumented field type {other:?}"),
    }
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().expect("the example is an object").clone()
}

fn tenant() -> Uuid {
    Uuid::parse_str("6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f").expect("a uuid")
}

/// The invalid-payload message for `payload`, or a panic naming the case.
fn refusal(event_type: &str, payload: Map<String, Value>, case: &str) -> String {
    match parse(event_type, &Value::Object(payload), tenant()) {
        Err(ProjectionError::InvalidPayload(message)) => message,
        other => panic!("{event_type}, {case}: expected an invalid payload, got {other:?}"),
    }
}

#[test]
fn every_handled_type_has_a_section_and_nothing_else_does() {
    let documented: BTreeSet<String> = sections(&doc()).into_keys().collect();
    let handled: BTreeSet<String> = HANDLED_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(documented, handled);
}

#[test]
fn every_example_is_accepted_and_uses_exactly_the_documented_fields() {
    for (name, section) in sections(&doc()) {
        let parsed = parse(&name, &section.example, tenant());
        assert!(
            matches!(parsed, Ok(Some(_))),
            "{name}: the example is refused: {parsed:?}"
        );
        let used: BTreeSet<String> = object(&section.example)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let listed: BTreeSet<String> = section.fields.iter().map(|f| f.name.clone()).collect();
        assert_eq!(used, listed, "{name}: example fields vs table fields");
    }
}

#[test]
fn every_documented_field_is_read_with_its_type_and_requiredness() {
    for (name, section) in sections(&doc()) {
        for field in &section.fields {
            let f = &field.name;
            // A wrong type is refused naming the field: the parser reads it.
            let mut wrong = object(&section.example);
            wrong.insert(f.clone(), wrong_value(&field.kind));
            let message = refusal(&name, wrong, &format!("{f} of the wrong type"));
            assert!(
                message.starts_with(&format!("{f}:")),
                "{name}: {f} of the wrong type: {message}"
            );
            let mut absent = object(&section.example);
            absent.remove(f);
            let mut null = object(&section.example);
            null.insert(f.clone(), Value::Null);
            if field.required {
                for (payload, case) in [(absent, "absent"), (null, "null")] {
                    let message = refusal(&name, payload, &format!("{f} {case}"));
                    assert!(
                        message.starts_with(&format!("{f}:")),
                        "{name}: required {f} {case}: {message}"
                    );
                }
            } else if !field.rule.contains("required for") {
                for (payload, case) in [(absent, "absent"), (null, "null")] {
                    let parsed = parse(&name, &Value::Object(payload), tenant());
                    assert!(
                        matches!(parsed, Ok(Some(_))),
                        "{name}: optional {f} {case} is refused: {parsed:?}"
                    );
                }
            }
        }
    }
}

/// The field names the rules read: the literals of `fields.<reader>("…")`
/// and `symbol(fields, "…")` in `src/rules/*.rs` (tests left out).
fn fields_read_by_the_rules() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/rules");
    let mut source = String::new();
    for entry in std::fs::read_dir(dir).expect("src/rules") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".rs") && !name.starts_with("test") {
            source.push_str(&std::fs::read_to_string(&path).expect("a rules file"));
        }
    }
    // Without whitespace, a call split over lines reads as one.
    let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = BTreeSet::new();
    for (at, _) in compact.match_indices("fields.") {
        let rest = &compact[at + 7..];
        let reader_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(0);
        if let Some(literal) = rest[reader_len..].strip_prefix("(\"") {
            if let Some(end) = literal.find('"') {
                out.insert(literal[..end].to_owned());
            }
        }
    }
    for (at, _) in compact.match_indices("symbol(fields,\"") {
        let literal = &compact[at + 15..];
        if let Some(end) = literal.find('"') {
            out.insert(literal[..end].to_owned());
        }
    }
    out
}

#[test]
fn every_field_the_rules_read_is_documented() {
    let doc = doc();
    let documented: BTreeSet<String> = sections(&doc)
        .values()
        .flat_map(|s| s.fields.iter().map(|f| f.name.clone()))
        .collect();
    let read = fields_read_by_the_rules();
    assert!(read.len() > 40, "the scan found too little: {read:?}");
    // tenant_id is read for every type and documented once, under Values.
    assert!(doc.contains("A payload may carry `tenant_id`"));
    let undocumented: Vec<_> = read
        .iter()
        .filter(|f| *f != "tenant_id" && !documented.contains(*f))
        .collect();
    assert!(
        undocumented.is_empty(),
        "read but not in docs/events.md: {undocumented:?}"
    );
}

#[test]
fn other_spellings_and_types_are_unhandled() {
    for other in ["OrderSubmitted", "order_submitted", "DECISION_PROPOSED"] {
        assert!(
            matches!(parse(other, &json!({}), tenant()), Ok(None)),
            "{other}"
        );
    }
}

#[test]
fn the_documented_error_kinds_are_the_stored_ones() {
    let doc = doc();
    let errors = &doc[doc.find("\n## Errors").expect("an Errors chapter")..];
    let documented: BTreeSet<String> = errors
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| cells(l)[0].trim_matches('`').to_string())
        .collect();
    let stored: BTreeSet<String> = [ErrorKind::InvalidPayload, ErrorKind::InvariantViolation]
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(documented, stored);
}
