//! Float32 `.npy` files: the format that reference logits travel in (`numpy.save` of a `[T, vocab]` float32
//! array from transformers or any other implementation; `perplexity --dump-logits` writes the same).
//!
//! Only what logits need: little-endian `<f4` (and `<f8`, narrowed to f32 on read), C order, any rank.
//! The format is numpy's NEP 1 (`numpy/lib/format.py`): magic `\x93NUMPY`, version, header length (u16 for 1.0,
//! u32 for 2.0/3.0), a Python-literal dict header padded with spaces to a multiple of 64 bytes, then the data.
//! A hand-written reader keeps the header parsing strict and small; every size is checked against the file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic::{Existing, OutputError, PartialFile};

/// What went wrong reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a float32 .npy array: {why}")]
    File { path: PathBuf, why: String },
    /// A format violation in bytes not yet tied to a file.
    #[error("{0}")]
    Format(String),
    /// Values that do not fit the declared shape (a caller's mistake), named with the file.
    #[error("{path}: {why}")]
    Shape { path: PathBuf, why: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

type Result<T> = std::result::Result<T, NpyError>;

macro_rules! bail {
    ($($t:tt)*) => { return Err(NpyError::Format(format!($($t)*))) };
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NpyError + '_ {
    move |source| NpyError::Io {
        path: path.to_owned(),
        source,
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// An f32 array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a float32 (or float64) C-order `.npy` file.
pub fn read_f32(path: &Path) -> Result<NpyF32> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    parse_f32(&bytes).map_err(|e| NpyError::File {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// Parses the bytes of a `.npy` file.
pub fn parse_f32(bytes: &[u8]) -> Result<NpyF32> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("missing the \\x93NUMPY magic");
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 => {
            let Some(b) = bytes.get(8..12) else {
                bail!("truncated header length");
            };
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let Some(header) = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
    else {
        bail!(
            "header of {header_len} bytes runs past the end of the file ({} bytes)",
            bytes.len()
        );
    };
    let Ok(header) = std::str::from_utf8(header) else {
        bail!("header is not UTF-8");
    };
    let descr = dict_value(header, "descr")?;
    let fortran = dict_value(header, "fortran_order")?;
    let shape_lit = dict_value(header, "shape")?;
    if fortran.trim() != "False" {
        bail!("Fortran-order arrays are not supported (save with C order)");
    }
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let elem = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => bail!("element type '{other}' is not float32 ('<f4') or float64 ('<f8')"),
    };
    let shape = parse_shape(shape_lit)?;
    let Some(want) = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(elem))
    else {
        bail!("shape {shape:?} overflows");
    };
    let data_start = start + header_len;
    let got = bytes.len() - data_start;
    if got != want {
        bail!("shape {shape:?} of {descr} needs {want} data bytes but the file holds {got}");
    }
    let body = &bytes[data_start..];
    let data = if elem == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok(NpyF32 { shape, data })
}

/// The text after `'key':` in the header dict, up to the next top-level comma or the closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let Some(pos) = header
        .find(&pat_single)
        .map(|p| p + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|p| p + pat_double.len()))
    else {
        bail!("header lacks '{key}'");
    };
    let Some(rest) = header[pos..].trim_start().strip_prefix(':') else {
        bail!("header: no ':' after '{key}'");
    };
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(&rest[..i]),
            _ => {}
        }
    }
    bail!("header: unterminated value for '{key}'")
}

fn parse_shape(lit: &str) -> Result<Vec<usize>> {
    let Some(inner) = lit
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
    else {
        bail!("shape '{lit}' is not a tuple");
    };
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| NpyError::Format(format!("shape entry '{s}' is not a size")))
        })
        .collect()
}

fn header_bytes(shape: &[usize]) -> Result<Vec<u8>> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_lit = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_lit}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let Ok(header_len) = u16::try_from(header.len()) else {
        bail!("npy header too long");
    };
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

/// Streams a float32 C-order `.npy` file of a known shape, row block by row block, into `<path>.partial`
/// (`atomic::PartialFile`: exclusive, locked, never over an input), renamed by [`NpyF32Writer::finish`] once
/// every value is written (removed if dropped before).
pub struct NpyF32Writer {
    path: PathBuf,
    // Declared before `file` so it is dropped (and flushed) first.
    w: Option<std::io::BufWriter<File>>,
    file: Option<PartialFile>,
    remaining: usize,
}

impl NpyF32Writer {
    pub fn create(path: &Path, shape: &[usize], existing: Existing) -> Result<NpyF32Writer> {
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return Err(NpyError::Shape {
                path: path.to_owned(),
                why: format!("shape {shape:?} overflows"),
            });
        };
        let header = header_bytes(shape)?;
        let file = PartialFile::create(path, existing)?;
        let handle = file.file().try_clone().map_err(io(file.partial_path()))?;
        let mut w = std::io::BufWriter::new(handle);
        w.write_all(&header).map_err(io(file.partial_path()))?;
        Ok(NpyF32Writer {
            path: path.to_path_buf(),
            file: Some(file),
            w: Some(w),
            remaining: n,
        })
    }

    pub fn write(&mut self, data: &[f32]) -> Result<()> {
        if data.len() > self.remaining {
            return Err(self.shape(format!(
                "{} more values than the declared shape holds",
                data.len() - self.remaining
            )));
        }
        let Some(w) = self.w.as_mut() else {
            return Err(self.shape("already finished".into()));
        };
        for x in data {
            w.write_all(&x.to_le_bytes()).map_err(io(&self.path))?;
        }
        self.remaining -= data.len();
        Ok(())
    }

    /// Flushes the values and returns the file uncommitted, for a caller that commits it together with what
    /// belongs beside it (the tokens beside the logits).
    pub fn finish_deferred(mut self) -> Result<PartialFile> {
        if self.remaining != 0 {
            return Err(self.shape(format!(
                "{} values short of the declared shape",
                self.remaining
            )));
        }
        let (Some(w), Some(file)) = (self.w.take(), self.file.take()) else {
            return Err(self.shape("already finished".into()));
        };
        w.into_inner()
            .map_err(|e| e.into_error())
            .map_err(io(&self.path))?;
        Ok(file)
    }

    fn shape(&self, why: String) -> NpyError {
        NpyError::Shape {
            path: self.path.clone(),
            why,
        }
    }

    pub fn finish(self) -> Result<()> {
        self.finish_deferred()?.commit()?;
        Ok(())
    }
}

/// Writes a float32 C-order `.npy` file (version 1.0), via `<path>.partial` renamed after flush.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32], existing: Existing) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(NpyError::Shape {
            path: path.to_owned(),
            why: format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            ),
        });
    }
    let mut w = NpyF32Writer::create(path, shape, existing)?;
    w.write(data)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.save` of `np.arange(6, dtype='<f4').reshape(2, 3)` with numpy 2.x, byte for byte.
    fn numpy_bytes() -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00v\x00".to_vec();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        b.extend_from_slice(h.as_bytes());
        b.resize(b.len() + 128 - 10 - h.len() - 1, b' ');
        b.push(b'\n');
        for i in 0..6 {
            b.extend_from_slice(&(i as f32).to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_what_numpy_writes() {
        let a = parse_f32(&numpy_bytes()).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn writes_what_numpy_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f32(
            &p,
            &[2, 3],
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            Existing::Refuse,
        )
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), numpy_bytes());
        // Streamed in two pieces, the same bytes; a short write leaves nothing behind.
        let q = dir.path().join("b.npy");
        let mut w = NpyF32Writer::create(&q, &[2, 3], Existing::Refuse).unwrap();
        w.write(&[0.0, 1.0]).unwrap();
        w.write(&[2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!(w.write(&[6.0]).is_err());
        w.finish().unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), numpy_bytes());
        let r = dir.path().join("c.npy");
        let mut w = NpyF32Writer::create(&r, &[2, 3], Existing::Refuse).unwrap();
        w.write(&[0.0]).unwrap();
        assert!(w.finish().is_err());
        assert!(!r.exists() && !dir.path().join("c.npy.partial").exists());
    }

    #[test]
    fn rejects_bad_files() {
        let mut b = numpy_bytes();
        b.pop();
        let e = parse_f32(&b).unwrap_err().to_string();
        assert!(e.contains("needs 24 data bytes"), "{e}");
        let mut i8 = numpy_bytes();
        let at = i8.windows(3).position(|w| w == b"<f4").unwrap();
        i8[at..at + 3].copy_from_slice(b"|i1");
        let e = parse_f32(&i8).unwrap_err().to_string();
        assert!(e.contains("'|i1'"), "{e}");
        assert!(parse_f32(b"\x93NUMPY\x01\x00\xff\xff").is_err());
        assert!(parse_f32(b"nope").is_err());
    }
}
