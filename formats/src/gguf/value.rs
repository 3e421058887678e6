//! Metadata values as GGUF stores them: scalars, strings and typed arrays (which may nest).

use super::constants::GgufValueType;

/// Deepest array nesting we read or write (an array of arrays is depth 2). gguf-py can write arrays of arrays;
/// ggml reads none; real files have none.
pub(crate) const MAX_ARRAY_DEPTH: usize = 4;

/// One metadata value. The variant is the GGUF value type, so a value read and written back keeps its type
/// (llama.cpp is strict about types: `general.alignment` must be u32, token types i32, ...).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(MetaArray),
}

/// A typed array: every element has the array's element type. Nested arrays carry their own element types.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Array(Vec<MetaArray>),
}

impl MetaValue {
    pub fn value_type(&self) -> GgufValueType {
        use GgufValueType as T;
        match self {
            MetaValue::U8(_) => T::Uint8,
            MetaValue::I8(_) => T::Int8,
            MetaValue::U16(_) => T::Uint16,
            MetaValue::I16(_) => T::Int16,
            MetaValue::U32(_) => T::Uint32,
            MetaValue::I32(_) => T::Int32,
            MetaValue::F32(_) => T::Float32,
            MetaValue::Bool(_) => T::Bool,
            MetaValue::String(_) => T::String,
            MetaValue::U64(_) => T::Uint64,
            MetaValue::I64(_) => T::Int64,
            MetaValue::F64(_) => T::Float64,
            MetaValue::Array(_) => T::Array,
        }
    }

    /// Any integer value as i128, so the lossless conversions below need one range check each.
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as u32 if it is an integer of any GGUF type that fits in u32 without loss.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_integer().and_then(|v| u32::try_from(v).ok())
    }

    /// The value as u64 if it is a non-negative integer of any GGUF type.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as i64 if it is an integer of any GGUF type that fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as i32 if it is an integer of any GGUF type that fits in i32.
    pub fn as_i32(&self) -> Option<i32> {
        self.as_integer().and_then(|v| i32::try_from(v).ok())
    }

    /// An f32 value (an f64 value is not narrowed: ask for [`MetaValue::as_f64`]).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetaValue::F32(v) => Some(v),
            _ => None,
        }
    }

    /// An f32 or f64 value, widened to f64 (exact).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_string_array(&self) -> Option<&[String]> {
        match self {
            MetaValue::Array(MetaArray::String(v)) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32_array(&self) -> Option<&[i32]> {
        match self {
            MetaValue::Array(MetaArray::I32(v)) => Some(v),
            _ => None,
        }
    }

    pub fn as_u32_array(&self) -> Option<&[u32]> {
        match self {
            MetaValue::Array(MetaArray::U32(v)) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32_array(&self) -> Option<&[f32]> {
        match self {
            MetaValue::Array(MetaArray::F32(v)) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool_array(&self) -> Option<&[bool]> {
        match self {
            MetaValue::Array(MetaArray::Bool(v)) => Some(v),
            _ => None,
        }
    }

    /// A one-line rendering for `inspect`: scalars as they are, strings quoted and cut at 60 characters, arrays
    /// abbreviated ("[201088 strings]", "[3 u32: 1, 2, 3]").
    pub fn summary(&self) -> String {
        match self {
            MetaValue::U8(v) => v.to_string(),
            MetaValue::I8(v) => v.to_string(),
            MetaValue::U16(v) => v.to_string(),
            MetaValue::I16(v) => v.to_string(),
            MetaValue::U32(v) => v.to_string(),
            MetaValue::I32(v) => v.to_string(),
            MetaValue::F32(v) => v.to_string(),
            MetaValue::Bool(v) => v.to_string(),
            MetaValue::String(s) => quote_cut(s, 60),
            MetaValue::U64(v) => v.to_string(),
            MetaValue::I64(v) => v.to_string(),
            MetaValue::F64(v) => v.to_string(),
            MetaValue::Array(a) => a.summary(),
        }
    }
}

/// `"text"` with escapes, cut after `max` characters with the full length noted.
fn quote_cut(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head:?}... ({n} chars)")
    }
}

impl MetaArray {
    /// The type of the elements (`Array` for an array of arrays).
    pub fn element_type(&self) -> GgufValueType {
        use GgufValueType as T;
        match self {
            MetaArray::U8(_) => T::Uint8,
            MetaArray::I8(_) => T::Int8,
            MetaArray::U16(_) => T::Uint16,
            MetaArray::I16(_) => T::Int16,
            MetaArray::U32(_) => T::Uint32,
            MetaArray::I32(_) => T::Int32,
            MetaArray::F32(_) => T::Float32,
            MetaArray::Bool(_) => T::Bool,
            MetaArray::String(_) => T::String,
            MetaArray::U64(_) => T::Uint64,
            MetaArray::I64(_) => T::Int64,
            MetaArray::F64(_) => T::Float64,
            MetaArray::Array(_) => T::Array,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
            MetaArray::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// 1 for an array of scalars or strings, 1 + the deepest element for an array of arrays.
    pub fn depth(&self) -> usize {
        match self {
            MetaArray::Array(v) => 1 + v.iter().map(MetaArray::depth).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// "[201088 strings]" for string arrays and arrays of arrays; numbers show their first few values.
    pub fn summary(&self) -> String {
        fn nums<T: ToString>(ty: &str, v: &[T]) -> String {
            const SHOW: usize = 8;
            let shown: Vec<String> = v.iter().take(SHOW).map(|x| x.to_string()).collect();
            let more = if v.len() > SHOW { ", ..." } else { "" };
            if v.is_empty() {
                format!("[0 {ty}]")
            } else {
                format!("[{} {ty}: {}{more}]", v.len(), shown.join(", "))
            }
        }
        match self {
            MetaArray::U8(v) => nums("u8", v),
            MetaArray::I8(v) => nums("i8", v),
            MetaArray::U16(v) => nums("u16", v),
            MetaArray::I16(v) => nums("i16", v),
            MetaArray::U32(v) => nums("u32", v),
            MetaArray::I32(v) => nums("i32", v),
            MetaArray::F32(v) => nums("f32", v),
            MetaArray::Bool(v) => nums("bool", v),
            MetaArray::U64(v) => nums("u64", v),
            MetaArray::I64(v) => nums("i64", v),
            MetaArray::F64(v) => nums("f64", v),
            MetaArray::String(v) => format!("[{} strings]", v.len()),
            MetaArray::Array(v) => format!("[{} arrays]", v.len()),
        }
    }
}

/// Items of an array [`MetaValue::dump`] shows, as gguf-dump does (`field.contents(slice(6))`).
pub const DUMP_ARRAY_ITEMS: usize = 6;
/// Characters of a string [`MetaValue::dump`] shows (gguf-dump cuts at 60 too).
pub const DUMP_STRING_CHARS: usize = 60;

impl MetaValue {
    /// The value as gguf-py's `gguf-dump` shows it: scalars as they are, strings quoted with every control or
    /// invisible character escaped (`\n`, `\u{202e}`: nothing raw reaches the terminal) and cut after 60
    /// characters with the length noted, arrays as their first 6 items followed by `...`.
    pub fn dump(&self) -> String {
        match self {
            MetaValue::String(s) => quote_cut(s, DUMP_STRING_CHARS),
            MetaValue::F32(v) => format!("{v:?}"),
            MetaValue::F64(v) => format!("{v:?}"),
            MetaValue::Array(a) => a.dump(),
            other => other.summary(),
        }
    }
}

impl MetaArray {
    /// `[item, item, ...]`: the first [`DUMP_ARRAY_ITEMS`] items, each as [`MetaValue::dump`] shows a scalar.
    pub fn dump(&self) -> String {
        fn items<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
            let shown: Vec<String> = v.iter().take(DUMP_ARRAY_ITEMS).map(f).collect();
            let more = if v.len() > DUMP_ARRAY_ITEMS {
                ", ..."
            } else {
                ""
            };
            format!("[{}{more}]", shown.join(", "))
        }
        match self {
            MetaArray::U8(v) => items(v, u8::to_string),
            MetaArray::I8(v) => items(v, i8::to_string),
            MetaArray::U16(v) => items(v, u16::to_string),
            MetaArray::I16(v) => items(v, i16::to_string),
            MetaArray::U32(v) => items(v, u32::to_string),
            MetaArray::I32(v) => items(v, i32::to_string),
            MetaArray::F32(v) => items(v, |x| format!("{x:?}")),
            MetaArray::Bool(v) => items(v, bool::to_string),
            MetaArray::String(v) => items(v, |x| quote_cut(x, DUMP_STRING_CHARS)),
            MetaArray::U64(v) => items(v, u64::to_string),
            MetaArray::I64(v) => items(v, i64::to_string),
            MetaArray::F64(v) => items(v, |x| format!("{x:?}")),
            MetaArray::Array(v) => items(v, MetaArray::dump),
        }
    }

    /// gguf-dump's type column: `[STRING]` for an array of strings, `[[INT32]]` for an array of arrays of i32
    /// (the innermost element type of the first element, as gguf-py records an array's types).
    pub fn dump_type(&self) -> String {
        let mut depth = 1;
        let mut a = self;
        while let MetaArray::Array(inner) = a {
            match inner.first() {
                Some(first) => {
                    depth += 1;
                    a = first;
                }
                None => break,
            }
        }
        format!(
            "{}{}{}",
            "[".repeat(depth),
            a.element_type().gguf_py_name(),
            "]".repeat(depth)
        )
    }
}

/// JSON: integers, strings and bools as themselves, floats as numbers (the shortest text that reads back to the
/// same f32 / f64; NaN and infinities, which JSON cannot hold, as the strings "nan", "inf", "-inf"), arrays as
/// lists (nested for arrays of arrays), whole.
impl serde::Serialize for MetaValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetaValue::U8(v) => s.serialize_u8(*v),
            MetaValue::I8(v) => s.serialize_i8(*v),
            MetaValue::U16(v) => s.serialize_u16(*v),
            MetaValue::I16(v) => s.serialize_i16(*v),
            MetaValue::U32(v) => s.serialize_u32(*v),
            MetaValue::I32(v) => s.serialize_i32(*v),
            MetaValue::F32(v) => JsonF32(*v).serialize(s),
            MetaValue::Bool(v) => s.serialize_bool(*v),
            MetaValue::String(v) => s.serialize_str(v),
            MetaValue::U64(v) => s.serialize_u64(*v),
            MetaValue::I64(v) => s.serialize_i64(*v),
            MetaValue::F64(v) => JsonF64(*v).serialize(s),
            MetaValue::Array(a) => a.serialize(s),
        }
    }
}

impl serde::Serialize for MetaArray {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetaArray::U8(v) => s.collect_seq(v),
            MetaArray::I8(v) => s.collect_seq(v),
            MetaArray::U16(v) => s.collect_seq(v),
            MetaArray::I16(v) => s.collect_seq(v),
            MetaArray::U32(v) => s.collect_seq(v),
            MetaArray::I32(v) => s.collect_seq(v),
            MetaArray::F32(v) => s.collect_seq(v.iter().map(|&x| JsonF32(x))),
            MetaArray::Bool(v) => s.collect_seq(v),
            MetaArray::String(v) => s.collect_seq(v),
            MetaArray::U64(v) => s.collect_seq(v),
            MetaArray::I64(v) => s.collect_seq(v),
            MetaArray::F64(v) => s.collect_seq(v.iter().map(|&x| JsonF64(x))),
            MetaArray::Array(v) => s.collect_seq(v),
        }
    }
}

/// The name JSON gets for a float it cannot hold as a number.
fn non_finite_name(nan: bool, positive: bool) -> &'static str {
    match (nan, positive) {
        (true, _) => "nan",
        (false, true) => "inf",
        (false, false) => "-inf",
    }
}

struct JsonF32(f32);

impl serde::Serialize for JsonF32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f32(v)
        } else {
            s.serialize_str(non_finite_name(v.is_nan(), v > 0.0))
        }
    }
}

struct JsonF64(f64);

impl serde::Serialize for JsonF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else {
            s.serialize_str(non_finite_name(v.is_nan(), v > 0.0))
        }
    }
}

/// Appends `value`'s type id and bytes, as gguf-py's `_pack_val(val, vtype, add_vtype=True)` does.
pub(crate) fn encode_value(out: &mut Vec<u8>, value: &MetaValue) {
    out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
    match value {
        MetaValue::U8(v) => out.push(*v),
        MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.push(u8::from(*v)),
        MetaValue::String(s) => encode_str(out, s),
        MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Array(a) => encode_array(out, a),
    }
}

/// u64 byte length, then the UTF-8 bytes (no terminator).
pub(crate) fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Element type id, u64 count, elements. An element that is itself an array is written the same way, without a
/// type id of its own before it (the outer array's element type, `Array`, says what it is) — gguf-py's layout.
fn encode_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend_from_slice(&(a.element_type() as u32).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T, const N: usize>(out: &mut Vec<u8>, v: &[T], f: impl Fn(&T) -> [u8; N]) {
        out.reserve(v.len() * N);
        for x in v {
            out.extend_from_slice(&f(x));
        }
    }
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::U16(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::I16(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::U32(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::I32(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::F32(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::Bool(v) => each(out, v, |x| [u8::from(*x)]),
        MetaArray::String(v) => v.iter().for_each(|s| encode_str(out, s)),
        MetaArray::U64(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::I64(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::F64(v) => each(out, v, |x| x.to_le_bytes()),
        MetaArray::Array(v) => v.iter().for_each(|inner| encode_array(out, inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_integer_accessors() {
        assert_eq!(MetaValue::U8(7).as_u32(), Some(7));
        assert_eq!(MetaValue::I32(-1).as_u32(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_u32(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(MetaValue::F32(1.0).as_u32(), None);
        assert_eq!(MetaValue::F32(0.5).as_f64(), Some(0.5));
        assert_eq!(MetaValue::F64(0.5).as_f32(), None);
    }

    #[test]
    fn summaries_abbreviate() {
        let tokens = MetaValue::Array(MetaArray::String(vec!["a".into(); 201088]));
        assert_eq!(tokens.summary(), "[201088 strings]");
        let ids = MetaValue::Array(MetaArray::U32((0..10).collect()));
        assert_eq!(ids.summary(), "[10 u32: 0, 1, 2, 3, 4, 5, 6, 7, ...]");
        let long = MetaValue::String("x".repeat(100));
        assert!(long.summary().ends_with("... (100 chars)"));
        assert_eq!(MetaValue::String("gpt-oss".into()).summary(), "\"gpt-oss\"");
    }

    #[test]
    fn dumps_as_gguf_dump_does() {
        let tokens = MetaValue::Array(MetaArray::String(
            ["!", "\"", "#", "$", "%", "&", "'"]
                .map(String::from)
                .to_vec(),
        ));
        assert_eq!(tokens.dump(), r##"["!", "\"", "#", "$", "%", "&", ...]"##);
        let few = MetaValue::Array(MetaArray::I32(vec![1, -2]));
        assert_eq!(few.dump(), "[1, -2]");
        assert_eq!(MetaValue::F32(1e-5).dump(), "1e-5");
        assert_eq!(MetaValue::F32(150000.0).dump(), "150000.0");
        assert_eq!(MetaValue::Bool(true).dump(), "true");
        // Control and invisible characters are escaped, never written raw to a terminal.
        let nasty = MetaValue::String("a\nb\x1b[31m\u{202e}c".into());
        assert_eq!(nasty.dump(), r#""a\nb\u{1b}[31m\u{202e}c""#);
        let long = MetaValue::String("y".repeat(61));
        assert_eq!(long.dump(), format!("{:?}... (61 chars)", "y".repeat(60)));
        let nested = MetaArray::Array(vec![MetaArray::U32(vec![1]), MetaArray::U32(vec![])]);
        assert_eq!(nested.dump_type(), "[[UINT32]]");
        assert_eq!(nested.dump(), "[[1], []]");
        assert_eq!(MetaArray::String(vec![]).dump_type(), "[STRING]");
    }

    #[test]
    fn json_is_the_whole_value() {
        let v = MetaValue::Array(MetaArray::F32(vec![1e-5, f32::NAN, f32::NEG_INFINITY]));
        // How a finite float is spelled ("1e-5" or "0.00001") is serde_json's choice and depends on its
        // features; the value it reads back, and the strings for what JSON cannot hold, are ours.
        let back: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back[0].as_f64().map(|x| x as f32), Some(1e-5f32));
        assert_eq!(back[1], "nan");
        assert_eq!(back[2], "-inf");
        assert_eq!(back.as_array().map(Vec::len), Some(3));
        let v = MetaValue::Array(MetaArray::Array(vec![MetaArray::String(
            vec!["a\n".into()],
        )]));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[["a\n"]]"#);
        assert_eq!(
            serde_json::to_string(&MetaValue::U64(u64::MAX)).unwrap(),
            u64::MAX.to_string()
        );
        assert_eq!(serde_json::to_string(&MetaValue::F64(0.1)).unwrap(), "0.1");
    }
}
