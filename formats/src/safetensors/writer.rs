//! A streaming safetensors writer: plan every tensor first (the header fixes all offsets), then write tensor
//! bytes at their offsets in any order, from any thread, and finally rename `<out>.partial` to `<out>`.

use std::path::{Path, PathBuf};

use crate::atomic::{partial_path, Existing, PartialFile};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sink::{FileSink, Sink};
use crate::DType;

use super::{Result, SafetensorsError};

/// Plans a safetensors file: tensors in the order they are added, data contiguous, as the format requires.
#[derive(Debug, Default)]
pub struct SafetensorsWriter {
    metadata: Vec<(String, String)>,
    tensors: Vec<(String, DType, Vec<usize>, usize)>,
}

impl SafetensorsWriter {
    pub fn new() -> SafetensorsWriter {
        SafetensorsWriter::default()
    }

    /// Adds a `__metadata__` string entry.
    pub fn add_metadata(&mut self, key: &str, value: &str) {
        self.metadata.push((key.to_string(), value.to_string()));
    }

    /// Plans a tensor and returns its index for [`SafetensorsOutput::write_tensor`].
    pub fn add_tensor(&mut self, name: &str, dtype: DType, shape: &[usize]) -> Result<usize> {
        let err = |message: String| SafetensorsError::Write {
            path: PathBuf::from(name),
            message,
        };
        if dtype.to_safetensors().is_none() {
            return Err(err(format!(
                "tensor '{name}': safetensors cannot hold {dtype}"
            )));
        }
        if self.tensors.iter().any(|t| t.0 == name) {
            return Err(err(format!("tensor '{name}' added twice")));
        }
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| dtype.nbytes(n))
            .ok_or_else(|| err(format!("tensor '{name}': size of {shape:?} overflows")))?;
        self.tensors
            .push((name.to_string(), dtype, shape.to_vec(), n));
        Ok(self.tensors.len() - 1)
    }

    /// The size of the file [`SafetensorsWriter::create`] would write (header and data), for dry runs.
    pub fn planned_bytes(&self) -> Result<u64> {
        let Header { bytes, offsets } = self.header()?;
        Ok(bytes.len() as u64 + offsets.last().map_or(0, |o| o.1))
    }

    /// The number of tensors planned.
    pub fn n_tensors(&self) -> usize {
        self.tensors.len()
    }

    /// The header bytes (length prefix + JSON, padded) and each tensor's (start, end) in the data section.
    fn header(&self) -> Result<Header> {
        let mut map = serde_json::Map::new();
        if !self.metadata.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            map.insert("__metadata__".into(), serde_json::Value::Object(m));
        }
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut pos = 0u64;
        for (name, dtype, shape, n) in &self.tensors {
            let end = pos + *n as u64;
            let st = dtype
                .to_safetensors()
                .map(|d| format!("{d:?}"))
                .unwrap_or_default();
            map.insert(
                name.clone(),
                serde_json::json!({"dtype": st, "shape": shape, "data_offsets": [pos, end]}),
            );
            offsets.push((pos, end));
            pos = end;
        }
        let mut json = serde_json::to_vec(&serde_json::Value::Object(map)).map_err(|e| {
            SafetensorsError::Write {
                path: PathBuf::new(),
                message: e.to_string(),
            }
        })?;
        // Pad the header with spaces so the data starts 8-byte aligned, as the safetensors crate does.
        while json.len() % 8 != 0 {
            json.push(b' ');
        }
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        Ok(Header { bytes, offsets })
    }

    /// Creates `<path>.partial`, writes the header and sizes the file. Tensor data follows through
    /// [`SafetensorsOutput::write_tensor`]; [`SafetensorsOutput::finish`] renames the file into place.
    /// An existing `path` is refused (see [`SafetensorsWriter::create_with`]).
    pub fn create(self, path: &Path) -> Result<SafetensorsOutput> {
        self.create_with(path, Existing::Refuse)
    }

    /// [`SafetensorsWriter::create`], with what to do about an existing `path` (the rules of
    /// [`crate::atomic`]).
    pub fn create_with(self, path: &Path, existing: Existing) -> Result<SafetensorsOutput> {
        let Header { bytes, offsets } = self.header()?;
        let mut file = PartialFile::create(path, existing)?;
        let io = |source| SafetensorsError::Io {
            path: partial_path(path),
            source,
        };
        let total = bytes.len() as u64 + offsets.last().map_or(0, |o| o.1);
        file.set_planned_len(total).map_err(io)?;
        file.write_at(&bytes, 0).map_err(io)?;
        Ok(SafetensorsOutput {
            file,
            data_start: bytes.len() as u64,
            written: offsets.iter().map(|_| AtomicU64::new(0)).collect(),
            offsets,
            names: self.tensors.into_iter().map(|t| t.0).collect(),
        })
    }
}

struct Header {
    bytes: Vec<u8>,
    offsets: Vec<(u64, u64)>,
}

/// A safetensors file being written. Dropping it before [`finish`](Self::finish) removes the partial file.
#[derive(Debug)]
pub struct SafetensorsOutput {
    file: PartialFile,
    data_start: u64,
    offsets: Vec<(u64, u64)>,
    /// Bytes written so far into each tensor.
    written: Vec<AtomicU64>,
    names: Vec<String>,
}

impl SafetensorsOutput {
    /// Writes tensor `index`'s bytes at its planned offset. Safe to call from several threads at once.
    pub fn write_tensor(&self, index: usize, bytes: &[u8]) -> Result<()> {
        let (&(s, e), name) = self
            .offsets
            .get(index)
            .zip(self.names.get(index))
            .ok_or_else(|| self.err(format!("no tensor number {index} was planned")))?;
        if bytes.len() as u64 != e - s {
            return Err(self.err(format!(
                "tensor '{name}': planned {} bytes, got {}",
                e - s,
                bytes.len()
            )));
        }
        self.write_tensor_at(index, 0, bytes)
    }

    /// Writes `bytes` into tensor `index` starting `offset` bytes into it, for tensors made piece by piece.
    /// Refuses a piece past the tensor's end and more bytes in all than it holds (a piece written twice);
    /// [`SafetensorsOutput::finish`] refuses a tensor not wholly written. Pieces must not overlap.
    pub fn write_tensor_at(&self, index: usize, offset: usize, bytes: &[u8]) -> Result<()> {
        let (&(s, e), name, filled) = match (
            self.offsets.get(index),
            self.names.get(index),
            self.written.get(index),
        ) {
            (Some(o), Some(n), Some(f)) => (o, n, f),
            _ => return Err(self.err(format!("no tensor number {index} was planned"))),
        };
        let size = e - s;
        let n = bytes.len() as u64;
        if (offset as u64).checked_add(n).is_none_or(|end| end > size) {
            return Err(self.err(format!(
                "tensor '{name}': {n} bytes at offset {offset} run past its {size} bytes"
            )));
        }
        if filled.fetch_add(n, Ordering::AcqRel) + n > size {
            filled.fetch_sub(n, Ordering::AcqRel);
            return Err(self.err(format!("tensor '{name}' written twice")));
        }
        self.file
            .write_at(bytes, self.data_start + s + offset as u64)
            .map_err(|source| {
                filled.fetch_sub(n, Ordering::AcqRel);
                SafetensorsError::Io {
                    path: self.file.partial_path().to_path_buf(),
                    source,
                }
            })
    }

    fn err(&self, message: String) -> SafetensorsError {
        SafetensorsError::Write {
            path: self.file.partial_path().to_path_buf(),
            message,
        }
    }

    /// Checks that every tensor was written, flushes and renames `<out>.partial` to `<out>`.
    pub fn finish(self) -> Result<()> {
        FileSink::finish(self)
    }
}

impl Sink for SafetensorsOutput {
    type Error = SafetensorsError;

    fn n_tensors(&self) -> usize {
        self.offsets.len()
    }

    fn tensor_size(&self, t: usize) -> usize {
        self.offsets.get(t).map_or(0, |(s, e)| (e - s) as usize)
    }

    fn write_at(&self, t: usize, offset: usize, bytes: &[u8]) -> Result<()> {
        self.write_tensor_at(t, offset, bytes)
    }
}

impl FileSink for SafetensorsOutput {
    fn target(&self) -> &Path {
        self.file.target()
    }

    fn prepare(&self) -> Result<()> {
        let missing = self
            .offsets
            .iter()
            .zip(&self.written)
            .position(|((s, e), w)| w.load(Ordering::Acquire) != e - s);
        if let Some(i) = missing {
            let name = self.names.get(i).cloned().unwrap_or_default();
            return Err(self.err(format!("tensor '{name}' was never written")));
        }
        self.file.sync().map_err(|source| SafetensorsError::Io {
            path: self.file.partial_path().to_path_buf(),
            source,
        })
    }

    fn commit(self) -> Result<()> {
        Ok(self.file.commit()?)
    }

    fn into_files(self) -> Vec<PartialFile> {
        vec![self.file]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::SafetensorsModel;

    #[test]
    fn round_trip_through_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        let mut w = SafetensorsWriter::new();
        w.add_metadata("format", "pt");
        let b = w.add_tensor("b", DType::BF16, &[2, 3]).unwrap();
        let a = w.add_tensor("a", DType::U8, &[5]).unwrap();
        let out = w.create(&path).unwrap();
        // Out of order on purpose.
        out.write_tensor(a, &[1, 2, 3, 4, 5]).unwrap();
        out.write_tensor(b, &[9; 12]).unwrap();
        assert!(out.write_tensor(b, &[9; 12]).is_err());
        out.finish().unwrap();
        assert!(!partial_path(&path).exists());

        // Read back with the independent implementation.
        let bytes = std::fs::read(&path).unwrap();
        let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tb = st.tensor("b").unwrap();
        assert_eq!(tb.dtype(), ::safetensors::Dtype::BF16);
        assert_eq!(tb.shape(), &[2, 3]);
        assert_eq!(tb.data(), &[9; 12]);
        assert_eq!(st.tensor("a").unwrap().data(), &[1, 2, 3, 4, 5]);

        let m = SafetensorsModel::open(&path).unwrap();
        assert_eq!(m.tensor("a").unwrap().bytes, &[1, 2, 3, 4, 5]);
        assert_eq!(m.entries()[0].name, "b");
    }

    #[test]
    fn unfinished_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        let mut w = SafetensorsWriter::new();
        w.add_tensor("a", DType::F32, &[2]).unwrap();
        let out = w.create(&path).unwrap();
        assert!(partial_path(&path).exists());
        drop(out);
        assert!(!partial_path(&path).exists());
        assert!(!path.exists());

        let mut w = SafetensorsWriter::new();
        w.add_tensor("a", DType::F32, &[2]).unwrap();
        let out = w.create(&path).unwrap();
        assert!(out.finish().is_err());
        assert!(!partial_path(&path).exists());
        assert!(!path.exists());
    }
}
