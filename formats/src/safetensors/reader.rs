//! Reading one `.safetensors` file or a (sharded) model folder over memory maps.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::{DType, TensorView};

use super::mmap::MappedFile;
use super::{Result, SafetensorsError};

/// The shard index transformers writes beside sharded checkpoints.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The file name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// Where one tensor lives: its file (index into [`SafetensorsModel::files`]) and its byte range in that file.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub file: usize,
    pub start: usize,
    pub end: usize,
}

/// All tensors of one file or of every shard of a folder, in file order (shards in name order, tensors by
/// offset within each shard).
#[derive(Debug)]
pub struct SafetensorsModel {
    files: Vec<MappedFile>,
    entries: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    /// `__metadata__` of each file, in the order of `files`.
    metadata: Vec<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct IndexJson {
    weight_map: BTreeMap<String, String>,
}

impl SafetensorsModel {
    /// Opens a `.safetensors` file, or a folder holding `model.safetensors.index.json` (shards) or
    /// `model.safetensors` (or exactly one `*.safetensors` file).
    pub fn open(path: &Path) -> Result<SafetensorsModel> {
        if path.is_dir() {
            Self::open_dir(path)
        } else {
            Self::open_files(&[path.to_path_buf()], None)
        }
    }

    pub fn open_dir(dir: &Path) -> Result<SafetensorsModel> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_index(dir, &index);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Self::open_files(&[single], None);
        }
        let io = |source| SafetensorsError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io)? {
            let p = e.map_err(io)?.path();
            if p.extension().is_some_and(|x| x == "safetensors") && p.is_file() {
                found.push(p);
            }
        }
        match found.len() {
            1 => Self::open_files(&found, None),
            0 => Err(SafetensorsError::NoModel {
                path: dir.to_path_buf(),
            }),
            n => Err(SafetensorsError::Index {
                path: dir.to_path_buf(),
                message: format!(
                    "{n} .safetensors files but no {INDEX_FILE} saying how they fit together"
                ),
            }),
        }
    }

    fn open_index(dir: &Path, index: &Path) -> Result<SafetensorsModel> {
        let text = std::fs::read_to_string(index).map_err(|source| SafetensorsError::Io {
            path: index.to_path_buf(),
            source,
        })?;
        let parsed: IndexJson =
            serde_json::from_str(&text).map_err(|e| SafetensorsError::Index {
                path: index.to_path_buf(),
                message: format!("not a valid shard index: {e}"),
            })?;
        // Shard order: sorted by name, as transformers and llama.cpp list them.
        let mut shards: Vec<&str> = parsed.weight_map.values().map(String::as_str).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut paths = Vec::with_capacity(shards.len());
        for shard in &shards {
            if !is_plain_relative(shard) {
                return Err(SafetensorsError::ShardOutsideFolder {
                    index: index.to_path_buf(),
                    shard: (*shard).to_string(),
                });
            }
            let p = dir.join(shard);
            if let Ok(m) = std::fs::metadata(&p) {
                if !m.is_file() {
                    use std::os::unix::fs::FileTypeExt;
                    let t = m.file_type();
                    let kind = if t.is_dir() {
                        "a folder"
                    } else if t.is_fifo() {
                        "a FIFO (named pipe)"
                    } else if t.is_socket() {
                        "a socket"
                    } else {
                        "a device or other special file"
                    };
                    return Err(SafetensorsError::Index {
                        path: p,
                        message: format!("is {kind}, not a regular file"),
                    });
                }
            }
            if !p.is_file() {
                let tensor = parsed
                    .weight_map
                    .iter()
                    .find(|(_, s)| s.as_str() == *shard)
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default();
                return Err(SafetensorsError::MissingShard {
                    index: index.to_path_buf(),
                    shard: (*shard).to_string(),
                    tensor,
                });
            }
            paths.push(p);
        }
        let model = Self::open_files(&paths, Some(index))?;
        for (tensor, shard) in &parsed.weight_map {
            let in_shard = model
                .by_name
                .get(tensor)
                .and_then(|&i| model.entries.get(i))
                .and_then(|e| model.files.get(e.file))
                .is_some_and(|f| f.path() == dir.join(shard));
            if !in_shard {
                return Err(SafetensorsError::TensorNotInShard {
                    index: index.to_path_buf(),
                    shard: dir.join(shard),
                    tensor: tensor.clone(),
                });
            }
        }
        Ok(model)
    }

    fn open_files(paths: &[PathBuf], _index: Option<&Path>) -> Result<SafetensorsModel> {
        let mut model = SafetensorsModel {
            files: Vec::with_capacity(paths.len()),
            entries: Vec::new(),
            by_name: HashMap::new(),
            metadata: Vec::with_capacity(paths.len()),
        };
        for path in paths {
            let file = MappedFile::open(path)?;
            let file_idx = model.files.len();
            let (header_len, meta) = ::safetensors::SafeTensors::read_metadata(file.bytes())
                .map_err(|source| {
                    if let Some(message) = truncation(file.bytes()) {
                        return SafetensorsError::Truncated {
                            path: path.clone(),
                            message,
                        };
                    }
                    match inconsistent_tensor(file.bytes()) {
                        Some((tensor, message)) => SafetensorsError::BadTensor {
                            path: path.clone(),
                            tensor,
                            message,
                        },
                        None => SafetensorsError::Header {
                            path: path.clone(),
                            source,
                        },
                    }
                })?;
            // read_metadata checked that the header fits and that the data section is exactly the rest of the
            // file, and that every tensor's offsets are contiguous and match its dtype and shape.
            let data_start = 8 + header_len;
            for name in meta.offset_keys() {
                let Some(info) = meta.info(&name) else {
                    continue;
                };
                let dtype = DType::from_safetensors(info.dtype).ok_or_else(|| {
                    SafetensorsError::UnsupportedDtype {
                        path: path.clone(),
                        tensor: name.clone(),
                        dtype: format!("{:?}", info.dtype),
                    }
                })?;
                let (s, e) = info.data_offsets;
                let entry = TensorEntry {
                    name: name.clone(),
                    dtype,
                    shape: info.shape.clone(),
                    file: file_idx,
                    start: data_start + s,
                    end: data_start + e,
                };
                if let Some(&prev) = model.by_name.get(&name) {
                    let first = model
                        .entries
                        .get(prev)
                        .and_then(|p| model.files.get(p.file))
                        .map(|f| f.path().to_path_buf())
                        .unwrap_or_default();
                    return Err(SafetensorsError::DuplicateTensor {
                        tensor: name,
                        first,
                        second: path.clone(),
                    });
                }
                model.by_name.insert(name, model.entries.len());
                model.entries.push(entry);
            }
            let user_meta = meta
                .metadata()
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            model.metadata.push(user_meta);
            model.files.push(file);
        }
        Ok(model)
    }

    /// Every tensor, in file order.
    pub fn entries(&self) -> &[TensorEntry] {
        &self.entries
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The files read, in order (one for an unsharded checkpoint).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(MappedFile::path)
    }

    /// The file that holds `name`.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.entry(name)
            .and_then(|e| self.files.get(e.file))
            .map(MappedFile::path)
    }

    /// `__metadata__` of the first file (transformers writes `{"format": "pt"}`).
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.first()
    }

    /// A view of one tensor over the memory map.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        self.entry(name).and_then(|e| self.view(e))
    }

    /// Drops the resident pages under `bytes`, a slice of one of this model's tensor views (see
    /// [`MappedFile::release`]); other slices are ignored.
    pub fn release(&self, bytes: &[u8]) {
        for f in &self.files {
            f.release(bytes);
        }
    }

    pub fn view(&self, e: &TensorEntry) -> Option<TensorView<'_>> {
        let bytes = self.files.get(e.file)?.bytes().get(e.start..e.end)?;
        Some(TensorView {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            bytes,
        })
    }
}

/// When a file is shorter than its header says, names the first tensor that does not fit.
fn truncation(bytes: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let have = bytes.len() - 8 - n;
    let mut cut: Vec<(u64, &str)> = map
        .iter()
        .filter_map(|(name, v)| {
            let end = v.get("data_offsets")?.get(1)?.as_u64()?;
            (end > have as u64).then_some((end, name.as_str()))
        })
        .collect();
    cut.sort_unstable();
    let (end, name) = cut.first()?;
    Some(format!(
        "tensor '{name}' needs {end} data bytes but the file holds {have}"
    ))
}

/// When the safetensors crate refuses a header for a shape, dtype or offset that does not add up (its error
/// names no tensor), names the first tensor, in data order, that is at fault and says why.
fn inconsistent_tensor(bytes: &[u8]) -> Option<(String, String)> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut tensors: Vec<(u64, u64, &str, &serde_json::Value)> = map
        .iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .filter_map(|(name, v)| {
            let o = v.get("data_offsets")?;
            Some((o.get(0)?.as_u64()?, o.get(1)?.as_u64()?, name.as_str(), v))
        })
        .collect();
    tensors.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut expected_start = 0u64;
    for (start, end, name, v) in tensors {
        let bad = |m: String| Some((name.to_string(), m));
        if start != expected_start {
            return bad(format!(
                "data_offsets start at {start}, but the previous tensor ends at {expected_start} (tensors must follow each other without gaps or overlaps)"
            ));
        }
        if end < start {
            return bad(format!(
                "data_offsets [{start}, {end}] end before they start"
            ));
        }
        let shape: Vec<u64> = v
            .get("shape")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let dtype: ::safetensors::Dtype = serde_json::from_value(v.get("dtype")?.clone()).ok()?;
        let bits = shape
            .iter()
            .try_fold(dtype.bitsize() as u64, |acc, &d| acc.checked_mul(d));
        match bits {
            None => {
                return bad(format!(
                    "shape {shape:?} of {dtype:?} overflows a 64-bit size"
                ))
            }
            Some(b) if b.div_ceil(8) != end - start => {
                return bad(format!(
                    "shape {shape:?} of {dtype:?} needs {} bytes, but its data_offsets [{start}, {end}] hold {}",
                    b.div_ceil(8),
                    end - start
                ))
            }
            Some(_) => {}
        }
        expected_start = end;
    }
    None
}

/// True for a relative path made only of normal components (`a.safetensors`, `sub/a.safetensors`).
fn is_plain_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !name.contains('\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_must_stay_inside() {
        assert!(is_plain_relative("model-00000-of-00002.safetensors"));
        assert!(is_plain_relative("sub/x.safetensors"));
        assert!(!is_plain_relative("../x.safetensors"));
        assert!(!is_plain_relative("/etc/passwd"));
        assert!(!is_plain_relative("a/../../x"));
        assert!(!is_plain_relative("..\\x"));
        assert!(!is_plain_relative(""));
        assert!(!is_plain_relative("./"));
    }

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data, 0);
        v
    }

    /// The safetensors crate refuses these headers without naming a tensor (issue 8: "safetensors shape errors
    /// do not name the tensor"); each is named here, and the crate agrees each file is invalid.
    #[test]
    fn inconsistent_tensors_are_named() {
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
                20,
                "a",
                "needs 24 bytes",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#,
                16,
                "w",
                "overflows",
            ),
            (
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#,
                24,
                "v",
                "start at 16",
            ),
        ];
        for (header, data, tensor, why) in cases {
            let bytes = file(header, data);
            assert!(
                ::safetensors::SafeTensors::read_metadata(&bytes).is_err(),
                "{header}"
            );
            let (t, m) = inconsistent_tensor(&bytes).expect(header);
            assert_eq!(t, tensor);
            assert!(m.contains(why), "{m}");
        }
        let ok = file(
            r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
            24,
        );
        assert!(::safetensors::SafeTensors::read_metadata(&ok).is_ok());
        assert_eq!(inconsistent_tensor(&ok), None);
    }
}
