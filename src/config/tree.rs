//! A TOML document as a tree in which every value and key carries its byte span, so that
//! validation can name the line of each problem and report all of them at once (serde stops at
//! the first). Parsed with `toml_edit` (the parser under the `toml` crate), which keeps spans.

use std::ops::Range;

/// A value with its span in the source.
#[derive(Debug, Clone)]
pub struct Node {
    /// Byte range of the value (for a `[table]`, its header).
    pub span: Range<usize>,
    /// The value.
    pub value: Value,
}

/// A TOML value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// A date-time, date or time (never valid in this schema).
    Datetime,
    /// An array (or array of tables).
    Array(Vec<Node>),
    /// A table, keys in document order.
    Table(Vec<(Key, Node)>),
}

/// A table key with its span.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Byte range of the key.
    pub span: Range<usize>,
}

impl Value {
    /// What the value is, for error messages ("a string", "an integer", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A syntax error: byte offset and message.
pub struct SyntaxError {
    /// Where.
    pub offset: usize,
    /// What, as the parser says it.
    pub message: String,
}

/// Parse TOML text into a spanned tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| SyntaxError {
        offset: e.span().map(|s| s.start).unwrap_or(0),
        message: e.message().to_owned(),
    })?;
    Ok(table(doc.as_table(), 0..0))
}

fn table(t: &toml_edit::Table, fallback: Range<usize>) -> Node {
    let span = t.span().unwrap_or(fallback);
    let entries = t
        .iter()
        .map(|(name, item)| {
            let key_span = t
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .unwrap_or_else(|| span.clone());
            let node = self::item(item, key_span.clone());
            (
                Key {
                    name: name.to_owned(),
                    span: key_span,
                },
                node,
            )
        })
        .collect();
    Node {
        span,
        value: Value::Table(entries),
    }
}

fn item(item: &toml_edit::Item, fallback: Range<usize>) -> Node {
    match item {
        toml_edit::Item::Value(v) => value(v, fallback),
        toml_edit::Item::Table(t) => table(t, fallback),
        toml_edit::Item::ArrayOfTables(a) => {
            let span = a.span().unwrap_or(fallback);
            let items = a.iter().map(|t| table(t, span.clone())).collect();
            Node {
                span,
                value: Value::Array(items),
            }
        }
        toml_edit::Item::None => Node {
            span: fallback,
            value: Value::Table(Vec::new()),
        },
    }
}

fn value(v: &toml_edit::Value, fallback: Range<usize>) -> Node {
    let span = v.span().unwrap_or(fallback);
    let value = match v {
        toml_edit::Value::String(s) => Value::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::Integer(*i.value()),
        toml_edit::Value::Float(f) => Value::Float(*f.value()),
        toml_edit::Value::Boolean(b) => Value::Boolean(*b.value()),
        toml_edit::Value::Datetime(_) => Value::Datetime,
        toml_edit::Value::Array(a) => {
            Value::Array(a.iter().map(|v| value(v, span.clone())).collect())
        }
        toml_edit::Value::InlineTable(t) => {
            let entries = t
                .iter()
                .map(|(name, v)| {
                    let key_span = t
                        .get_key_value(name)
                        .and_then(|(k, _)| k.span())
                        .unwrap_or_else(|| span.clone());
                    let node = value(v, key_span.clone());
                    (
                        Key {
                            name: name.to_owned(),
                            span: key_span,
                        },
                        node,
                    )
                })
                .collect();
            Value::Table(entries)
        }
    };
    Node { span, value }
}
