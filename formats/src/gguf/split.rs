//! Split GGUF: one model in several files, as llama.cpp's `gguf-split` writes it and its loader reads it.
//!
//! The convention (tools/gguf-split/gguf-split.cpp, src/llama.cpp `llama_split_path` / `llama_split_prefix`,
//! src/llama-model-loader.cpp):
//! - shard `i` of `n` (0-based) is named `PREFIX-{i+1:05}-of-{n:05}.gguf`;
//! - every shard is a complete GGUF with `split.no` (u16, `i`), `split.count` (u16, `n`) and
//!   `split.tensors.count` (i32, the model's tensor count); the first shard holds all the model's metadata
//!   before those three keys, the others hold only them;
//! - each tensor lives in exactly one shard; the model's tensor order is shard by shard, in file order.
//!
//! A file whose `split.count` is 0 (what `gguf-split --merge` writes) or absent is a whole model.
//!
//! [`GgufModel`] opens any shard of a set (llama.cpp insists on the first; we find it from the name) and
//! checks the set before using it: the name follows the pattern, every shard is present, none is left over from
//! another split of the same prefix, each says it is the shard its name says, all agree on the count, no
//! tensor is in two shards, and the tensors add up to `split.tensors.count`. Every error names the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::constants::{GENERAL_ARCHITECTURE, SPLIT_COUNT, SPLIT_NO, SPLIT_TENSORS_COUNT};
use super::reader::{GgufFile, TensorInfo};
use super::value::MetaValue;
use super::GgufError;
use crate::TensorView;

/// Most shards a set can have: `split.count` is a u16.
pub const MAX_SPLITS: usize = u16::MAX as usize;

/// `PREFIX-{no+1:05}-of-{count:05}.gguf`, llama.cpp's `llama_split_path` (`no` is 0-based).
pub fn split_path(prefix: &Path, no: usize, count: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("-{:05}-of-{:05}.gguf", no + 1, count));
    PathBuf::from(s)
}

/// The `PREFIX` of `path` if it is named as shard `no` (0-based) of `count`, llama.cpp's `llama_split_prefix`.
pub fn split_prefix(path: &Path, no: usize, count: usize) -> Option<PathBuf> {
    let s = path.to_str()?;
    let postfix = format!("-{:05}-of-{:05}.gguf", no + 1, count);
    let prefix = s.strip_suffix(&postfix)?;
    if prefix.is_empty() || prefix.ends_with('/') {
        return None;
    }
    Some(PathBuf::from(prefix))
}

/// The shard number (0-based) and count a file name claims, if it looks like `*-NNNNN-of-MMMMM.gguf`.
fn parse_split_name(name: &str) -> Option<(&str, usize, usize)> {
    let rest = name.strip_suffix(".gguf")?;
    let (rest, count) = rest.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(no) || !digits(count) {
        return None;
    }
    let no: usize = no.parse().ok()?;
    let count: usize = count.parse().ok()?;
    Some((prefix, no.checked_sub(1)?, count))
}

/// The split keys of one file, each checked for type and range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SplitKeys {
    no: usize,
    count: usize,
    tensors: Option<usize>,
}

fn split_keys(f: &GgufFile) -> Result<Option<SplitKeys>, GgufError> {
    // llama.cpp reads split.no and split.count as u16 and split.tensors.count as i32; any integer that fits is
    // accepted here, anything else is refused rather than guessed at.
    let int = |key: &'static str, max: u64| -> Result<Option<usize>, GgufError> {
        match f.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64().filter(|&n| n <= max) {
                Some(n) => Ok(usize::try_from(n).ok()),
                None => Err(GgufError::SplitKey {
                    key,
                    why: format!(
                        "should be an integer from 0 to {max}, found {}",
                        v.summary()
                    ),
                }),
            },
        }
    };
    let Some(count) = int(SPLIT_COUNT, u16::MAX.into())? else {
        return Ok(None);
    };
    let no = int(SPLIT_NO, u16::MAX.into())?.unwrap_or(0);
    let tensors = int(SPLIT_TENSORS_COUNT, i32::MAX as u64)?;
    Ok(Some(SplitKeys { no, count, tensors }))
}

/// A GGUF model: one file, or every shard of a split set. Metadata comes from the first shard; tensors from
/// all, in order. Borrowed views point into the right shard's map.
pub struct GgufModel {
    shards: Vec<GgufFile>,
    paths: Vec<PathBuf>,
    /// The model's tensors in order: (shard, index in that shard's `tensors`).
    order: Vec<(usize, usize)>,
    by_name: HashMap<String, (usize, usize)>,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("paths", &self.paths)
            .field("n_tensors", &self.order.len())
            .finish_non_exhaustive()
    }
}

impl GgufModel {
    /// Opens the model `path` belongs to: the file itself, or, for a shard of a split set, every shard (found
    /// by name from any one of them). The whole set is validated; errors name the file.
    pub fn open(path: &Path) -> Result<GgufModel, GgufError> {
        let given = GgufFile::open(path)?;
        let keys = split_keys(&given).map_err(|e| e.in_file(path))?;
        let Some(keys) = keys.filter(|k| k.count > 0) else {
            return GgufModel::from_shards(vec![given], vec![path.to_owned()]);
        };
        if keys.no >= keys.count {
            return Err(GgufError::SplitKey {
                key: SPLIT_NO,
                why: format!("is {} but {SPLIT_COUNT} is {}", keys.no, keys.count),
            }
            .in_file(path));
        }
        if keys.count == 1 {
            return GgufModel::from_shards(vec![given], vec![path.to_owned()]);
        }
        let prefix = split_prefix(path, keys.no, keys.count).ok_or_else(|| {
            GgufError::SplitName {
                no: keys.no,
                count: keys.count,
                expected: format!("PREFIX-{:05}-of-{:05}.gguf", keys.no + 1, keys.count),
            }
            .in_file(path)
        })?;
        let paths: Vec<PathBuf> = (0..keys.count)
            .map(|i| split_path(&prefix, i, keys.count))
            .collect();
        // Every shard must be there before any is opened; the first missing one is named.
        for (i, p) in paths.iter().enumerate() {
            if !p.is_file() {
                return Err(GgufError::SplitMissing {
                    no: i,
                    count: keys.count,
                    given: path.to_owned(),
                }
                .in_file(p));
            }
        }
        check_no_strays(&prefix, keys.count)?;
        let mut given = Some((keys.no, given));
        let mut shards = Vec::with_capacity(keys.count);
        for (i, p) in paths.iter().enumerate() {
            let f = match given.take() {
                Some((no, f)) if no == i => f,
                other => {
                    given = other;
                    GgufFile::open(p)?
                }
            };
            let k = split_keys(&f).map_err(|e| e.in_file(p))?;
            let mismatch = |key: &'static str, found: String, expected: String| {
                GgufError::SplitMismatch {
                    key,
                    found,
                    expected,
                }
                .in_file(p)
            };
            let Some(k) = k else {
                return Err(mismatch(
                    SPLIT_COUNT,
                    "no such key".into(),
                    keys.count.to_string(),
                ));
            };
            if k.count != keys.count {
                return Err(mismatch(
                    SPLIT_COUNT,
                    k.count.to_string(),
                    format!("{} (as in {})", keys.count, path.display()),
                ));
            }
            if k.no != i {
                return Err(mismatch(SPLIT_NO, k.no.to_string(), i.to_string()));
            }
            if i > 0 && k.tensors != keys.tensors {
                return Err(mismatch(
                    SPLIT_TENSORS_COUNT,
                    format!("{:?}", k.tensors),
                    format!("{:?} (as in {})", keys.tensors, path.display()),
                ));
            }
            shards.push(f);
        }
        let model = GgufModel::from_shards(shards, paths)?;
        if let Some(n) = keys.tensors {
            if n != model.order.len() {
                return Err(GgufError::SplitTensorCount {
                    expected: n,
                    found: model.order.len(),
                    count: keys.count,
                }
                .in_file(model.paths.first().map_or(path, PathBuf::as_path)));
            }
        }
        Ok(model)
    }

    /// A one-file model from a file already parsed (from memory: tests, the fuzz targets), named `path` in
    /// errors. Its split keys are checked as [`GgufModel::open`] checks them; a shard of a larger set is refused,
    /// since without a path on disk its other shards cannot be found.
    pub fn from_file(file: GgufFile, path: PathBuf) -> Result<GgufModel, GgufError> {
        if let Some(keys) = split_keys(&file)
            .map_err(|e| e.in_file(&path))?
            .filter(|k| k.count > 0)
        {
            if keys.no >= keys.count {
                return Err(GgufError::SplitKey {
                    key: SPLIT_NO,
                    why: format!("is {} but {SPLIT_COUNT} is {}", keys.no, keys.count),
                }
                .in_file(&path));
            }
            if keys.count > 1 {
                return Err(GgufError::SplitKey {
                    key: SPLIT_COUNT,
                    why: format!("is {}: this file alone is not the whole model", keys.count),
                }
                .in_file(&path));
            }
        }
        GgufModel::from_shards(vec![file], vec![path])
    }

    fn from_shards(shards: Vec<GgufFile>, paths: Vec<PathBuf>) -> Result<GgufModel, GgufError> {
        let n: usize = shards.iter().map(|s| s.tensors.len()).sum();
        let mut order = Vec::with_capacity(n);
        let mut by_name: HashMap<String, (usize, usize)> = HashMap::with_capacity(n);
        for (s, shard) in shards.iter().enumerate() {
            for (i, t) in shard.tensors.iter().enumerate() {
                if let Some(&(first, _)) = by_name.get(&t.name) {
                    return Err(GgufError::SplitDuplicateTensor {
                        name: t.name.clone(),
                        first: paths.get(first).cloned().unwrap_or_default(),
                    }
                    .in_file(paths.get(s).map_or(Path::new(""), PathBuf::as_path)));
                }
                by_name.insert(t.name.clone(), (s, i));
                order.push((s, i));
            }
        }
        Ok(GgufModel {
            shards,
            paths,
            order,
            by_name,
        })
    }

    /// The files, first shard first (one for an unsplit model).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub fn shards(&self) -> &[GgufFile] {
        &self.shards
    }

    /// Whether the model is a set of more than one file.
    pub fn is_split(&self) -> bool {
        self.shards.len() > 1
    }

    /// The file holding the metadata.
    pub fn first(&self) -> &GgufFile {
        // from_shards is only ever given at least one shard.
        &self.shards[0]
    }

    /// The model's key/values (the first shard's), in file order, including any `split.*` keys.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.first().metadata
    }

    /// The model's key/values without the `split.*` keys, which describe the files rather than the model: what
    /// a writer copies (llama-quantize removes the same three).
    pub fn model_metadata(&self) -> Vec<(String, MetaValue)> {
        self.metadata()
            .iter()
            .filter(|(k, _)| !is_split_key(k))
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.first().get(key)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get(GENERAL_ARCHITECTURE).and_then(MetaValue::as_str)
    }

    pub fn n_tensors(&self) -> usize {
        self.order.len()
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        let &(s, i) = self.by_name.get(name)?;
        self.shards.get(s)?.tensors.get(i)
    }

    /// Which shard (0-based) holds `name`.
    pub fn shard_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|&(s, _)| s)
    }

    /// The file holding `name`.
    pub fn path_of(&self, name: &str) -> Option<&Path> {
        self.shard_of(name)
            .and_then(|s| self.paths.get(s))
            .map(PathBuf::as_path)
    }

    /// Every tensor's info, in model order.
    pub fn tensor_infos(&self) -> impl Iterator<Item = &TensorInfo> {
        self.order
            .iter()
            .filter_map(|&(s, i)| self.shards.get(s).and_then(|f| f.tensors.get(i)))
    }

    /// The tensor called `name`, borrowing its bytes from its shard.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let &(s, _) = self.by_name.get(name)?;
        self.shards.get(s)?.tensor(name)
    }

    /// Every tensor, in model order.
    pub fn tensor_views(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.order.iter().filter_map(|&(s, i)| {
            let f = self.shards.get(s)?;
            let ti = f.tensors.get(i)?;
            f.tensor(&ti.name)
        })
    }

    /// Drops the resident pages under `bytes`, a slice borrowed from one of the shards (see
    /// [`GgufFile::release`]).
    pub fn release(&self, bytes: &[u8]) {
        for s in &self.shards {
            s.release(bytes);
        }
    }
}

/// `split.no`, `split.count`, `split.tensors.count`.
pub fn is_split_key(key: &str) -> bool {
    [SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS_COUNT].contains(&key)
}

/// Refuses a file beside the set that is named like a shard of the same prefix but is not one of the set's
/// (`-00004-of-00003`, or a shard of a 4-file split beside a 3-file one): which files make the model would be
/// a guess.
pub(super) fn check_no_strays(prefix: &Path, count: usize) -> Result<(), GgufError> {
    let dir = match prefix.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(stem) = prefix.file_name().and_then(|s| s.to_str()) else {
        return Ok(());
    };
    let entries = std::fs::read_dir(dir).map_err(|e| GgufError::Io(e).in_file(dir))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((p, no, n)) = parse_split_name(name) {
            if p == stem && (n != count || no >= count) {
                return Err(GgufError::SplitStray { count }.in_file(&dir.join(name)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_llama_cpp() {
        // llama_split_path("m", 0, 3) == "m-00001-of-00003.gguf"
        let p = split_path(Path::new("out/m"), 0, 3);
        assert_eq!(p, Path::new("out/m-00001-of-00003.gguf"));
        assert_eq!(split_prefix(&p, 0, 3).as_deref(), Some(Path::new("out/m")));
        assert_eq!(split_prefix(&p, 1, 3), None);
        assert_eq!(split_prefix(Path::new("-00001-of-00003.gguf"), 0, 3), None);
        assert_eq!(
            parse_split_name("gpt-oss-120b-00002-of-00003.gguf"),
            Some(("gpt-oss-120b", 1, 3))
        );
        assert_eq!(parse_split_name("m-00000-of-00003.gguf"), None);
        assert_eq!(parse_split_name("m-0001-of-00003.gguf"), None);
        assert_eq!(parse_split_name("m.gguf"), None);
    }
}
