//! GraphQL as both sides of the Shopify link need it: a parsed operation as an owned tree
//! (graphql-parser reads the text), Shopify's calculated query cost, the projection of a
//! result onto a selection set, and the reading of an answer (`data`, `errors`,
//! `extensions.cost`).
//!
//! The cost follows Shopify's published rules (shared/reference/shopify.md, rate limits):
//! a scalar or enum field costs 0, an object 1, a connection (a field with `first` or
//! `last`) 2 plus its size times the cost of one node, and a mutation's root field 10. A
//! single query may cost at most [`MAX_QUERY_COST`].

use graphql_parser::query as q;
use serde_json::{Map, Value, json};

/// The most one request may cost (Shopify refuses more with `MAX_COST_EXCEEDED`).
pub const MAX_QUERY_COST: u32 = 1000;

/// A field of a selection, its arguments resolved against the variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Sel {
    /// The key it answers under (its alias, or its name).
    pub key: String,
    pub name: String,
    pub args: Map<String, Value>,
    /// Directives with their arguments (`@idempotent(key: …)`).
    pub directives: Vec<(String, Map<String, Value>)>,
    pub selection: Vec<Sel>,
}

impl Sel {
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.get(name).filter(|v| !v.is_null())
    }

    pub fn directive(&self, name: &str) -> Option<&Map<String, Value>> {
        self.directives.iter().find(|d| d.0 == name).map(|d| &d.1)
    }

    /// A connection: sized by `first` or `last`.
    fn size(&self) -> Option<u32> {
        ["first", "last"]
            .iter()
            .find_map(|k| self.arg(k).and_then(Value::as_u64))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// A parsed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub mutation: bool,
    pub name: Option<String>,
    pub fields: Vec<Sel>,
}

/// Parses the one operation of `text` with its `variables`. A fragment, a subscription,
/// a second operation or a variable not given is refused by name.
pub fn parse(text: &str, variables: &Map<String, Value>) -> Result<Operation, String> {
    let doc = q::parse_query::<String>(text).map_err(|e| format!("syntax error: {e}"))?;
    let mut ops = Vec::new();
    for d in doc.definitions {
        match d {
            q::Definition::Operation(o) => ops.push(o),
            q::Definition::Fragment(f) => {
                return Err(format!("fragment {} is not supported here: inline the fields", f.name));
            }
        }
    }
    if ops.len() != 1 {
        return Err(format!("one operation per request, not {}", ops.len()));
    }
    let (mutation, name, defs, set) = match ops.remove(0) {
        q::OperationDefinition::SelectionSet(s) => (false, None, Vec::new(), s),
        q::OperationDefinition::Query(o) => (false, o.name, o.variable_definitions, o.selection_set),
        q::OperationDefinition::Mutation(o) => (true, o.name, o.variable_definitions, o.selection_set),
        q::OperationDefinition::Subscription(_) => return Err("subscriptions are not served".into()),
    };
    let mut vars = Map::new();
    for d in &defs {
        let v = match variables.get(&d.name) {
            Some(v) => v.clone(),
            None => match &d.default_value {
                Some(dv) => value(dv, &Map::new())?,
                None if matches!(d.var_type, q::Type::NonNullType(_)) => {
                    return Err(format!("Variable ${} of type {} was provided invalid value", d.name, d.var_type));
                }
                None => Value::Null,
            },
        };
        vars.insert(d.name.clone(), v);
    }
    Ok(Operation { mutation, name, fields: selection(&set, &vars)? })
}

fn selection(set: &q::SelectionSet<'_, String>, vars: &Map<String, Value>) -> Result<Vec<Sel>, String> {
    let mut out = Vec::new();
    for s in &set.items {
        match s {
            q::Selection::Field(f) => {
                let mut args = Map::new();
                for (k, v) in &f.arguments {
                    args.insert(k.clone(), value(v, vars)?);
                }
                let mut directives = Vec::new();
                for d in &f.directives {
                    let mut a = Map::new();
                    for (k, v) in &d.arguments {
                        a.insert(k.clone(), value(v, vars)?);
                    }
                    directives.push((d.name.clone(), a));
                }
                out.push(Sel {
                    key: f.alias.clone().unwrap_or_else(|| f.name.clone()),
                    name: f.name.clone(),
                    args,
                    directives,
                    selection: selection(&f.selection_set, vars)?,
                });
            }
            q::Selection::FragmentSpread(f) => {
                return Err(format!("fragment spread ...{} is not supported here", f.fragment_name));
            }
            q::Selection::InlineFragment(_) => return Err("inline fragments are not supported here".into()),
        }
    }
    Ok(out)
}

fn value(v: &q::Value<'_, String>, vars: &Map<String, Value>) -> Result<Value, String> {
    Ok(match v {
        q::Value::Variable(n) => vars.get(n).cloned().ok_or_else(|| format!("Variable ${n} is not defined"))?,
        q::Value::Int(n) => json!(n.as_i64()),
        q::Value::Float(f) => json!(f),
        q::Value::String(s) => json!(s),
        q::Value::Boolean(b) => json!(b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => json!(e),
        q::Value::List(l) => Value::Array(l.iter().map(|x| value(x, vars)).collect::<Result<_, _>>()?),
        q::Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.clone(), value(x, vars)?);
            }
            Value::Object(m)
        }
    })
}

/// The cost of one field by Shopify's rules; `sizes` gives a connection's size (the
/// requested size for the requested cost, the returned count for the actual cost).
fn field_cost(f: &Sel, size: &dyn Fn(&Sel) -> Option<u32>) -> u64 {
    if f.selection.is_empty() || f.name.starts_with("__") {
        return 0;
    }
    let children: u64 = f.selection.iter().map(|c| field_cost(c, size)).sum();
    match size(f) {
        Some(n) => {
            // The node's own cost is the `nodes` / `edges.node` object inside.
            let per_node = f
                .selection
                .iter()
                .map(|c| match c.name.as_str() {
                    "nodes" => c.selection.iter().map(|x| field_cost(x, size)).sum::<u64>() + 1,
                    "edges" => {
                        c.selection.iter().map(|x| if x.name == "node" { field_cost(x, size) } else { 0 }).sum::<u64>()
                    }
                    _ => 0,
                })
                .sum::<u64>();
            2 + u64::from(n) * per_node.max(1)
        }
        None => 1 + children,
    }
}

/// The requested cost of an operation.
pub fn requested_cost(op: &Operation) -> u32 {
    let c: u64 = op.fields.iter().map(|f| if op.mutation { 10 } else { field_cost(f, &|s: &Sel| s.size()) }).sum();
    u32::try_from(c).unwrap_or(u32::MAX)
}

/// The actual cost of a query once answered: connections cost what they returned.
pub fn actual_cost(op: &Operation, data: &Value) -> u32 {
    if op.mutation {
        return requested_cost(op);
    }
    let mut total = 0u64;
    for f in &op.fields {
        let returned = data.get(&f.key);
        let count = |s: &Sel| -> Option<u32> {
            s.size()?;
            // Only the root connection's count is known here: nested ones at their size.
            if s.key == f.key {
                let n = returned
                    .and_then(|r| r.get("nodes").or_else(|| r.get("edges")))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                Some(u32::try_from(n).unwrap_or(u32::MAX))
            } else {
                s.size()
            }
        };
        total += field_cost(f, &count);
    }
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// `full` cut down to the fields `sel` asks for, under their keys. `typename` names the
/// object in the error for a field it does not have.
pub fn project(full: &Value, sel: &[Sel], typename: &str) -> Result<Value, String> {
    match full {
        Value::Array(a) => Ok(Value::Array(a.iter().map(|x| project(x, sel, typename)).collect::<Result<_, _>>()?)),
        Value::Object(o) => {
            let mut out = Map::new();
            for s in sel {
                if s.name == "__typename" {
                    out.insert(s.key.clone(), json!(typename));
                    continue;
                }
                let Some(v) = o.get(&s.name) else {
                    return Err(format!("Field '{}' doesn't exist on type '{typename}'", s.name));
                };
                let inner = if s.selection.is_empty() { v.clone() } else { project(v, &s.selection, &s.name)? };
                out.insert(s.key.clone(), inner);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// One of an answer's top-level `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GqlError {
    pub message: String,
    /// `extensions.code` (`THROTTLED`, `ACCESS_DENIED`, `INTERNAL_SERVER_ERROR` …).
    pub code: Option<String>,
}

/// `extensions.cost` of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub requested: u32,
    pub actual: Option<u32>,
    pub maximum: f64,
    pub available: f64,
    pub restore_rate: f64,
}

/// An answer as GraphQL gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub data: Value,
    pub errors: Vec<GqlError>,
    pub cost: Option<Cost>,
}

impl Answer {
    /// Reads an answer body; `Err` when it is not a GraphQL answer at all.
    pub fn read(body: &[u8]) -> Result<Answer, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("Shopify's answer is not JSON: {e}"))?;
        let Value::Object(mut o) = v else { return Err("Shopify's answer is not a JSON object".into()) };
        let errors = match o.remove("errors") {
            None | Some(Value::Null) => Vec::new(),
            // The REST-style `{"errors": "[API] Invalid API key …"}` of a refused token.
            Some(Value::String(s)) => vec![GqlError { message: s, code: None }],
            Some(Value::Array(a)) => a
                .iter()
                .map(|e| GqlError {
                    message: e.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string(),
                    code: e.pointer("/extensions/code").and_then(Value::as_str).map(str::to_string),
                })
                .collect(),
            Some(other) => return Err(format!("Shopify's answer has errors of an unknown shape: {other}")),
        };
        let data = o.remove("data").unwrap_or(Value::Null);
        if data.is_null() && errors.is_empty() {
            return Err("Shopify's answer has neither data nor errors".into());
        }
        let cost = o.get("extensions").and_then(|e| e.get("cost")).and_then(|c| {
            let t = c.get("throttleStatus")?;
            Some(Cost {
                requested: c.get("requestedQueryCost").and_then(Value::as_u64).map_or(0, |n| n as u32),
                actual: c.get("actualQueryCost").and_then(Value::as_u64).map(|n| n as u32),
                maximum: t.get("maximumAvailable").and_then(Value::as_f64)?,
                available: t.get("currentlyAvailable").and_then(Value::as_f64)?,
                restore_rate: t.get("restoreRate").and_then(Value::as_f64)?,
            })
        });
        Ok(Answer { data, errors, cost })
    }

    /// Throttled: nothing was done.
    pub fn throttled(&self) -> bool {
        self.errors.iter().any(|e| e.message == "Throttled" || e.code.as_deref() == Some("THROTTLED"))
    }

    /// The errors in one line.
    pub fn error_text(&self) -> String {
        self.errors
            .iter()
            .map(|e| match &e.code {
                Some(c) => format!("{} ({c})", e.message),
                None => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A mutation payload's `userErrors` as dead-letter reasons naming the field
/// (`order.lineItems.0.variantId: …`). Empty when there are none.
pub fn user_errors(payload: &Value) -> Vec<String> {
    payload
        .get("userErrors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let field = e
                        .get("field")
                        .and_then(Value::as_array)
                        .map(|f| {
                            f.iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .filter(|f| !f.is_empty())
                        .unwrap_or_else(|| "(no field)".into());
                    let msg = e.get("message").and_then(Value::as_str).unwrap_or("(no message)");
                    match e.get("code").and_then(Value::as_str) {
                        Some(c) => format!("{field}: {msg} ({c})"),
                        None => format!("{field}: {msg}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The request body of a document with its variables.
pub fn body(query: &str, variables: Value) -> Vec<u8> {
    json!({"query": query, "variables": variables}).to_string().into_bytes()
}

/// The trailing number of a global id (`gid://shopify/Order/1001` → 1001).
pub fn gid_number(gid: &str) -> Option<u64> {
    gid.rsplit('/').next()?.split('?').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_published_rules() {
        let op = parse(
            "query($n: Int!) { productVariants(first: $n) { nodes { id sku inventoryItem { id } } pageInfo { hasNextPage endCursor } } }",
            &json!({"n": 100}).as_object().cloned().unwrap_or_default(),
        )
        .expect("parses");
        // 2 + 100 × (node 1 + inventoryItem 1).
        assert_eq!(requested_cost(&op), 202);
        let m = parse("mutation { orderCreate(order: {}) { order { id } userErrors { field message } } }", &Map::new())
            .expect("parses");
        assert_eq!(requested_cost(&m), 10);
        assert!(parse("query { ...F } fragment F on QueryRoot { shop { id } }", &Map::new()).is_err());
        assert!(parse("query($x: String!) { orders(query: $x) { nodes { id } } }", &Map::new()).is_err());
        let full = json!({"id": "gid://shopify/Order/1", "name": "#1001", "tags": []});
        let sel = parse("{ o { id } }", &Map::new()).expect("parses").fields[0].selection.clone();
        assert_eq!(project(&full, &sel, "Order").ok(), Some(json!({"id": "gid://shopify/Order/1"})));
        let bad = parse("{ o { price } }", &Map::new()).expect("parses").fields[0].selection.clone();
        assert_eq!(project(&full, &bad, "Order").err().as_deref(), Some("Field 'price' doesn't exist on type 'Order'"));
        assert_eq!(gid_number("gid://shopify/Order/1001"), Some(1001));
    }
}
