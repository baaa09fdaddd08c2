//! The wire API of `/invocations`: request bodies in the three accepted shapes (Hugging Face
//! inference toolkit, shorthand, the reference sample's), JSON Lines, and the response shapes of
//! the transformers pipeline. Pure functions: no HTTP here.

use serde_json::{Map, Value};
use squint_core::{Answer, QaParams};

/// What was wrong with a request, naming the field (`inputs[2].context`, `parameters.top_k`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WireError {
    pub field: String,
    pub message: String,
}

impl WireError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        WireError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One question about one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub question: String,
    pub context: String,
}

/// Which loaded model a request asks for (the reference sample's `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Int8,
    Fp32,
}

impl Version {
    pub fn label(self) -> &'static str {
        match self {
            Version::Int8 => "INT8",
            Version::Fp32 => "FP32",
        }
    }
}

/// A parsed request: one query (answered with one object or list) or a batch (a list per query).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub queries: Vec<Query>,
    pub batch: bool,
    pub params: QaParams,
    pub version: Option<Version>,
}

/// Keys a request object may carry (anything else is a typo worth reporting).
const TOP_LEVEL: [&str; 5] = ["inputs", "parameters", "question", "context", "version"];

/// Parses one JSON request body.
pub fn parse_json(body: &[u8]) -> Result<Request, WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WireError::new("body", format!("not valid JSON: {e}")))?;
    parse_value(&value, "")
}

/// Parses an `application/jsonlines` body: one request per non-empty line; errors name the line.
pub fn parse_jsonlines(body: &[u8]) -> Result<Vec<Request>, WireError> {
    let text = std::str::from_utf8(body).map_err(|_| WireError::new("body", "not UTF-8"))?;
    let mut requests = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", n + 1);
        let value: Value =
            serde_json::from_str(line).map_err(|e| WireError::new(&at, format!("not valid JSON: {e}")))?;
        requests.push(parse_value(&value, &format!("{at}: "))?);
    }
    if requests.is_empty() {
        return Err(WireError::new("body", "no JSON lines"));
    }
    Ok(requests)
}

fn parse_value(value: &Value, at: &str) -> Result<Request, WireError> {
    let field = |name: &str| format!("{at}{name}");
    let Some(obj) = value.as_object() else {
        return Err(WireError::new(field("body"), "must be a JSON object"));
    };
    if let Some(key) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(WireError::new(
            field(key),
            "unknown field (expected inputs, parameters, question, context, version)",
        ));
    }
    let params = match obj.get("parameters") {
        None | Some(Value::Null) => QaParams::default(),
        Some(p @ Value::Object(_)) => serde_json::from_value(p.clone())
            .map_err(|e| WireError::new(field("parameters"), e.to_string()))?,
        Some(_) => return Err(WireError::new(field("parameters"), "must be an object")),
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if v.eq_ignore_ascii_case("int8") => Some(Version::Int8),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("fp32") => Some(Version::Fp32),
        Some(other) => {
            return Err(WireError::new(
                field("version"),
                format!("must be \"INT8\" or \"FP32\", got {other}"),
            ))
        }
    };
    let (queries, batch) = match obj.get("inputs") {
        Some(inputs) => {
            if obj.contains_key("question") || obj.contains_key("context") {
                return Err(WireError::new(
                    field("inputs"),
                    "give either inputs or top-level question/context, not both",
                ));
            }
            match inputs {
                Value::Object(q) => (vec![query(q, &field("inputs"))?], false),
                Value::Array(items) if items.is_empty() => {
                    return Err(WireError::new(field("inputs"), "is an empty list"))
                }
                Value::Array(items) => {
                    let queries = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let at = field(&format!("inputs[{i}]"));
                            item.as_object()
                                .ok_or_else(|| WireError::new(&at, "must be an object {question, context}"))
                                .and_then(|q| query(q, &at))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    (queries, true)
                }
                _ => {
                    return Err(WireError::new(
                        field("inputs"),
                        "must be an object {question, context} or a list of them",
                    ))
                }
            }
        }
        None if obj.contains_key("question") || obj.contains_key("context") => {
            (vec![query(obj, at.trim_end_matches(' '))?], false)
        }
        None => {
            return Err(WireError::new(
                field("inputs"),
                "missing: send {\"inputs\": {\"question\": ..., \"context\": ...}} or {\"question\": ..., \"context\": ...}",
            ))
        }
    };
    Ok(Request {
        queries,
        batch,
        params,
        version,
    })
}

fn query(obj: &Map<String, Value>, at: &str) -> Result<Query, WireError> {
    let text = |name: &str| {
        let field = if at.is_empty() {
            name.to_string()
        } else if at.ends_with(':') {
            format!("{at} {name}")
        } else {
            format!("{at}.{name}")
        };
        match obj.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(WireError::new(field, "is empty")),
            Some(_) => Err(WireError::new(field, "must be a string")),
            None => Err(WireError::new(field, "missing")),
        }
    };
    Ok(Query {
        question: text("question")?,
        context: text("context")?,
    })
}

/// The transformers pipeline's response shape: one object for one answer, a list for several,
/// and a list of those for a batch.
pub fn render(request: &Request, answers: Vec<Vec<Answer>>) -> Value {
    let one = |mut list: Vec<Answer>| -> Value {
        if request.params.top_k == 1 {
            let first = if list.is_empty() {
                Answer {
                    score: 0.0,
                    start: 0,
                    end: 0,
                    answer: String::new(),
                }
            } else {
                list.swap_remove(0)
            };
            serde_json::to_value(first).unwrap_or(Value::Null)
        } else {
            serde_json::to_value(list).unwrap_or(Value::Null)
        }
    };
    let mut rendered: Vec<Value> = answers.into_iter().map(one).collect();
    if request.batch || rendered.len() != 1 {
        Value::Array(rendered)
    } else {
        rendered.pop().unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, WireError> {
        parse_json(s.as_bytes())
    }

    #[test]
    fn three_request_shapes() {
        let hf =
            parse(r#"{"inputs": {"question": "q?", "context": "c."}, "parameters": {"top_k": 2}}"#).unwrap();
        assert_eq!((hf.queries.len(), hf.batch, hf.params.top_k), (1, false, 2));
        let batch =
            parse(r#"{"inputs": [{"question": "a?", "context": "c"}, {"question": "b?", "context": "d"}]}"#)
                .unwrap();
        assert_eq!((batch.queries.len(), batch.batch), (2, true));
        assert_eq!(batch.queries[1].question, "b?");
        let short = parse(r#"{"question": "q?", "context": "c."}"#).unwrap();
        assert_eq!(
            (short.queries.len(), short.batch, short.version),
            (1, false, None)
        );
        let reference = parse(r#"{"context": "c.", "question": "q?", "version": "FP32"}"#).unwrap();
        assert_eq!(reference.version, Some(Version::Fp32));
        assert_eq!(
            parse(r#"{"question": "q", "context": "c", "version": "int8"}"#)
                .unwrap()
                .version,
            Some(Version::Int8)
        );
        let legacy =
            parse(r#"{"inputs": {"question": "q", "context": "c"}, "parameters": {"topk": 3}}"#).unwrap();
        assert_eq!(legacy.params.top_k, 3);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |s: &str| parse(s).unwrap_err().field;
        assert_eq!(field("nope"), "body");
        assert_eq!(field("[1, 2]"), "body");
        assert_eq!(field("{}"), "inputs");
        assert_eq!(field(r#"{"inputs": {"context": "c"}}"#), "inputs.question");
        assert_eq!(
            field(r#"{"inputs": {"question": "q", "context": 5}}"#),
            "inputs.context"
        );
        assert_eq!(
            field(r#"{"inputs": [{"question": "q", "context": "c"}, {"question": "q"}]}"#),
            "inputs[1].context"
        );
        assert_eq!(
            field(r#"{"inputs": [{"question": "q", "context": "c"}, 7]}"#),
            "inputs[1]"
        );
        assert_eq!(field(r#"{"inputs": []}"#), "inputs");
        assert_eq!(field(r#"{"inputs": "text"}"#), "inputs");
        assert_eq!(field(r#"{"question": "  ", "context": "c"}"#), "question");
        assert_eq!(field(r#"{"question": "q"}"#), "context");
        assert_eq!(
            field(r#"{"question": "q", "context": "c", "version": "BF16"}"#),
            "version"
        );
        assert_eq!(field(r#"{"question": "q", "context": "c", "extra": 1}"#), "extra");
        assert_eq!(
            field(r#"{"inputs": {"question": "q", "context": "c"}, "question": "q"}"#),
            "inputs"
        );
        let e = parse(r#"{"question": "q", "context": "c", "parameters": {"top_kk": 1}}"#).unwrap_err();
        assert_eq!(e.field, "parameters");
        assert!(e.message.contains("top_kk"), "{e}");
        assert_eq!(
            field(r#"{"question": "q", "context": "c", "parameters": {"top_k": "x"}}"#),
            "parameters"
        );
    }

    #[test]
    fn json_lines_name_the_line() {
        let ok = parse_jsonlines(b"{\"question\": \"a?\", \"context\": \"c\"}\n\n{\"inputs\": {\"question\": \"b?\", \"context\": \"d\"}}\n").unwrap();
        assert_eq!(ok.len(), 2);
        let e = parse_jsonlines(b"{\"question\": \"a?\", \"context\": \"c\"}\n{\"question\": \"b?\"}\n")
            .unwrap_err();
        assert_eq!(e.field, "line 2: context");
        assert_eq!(
            parse_jsonlines(b"{\"question\": \"a?\", \"context\": \"c\"}\nnot json")
                .unwrap_err()
                .field,
            "line 2"
        );
        assert_eq!(parse_jsonlines(b"\n\n").unwrap_err().field, "body");
    }

    #[test]
    fn response_shapes_follow_the_pipeline() {
        let a = |s: &str| Answer {
            score: 0.5,
            start: 0,
            end: s.len(),
            answer: s.into(),
        };
        let single = parse(r#"{"question": "q", "context": "c"}"#).unwrap();
        assert!(render(&single, vec![vec![a("x")]]).is_object());
        let top2 = parse(r#"{"question": "q", "context": "c", "parameters": {"top_k": 2}}"#).unwrap();
        assert_eq!(
            render(&top2, vec![vec![a("x"), a("y")]])
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let batch = parse(r#"{"inputs": [{"question": "q", "context": "c"}]}"#).unwrap();
        let out = render(&batch, vec![vec![a("x")]]);
        assert!(out.as_array().unwrap()[0].is_object(), "{out}");
    }
}
