//! SQL values and parameters as the connection layer sees them (no JS types here).

use crate::error::{Error, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Statement, ToSql};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// Parameters of one statement: positional (`?`, `?NNN`) or named (`:a`, `@a`, `$a`, given
/// without their sigil).
#[derive(Debug, Clone, Default)]
pub enum Params {
    #[default]
    None,
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

impl Params {
    pub fn bind(&self, stmt: &mut Statement<'_>) -> Result<()> {
        let wanted = stmt.parameter_count();
        match self {
            Params::None if wanted == 0 => Ok(()),
            Params::None => Err(Error::new(
                "SQLITE_RANGE",
                format!("the statement takes {wanted} parameters, none given"),
            )),
            Params::Positional(values) => {
                if values.len() != wanted {
                    return Err(Error::new(
                        "SQLITE_RANGE",
                        format!(
                            "the statement takes {wanted} parameters, {} given",
                            values.len()
                        ),
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, v)?;
                }
                Ok(())
            }
            Params::Named(values) => {
                for i in 1..=wanted {
                    let Some(name) = stmt.parameter_name(i) else {
                        return Err(Error::invalid(format!(
                            "parameter {i} is positional (?), but named parameters were given"
                        )));
                    };
                    let bare = &name[1..];
                    let value = values.iter().find(|(k, _)| k == bare || k == name);
                    match value {
                        Some((_, v)) => stmt.raw_bind_parameter(i, v)?,
                        None => {
                            return Err(Error::invalid(format!(
                                "missing named parameter {bare:?} (for {name})"
                            )))
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Rows of a result, row-major: `values.len() == rows * columns.len()`.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub values: Vec<Value>,
    /// No more rows follow (for batches of an iterator).
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct RunResult {
    pub changes: u64,
    pub last_insert_rowid: i64,
}
