//! SQL values between JS and Rust. The TypeScript layer normalises what users pass (booleans,
//! undefined, Uint8Array) to these five JS types first.

use crate::connection::{Params, Rows, RunResult, Value};
use crate::error::{Error, Result};
use napi::bindgen_prelude::{BigInt, Buffer, Either, Either5, Null};
use std::collections::HashMap;

pub type JsValue = Either5<Null, f64, BigInt, String, Buffer>;

const MAX_SAFE: i64 = (1 << 53) - 1;

fn to_value(v: JsValue) -> Result<Value> {
    Ok(match v {
        Either5::A(_) => Value::Null,
        Either5::B(n) => {
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE as f64 {
                Value::Integer(n as i64)
            } else {
                Value::Real(n)
            }
        }
        Either5::C(b) => {
            let (value, lossless) = b.get_i64();
            if !lossless {
                return Err(Error::new(
                    "SQLITE_TOOBIG",
                    "a bigint parameter does not fit in SQLite's 64-bit INTEGER",
                ));
            }
            Value::Integer(value)
        }
        Either5::D(s) => Value::Text(s),
        Either5::E(b) => Value::Blob(b.to_vec()),
    })
}

fn to_js(v: Value) -> JsValue {
    match v {
        Value::Null => Either5::A(Null),
        Value::Integer(i) if (-MAX_SAFE..=MAX_SAFE).contains(&i) => Either5::B(i as f64),
        Value::Integer(i) => Either5::C(BigInt::from(i)),
        Value::Real(f) => Either5::B(f),
        Value::Text(s) => Either5::D(s),
        Value::Blob(b) => Either5::E(Buffer::from(b)),
    }
}

#[napi(object)]
pub struct JsParams {
    pub positional: Option<Vec<JsValue>>,
    pub named: Option<HashMap<String, JsValue>>,
}

pub fn params(p: Option<JsParams>) -> Result<Params> {
    let Some(p) = p else {
        return Ok(Params::None);
    };
    if let Some(values) = p.positional {
        return Ok(Params::Positional(
            values.into_iter().map(to_value).collect::<Result<_>>()?,
        ));
    }
    if let Some(named) = p.named {
        return Ok(Params::Named(
            named
                .into_iter()
                .map(|(k, v)| Ok((k, to_value(v)?)))
                .collect::<Result<_>>()?,
        ));
    }
    Ok(Params::None)
}

/// Rows, row-major: the TypeScript layer builds one object per row.
#[napi(object)]
pub struct JsRows {
    pub columns: Vec<String>,
    pub values: Vec<JsValue>,
    pub done: bool,
}

impl From<Rows> for JsRows {
    fn from(r: Rows) -> Self {
        JsRows {
            columns: r.columns,
            values: r.values.into_iter().map(to_js).collect(),
            done: r.done,
        }
    }
}

#[napi(object)]
pub struct JsRunResult {
    pub changes: f64,
    pub last_insert_rowid: Either<f64, BigInt>,
}

impl From<RunResult> for JsRunResult {
    fn from(r: RunResult) -> Self {
        let id = r.last_insert_rowid;
        JsRunResult {
            changes: r.changes as f64,
            last_insert_rowid: if (-MAX_SAFE..=MAX_SAFE).contains(&id) {
                Either::A(id as f64)
            } else {
                Either::B(BigInt::from(id))
            },
        }
    }
}
