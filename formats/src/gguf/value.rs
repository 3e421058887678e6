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
}
