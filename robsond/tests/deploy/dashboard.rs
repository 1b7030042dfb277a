//! The PromQL of the Grafana dashboard: every target's `expr` and the
//! templating queries' `definition`. Shared by the `deploy` test (the
//! metrics they name exist) and the `prometheus` test (each returns data
//! on a real Prometheus).

use serde_json::Value;

/// Every `expr` and `definition` string in the dashboard, in file order.
pub fn exprs(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}
