//! GGUF reading: parse and validate the whole header once, then hand out borrowed tensor views.
//!
//! The checks follow ggml's `gguf_init_from_reader` (ggml/src/gguf.cpp): magic, version, counts against the bytes
//! left, string and array lengths against the bytes left (before any allocation), no empty or duplicate key,
//! `general.alignment` a u32 power of two, tensor names shorter than `GGML_MAX_NAME` and unique, 1 to 4
//! dimensions, element count representable, a known ggml type, rows a whole number of blocks, and tensor offsets
//! exactly where ggml expects them: in file order, contiguous, each padded to the alignment. We add: dimensions
//! must be non-zero, strings must be UTF-8, and every tensor's bytes must lie inside the file (ggml checks that
//! when it loads the data).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::constants::{
    GgufValueType, GENERAL_ALIGNMENT, GENERAL_ARCHITECTURE, GGML_MAX_DIMS, GGML_MAX_NAME,
    GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC,
};
use super::value::{MetaArray, MetaValue, MAX_ARRAY_DEPTH};
use super::GgufError;
use crate::{DType, TensorView};

/// Most elements we reserve room for ahead of parsing them. Counts are already checked against the bytes left,
/// but a large file could still "afford" a count whose in-memory form (24-byte `String`s, ...) is many times its
/// size on disk; beyond this the vectors grow as elements are actually parsed.
const MAX_PREALLOC: usize = 1 << 16;

/// Smallest possible key/value record: u64 key length, a 1-byte key, u32 type, 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest possible tensor info: u64 name length, u32 n_dims, one u64 dim, u32 type, u64 offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// Row-major, outermost first: GGUF's `ne` reversed.
    pub shape: Vec<usize>,
    /// Start of the data, relative to the data section ([`GgufFile::data_offset`]).
    pub offset: u64,
    /// Bytes of data (without padding).
    pub size: usize,
}

enum Backing {
    Mmap(Mmap),
    Bytes(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Bytes(v) => v,
        }
    }
}

/// A validated GGUF file. Metadata and tensor infos are parsed and owned; tensor data stays in the map.
pub struct GgufFile {
    backing: Backing,
    pub version: u32,
    /// Key/value pairs in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Memory-maps `path` and validates it. Errors name the file.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let open = || -> Result<GgufFile, GgufError> {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            let map = crate::mmap::map_input(&file, path, len)?;
            GgufFile::parse(Backing::Mmap(map))
        };
        open().map_err(|e| e.in_file(path))
    }

    /// Validates a GGUF held in memory (tests, small files).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::parse(Backing::Bytes(bytes))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `general.architecture`, if present and a string.
    pub fn architecture(&self) -> Option<&str> {
        self.get(GENERAL_ARCHITECTURE).and_then(MetaValue::as_str)
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The tensor called `name`, borrowing its bytes from the file.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        self.tensor_info(name).map(|ti| self.view(ti))
    }

    /// All tensors, in file order.
    pub fn tensor_views(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.tensors.iter().map(|ti| self.view(ti))
    }

    /// The bytes of one tensor (validated at open, so always in range).
    pub fn tensor_bytes(&self, ti: &TensorInfo) -> &[u8] {
        let start = self.data_offset.saturating_add(ti.offset) as usize;
        let end = start.saturating_add(ti.size);
        self.backing.bytes().get(start..end).unwrap_or(&[])
    }

    /// Drops the resident pages under `bytes` (a slice borrowed from this file) once the caller is done with
    /// it, so a streaming reader's resident set stays small. The bytes stay readable: they are faulted back in
    /// from the file. A no-op for files held in memory and for slices outside the map.
    pub fn release(&self, bytes: &[u8]) {
        let Backing::Mmap(map) = &self.backing else {
            return;
        };
        crate::mmap::release_pages(map, bytes);
    }

    /// The whole file.
    pub fn file_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    fn view(&self, ti: &TensorInfo) -> TensorView<'_> {
        TensorView {
            name: ti.name.clone(),
            dtype: ti.dtype,
            shape: ti.shape.clone(),
            bytes: self.tensor_bytes(ti),
        }
    }

    fn parse(backing: Backing) -> Result<GgufFile, GgufError> {
        let buf = backing.bytes();
        let mut r = Cursor { buf, pos: 0 };

        let magic = r.take(4, || "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = r.u32(|| "version".into())?;
        // 2 and 3 share the little-endian layout (3 added big-endian files, which read as a huge version).
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.u64(|| "tensor count".into())?;
        let n_kv = r.u64(|| "key/value count".into())?;
        // Each record needs some minimum number of bytes; a count that cannot fit is rejected before anything is
        // allocated for it.
        if n_kv > r.remaining() / MIN_KV_BYTES {
            return Err(GgufError::ImplausibleCount {
                what: "key/value pairs",
                count: n_kv,
                remaining: r.remaining(),
            });
        }
        if n_tensors > r.remaining() / MIN_TENSOR_INFO_BYTES {
            return Err(GgufError::ImplausibleCount {
                what: "tensors",
                count: n_tensors,
                remaining: r.remaining(),
            });
        }

        let mut metadata: Vec<(String, MetaValue)> =
            Vec::with_capacity((n_kv as usize).min(MAX_PREALLOC));
        let mut seen_keys: HashMap<String, ()> =
            HashMap::with_capacity((n_kv as usize).min(MAX_PREALLOC));
        for i in 0..n_kv {
            let key_offset = r.pos as u64;
            let key = r.string(|| format!("key #{i}"))?;
            if key.is_empty() {
                return Err(GgufError::EmptyKey {
                    index: i,
                    offset: key_offset,
                });
            }
            if seen_keys.insert(key.clone(), ()).is_some() {
                return Err(GgufError::DuplicateKey { key });
            }
            let type_offset = r.pos as u64;
            let type_id = r.u32(|| format!("type of key '{key}'"))?;
            let ty =
                GgufValueType::from_u32(type_id).ok_or_else(|| GgufError::UnknownValueType {
                    key: key.clone(),
                    type_id,
                    offset: type_offset,
                })?;
            let value = r.value(&key, ty)?;
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == GENERAL_ALIGNMENT) {
            None => GGUF_DEFAULT_ALIGNMENT,
            Some((_, MetaValue::U32(a))) if a.is_power_of_two() => *a as usize,
            Some((_, v)) => {
                return Err(GgufError::BadAlignment {
                    found: format!("{:?}", v),
                })
            }
        };

        let mut tensors: Vec<TensorInfo> =
            Vec::with_capacity((n_tensors as usize).min(MAX_PREALLOC));
        let mut by_name: HashMap<String, usize> =
            HashMap::with_capacity((n_tensors as usize).min(MAX_PREALLOC));
        for i in 0..n_tensors {
            let name = r.string(|| format!("name of tensor #{i}"))?;
            if name.len() >= GGML_MAX_NAME {
                return Err(GgufError::TensorNameTooLong {
                    index: i,
                    len: name.len(),
                    name,
                    max: GGML_MAX_NAME - 1,
                });
            }
            if by_name.contains_key(&name) {
                return Err(GgufError::DuplicateTensor { name });
            }
            let n_dims = r.u32(|| format!("dimension count of tensor '{name}'"))?;
            if n_dims == 0 || n_dims as usize > GGML_MAX_DIMS {
                return Err(GgufError::BadDimCount {
                    name,
                    n_dims: n_dims.into(),
                });
            }
            let mut ne = [0u64; GGML_MAX_DIMS];
            for (d, slot) in ne.iter_mut().enumerate().take(n_dims as usize) {
                *slot = r.u64(|| format!("dimension {d} of tensor '{name}'"))?;
            }
            let ne = &ne[..n_dims as usize];
            for (d, &v) in ne.iter().enumerate() {
                if v == 0 || v > i64::MAX as u64 {
                    return Err(GgufError::BadDim {
                        name,
                        dim: d,
                        value: v,
                    });
                }
            }
            let n_elements = ne
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= i64::MAX as u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| GgufError::ShapeOverflow {
                    name: name.clone(),
                    shape: ne.to_vec(),
                })?;
            let type_id = r.u32(|| format!("type of tensor '{name}'"))?;
            let dtype =
                DType::from_ggml_type(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                    name: name.clone(),
                    type_id,
                })?;
            let row_len = ne[0] as usize; // <= n_elements, which fits in usize
            if row_len % dtype.block_size() != 0 {
                return Err(GgufError::RowNotBlockMultiple {
                    name,
                    row_len,
                    dtype,
                    block_size: dtype.block_size(),
                });
            }
            let size = dtype
                .nbytes(n_elements)
                .ok_or_else(|| GgufError::ShapeOverflow {
                    name: name.clone(),
                    shape: ne.to_vec(),
                })?;
            let offset = r.u64(|| format!("data offset of tensor '{name}'"))?;
            let shape: Vec<usize> = ne.iter().rev().map(|&d| d as usize).collect();
            by_name.insert(name.clone(), tensors.len());
            tensors.push(TensorInfo {
                name,
                dtype,
                shape,
                offset,
                size,
            });
        }

        // ggml pads to the alignment only when there are tensors.
        let header_end = r.pos as u64;
        let data_offset = if tensors.is_empty() {
            header_end
        } else {
            pad_u64(header_end, alignment as u64).unwrap_or(u64::MAX)
        };
        let file_len = buf.len() as u64;

        let mut expected = 0u64;
        for ti in &tensors {
            if ti.offset != expected {
                return Err(GgufError::BadTensorOffset {
                    name: ti.name.clone(),
                    offset: ti.offset,
                    expected,
                });
            }
            let start = data_offset.checked_add(ti.offset);
            let end = start.and_then(|s| s.checked_add(ti.size as u64));
            match (start, end) {
                (Some(_), Some(end)) if end <= file_len => {}
                _ => {
                    return Err(GgufError::TensorOutOfFile {
                        name: ti.name.clone(),
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        file_len,
                    })
                }
            }
            expected = pad_u64(ti.size as u64, alignment as u64)
                .and_then(|p| expected.checked_add(p))
                .unwrap_or(u64::MAX);
        }

        Ok(GgufFile {
            backing,
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            by_name,
        })
    }
}

/// `x` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
fn pad_u64(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// A position in the file with checked little-endian reads. `what` closures build the error's description only
/// when a read fails.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        match self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
        {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining(),
            }),
        }
    }

    fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// u64 length then UTF-8 bytes; the length is checked against the bytes left before anything is copied.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&what)?;
        if len > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: len,
                available: self.remaining(),
            });
        }
        let offset = self.pos as u64;
        let bytes = self.take(len as usize, &what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                what: what(),
                offset,
            }),
        }
    }

    fn value(&mut self, key: &str, ty: GgufValueType) -> Result<MetaValue, GgufError> {
        use GgufValueType as T;
        let what = || format!("value of key '{key}'");
        Ok(match ty {
            T::Uint8 => MetaValue::U8(u8::from_le_bytes(self.array(what)?)),
            T::Int8 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            T::Uint16 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            T::Int16 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            T::Uint32 => MetaValue::U32(u32::from_le_bytes(self.array(what)?)),
            T::Int32 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            T::Float32 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            // ggml reads a bool as int8 and takes any non-zero value as true.
            T::Bool => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            T::String => MetaValue::String(self.string(what)?),
            T::Uint64 => MetaValue::U64(u64::from_le_bytes(self.array(what)?)),
            T::Int64 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            T::Float64 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            T::Array => MetaValue::Array(self.meta_array(key, 0)?),
        })
    }

    /// Element type, u64 count, elements. The count is checked against the bytes left (at the smallest size an
    /// element can take) before the vector is allocated.
    fn meta_array(&mut self, key: &str, depth: usize) -> Result<MetaArray, GgufError> {
        use GgufValueType as T;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::ArrayTooDeep {
                key: key.to_owned(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        let type_offset = self.pos as u64;
        let type_id = self.u32(|| format!("array element type of key '{key}'"))?;
        let ty = GgufValueType::from_u32(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.to_owned(),
            type_id,
            offset: type_offset,
        })?;
        let count = self.u64(|| format!("array length of key '{key}'"))?;
        let min_elem = match ty {
            T::String => 8,
            T::Array => 4 + 8,
            t => t.fixed_size().unwrap_or(1) as u64,
        };
        let needed = count.checked_mul(min_elem);
        if needed.is_none_or(|n| n > self.remaining()) {
            return Err(GgufError::Truncated {
                what: format!("array of {count} {} in key '{key}'", ty.name()),
                offset: self.pos as u64,
                needed: needed.unwrap_or(u64::MAX),
                available: self.remaining(),
            });
        }
        let n = count as usize; // count * min_elem <= remaining, so it fits
        let what = || format!("array of key '{key}'");
        fn fixed<const N: usize, T>(
            c: &mut Cursor<'_>,
            n: usize,
            what: impl Fn() -> String,
            f: impl Fn([u8; N]) -> T,
        ) -> Result<Vec<T>, GgufError> {
            let bytes = c.take(n * N, what)?;
            Ok(bytes
                .chunks_exact(N)
                .map(|ch| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(ch);
                    f(a)
                })
                .collect())
        }
        Ok(match ty {
            T::Uint8 => MetaArray::U8(self.take(n, what)?.to_vec()),
            T::Int8 => MetaArray::I8(fixed(self, n, what, i8::from_le_bytes)?),
            T::Uint16 => MetaArray::U16(fixed(self, n, what, u16::from_le_bytes)?),
            T::Int16 => MetaArray::I16(fixed(self, n, what, i16::from_le_bytes)?),
            T::Uint32 => MetaArray::U32(fixed(self, n, what, u32::from_le_bytes)?),
            T::Int32 => MetaArray::I32(fixed(self, n, what, i32::from_le_bytes)?),
            T::Float32 => MetaArray::F32(fixed(self, n, what, f32::from_le_bytes)?),
            T::Bool => MetaArray::Bool(fixed(self, n, what, |[b]: [u8; 1]| b != 0)?),
            T::Uint64 => MetaArray::U64(fixed(self, n, what, u64::from_le_bytes)?),
            T::Int64 => MetaArray::I64(fixed(self, n, what, i64::from_le_bytes)?),
            T::Float64 => MetaArray::F64(fixed(self, n, what, f64::from_le_bytes)?),
            T::String => {
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for i in 0..n {
                    v.push(self.string(|| format!("string #{i} of key '{key}'"))?);
                }
                MetaArray::String(v)
            }
            T::Array => {
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    v.push(self.meta_array(key, depth + 1)?);
                }
                MetaArray::Array(v)
            }
        })
    }
}
