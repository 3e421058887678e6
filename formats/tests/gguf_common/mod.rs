//! Helpers shared by the GGUF integration tests: the fixture sidecars written by make_fixtures.py (and by
//! gguf_interop.rs for check_gguf_py.py) in one JSON shape.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ossify_formats::gguf::{GgufWriter, MetaArray, MetaValue};
use ossify_formats::DType;
use serde_json::{json, Value};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tensor as the sidecar describes it.
pub struct SideTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

pub struct Sidecar {
    pub alignment: usize,
    pub kv: Vec<(String, MetaValue)>,
    pub tensors: Vec<SideTensor>,
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn parse_sidecar(v: &Value) -> Sidecar {
    let kv = v["kv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let key = e["key"].as_str().unwrap().to_owned();
            let ty = e["type"].as_str().unwrap();
            (key, meta_from_json(ty, &e["value"]))
        })
        .collect();
    let tensors = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| SideTensor {
            name: t["name"].as_str().unwrap().to_owned(),
            dtype: DType::from_name(t["ggml_type"].as_str().unwrap()).unwrap(),
            shape: t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            bytes: hex_decode(t["hex"].as_str().unwrap()),
        })
        .collect();
    Sidecar {
        alignment: v["alignment"].as_u64().unwrap() as usize,
        kv,
        tensors,
    }
}

/// The MetaValue a sidecar entry describes ("UINT32", "ARRAY:STRING", "ARRAY:ARRAY:INT32").
pub fn meta_from_json(ty: &str, v: &Value) -> MetaValue {
    match ty.split_once(':') {
        Some(("ARRAY", elem)) => MetaValue::Array(array_from_json(elem, v)),
        _ => match ty {
            "UINT8" => MetaValue::U8(v.as_u64().unwrap() as u8),
            "INT8" => MetaValue::I8(v.as_i64().unwrap() as i8),
            "UINT16" => MetaValue::U16(v.as_u64().unwrap() as u16),
            "INT16" => MetaValue::I16(v.as_i64().unwrap() as i16),
            "UINT32" => MetaValue::U32(v.as_u64().unwrap() as u32),
            "INT32" => MetaValue::I32(v.as_i64().unwrap() as i32),
            "FLOAT32" => MetaValue::F32(v.as_f64().unwrap() as f32),
            "BOOL" => MetaValue::Bool(v.as_bool().unwrap()),
            "STRING" => MetaValue::String(v.as_str().unwrap().to_owned()),
            "UINT64" => MetaValue::U64(v.as_u64().unwrap()),
            "INT64" => MetaValue::I64(v.as_i64().unwrap()),
            "FLOAT64" => MetaValue::F64(v.as_f64().unwrap()),
            other => panic!("unknown sidecar type {other}"),
        },
    }
}

fn array_from_json(elem: &str, v: &Value) -> MetaArray {
    let items = v.as_array().unwrap();
    macro_rules! each {
        ($variant:ident, $f:expr) => {
            MetaArray::$variant(items.iter().map($f).collect())
        };
    }
    if let Some(("ARRAY", inner)) = elem.split_once(':') {
        return MetaArray::Array(items.iter().map(|x| array_from_json(inner, x)).collect());
    }
    match elem {
        "UINT8" => each!(U8, |x| x.as_u64().unwrap() as u8),
        "INT8" => each!(I8, |x| x.as_i64().unwrap() as i8),
        "UINT16" => each!(U16, |x| x.as_u64().unwrap() as u16),
        "INT16" => each!(I16, |x| x.as_i64().unwrap() as i16),
        "UINT32" => each!(U32, |x| x.as_u64().unwrap() as u32),
        "INT32" => each!(I32, |x| x.as_i64().unwrap() as i32),
        "FLOAT32" => each!(F32, |x| x.as_f64().unwrap() as f32),
        "BOOL" => each!(Bool, |x| x.as_bool().unwrap()),
        "STRING" => each!(String, |x| x.as_str().unwrap().to_owned()),
        "UINT64" => each!(U64, |x| x.as_u64().unwrap()),
        "INT64" => each!(I64, |x| x.as_i64().unwrap()),
        "FLOAT64" => each!(F64, |x| x.as_f64().unwrap()),
        other => panic!("unknown sidecar element type {other}"),
    }
}

/// The sidecar form of a value: (type descriptor, JSON value). For an empty array of arrays the inner element
/// type is unknowable; it is written as "ARRAY:ARRAY:UINT8".
pub fn meta_to_json(v: &MetaValue) -> (String, Value) {
    match v {
        MetaValue::U8(x) => ("UINT8".into(), json!(x)),
        MetaValue::I8(x) => ("INT8".into(), json!(x)),
        MetaValue::U16(x) => ("UINT16".into(), json!(x)),
        MetaValue::I16(x) => ("INT16".into(), json!(x)),
        MetaValue::U32(x) => ("UINT32".into(), json!(x)),
        MetaValue::I32(x) => ("INT32".into(), json!(x)),
        MetaValue::F32(x) => ("FLOAT32".into(), json!(f64::from(*x))),
        MetaValue::Bool(x) => ("BOOL".into(), json!(x)),
        MetaValue::String(x) => ("STRING".into(), json!(x)),
        MetaValue::U64(x) => ("UINT64".into(), json!(x)),
        MetaValue::I64(x) => ("INT64".into(), json!(x)),
        MetaValue::F64(x) => ("FLOAT64".into(), json!(x)),
        MetaValue::Array(a) => {
            let (t, v) = array_to_json(a);
            (format!("ARRAY:{t}"), v)
        }
    }
}

fn array_to_json(a: &MetaArray) -> (String, Value) {
    match a {
        MetaArray::U8(v) => ("UINT8".into(), json!(v)),
        MetaArray::I8(v) => ("INT8".into(), json!(v)),
        MetaArray::U16(v) => ("UINT16".into(), json!(v)),
        MetaArray::I16(v) => ("INT16".into(), json!(v)),
        MetaArray::U32(v) => ("UINT32".into(), json!(v)),
        MetaArray::I32(v) => ("INT32".into(), json!(v)),
        MetaArray::F32(v) => (
            "FLOAT32".into(),
            json!(v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()),
        ),
        MetaArray::Bool(v) => ("BOOL".into(), json!(v)),
        MetaArray::String(v) => ("STRING".into(), json!(v)),
        MetaArray::U64(v) => ("UINT64".into(), json!(v)),
        MetaArray::I64(v) => ("INT64".into(), json!(v)),
        MetaArray::F64(v) => ("FLOAT64".into(), json!(v)),
        MetaArray::Array(v) => {
            let inner_t = v
                .first()
                .map(|x| array_to_json(x).0)
                .unwrap_or_else(|| "UINT8".into());
            let vals: Vec<Value> = v.iter().map(|x| array_to_json(x).1).collect();
            (format!("ARRAY:{inner_t}"), Value::Array(vals))
        }
    }
}

/// Writes what a sidecar describes with our writer, tensors in reverse order to exercise positioned writes.
pub fn write_with_ours(side: &Sidecar, path: &Path) {
    let mut w = GgufWriter::new();
    for (k, v) in &side.kv {
        w.add_kv(k, v.clone()).unwrap();
    }
    for t in &side.tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape).unwrap();
    }
    assert_eq!(w.alignment(), side.alignment);
    let out = w.create(path).unwrap();
    for (i, t) in side.tensors.iter().enumerate().rev() {
        out.write_tensor(i, &t.bytes).unwrap();
    }
    out.finish().unwrap();
}
