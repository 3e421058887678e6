//! Fuzz target bodies for this crate's readers, in library code so that one body runs under the coverage-guided
//! fuzzer (`fuzz/`, driven by `scripts/fuzz`) and in plain `cargo test` over the committed seeds and every crash
//! reproducer (`formats/tests/fuzz_regressions.rs`).
//!
//! Each body takes arbitrary bytes, feeds them to a reader, and returns `Err(message)` for input the reader
//! refused. What the fuzzer hunts is everything else: a panic (index out of bounds, arithmetic overflow — the
//! fuzz build turns overflow checks on), an abort, an allocation sized by an unchecked number, a hang; and an
//! accepted file that breaks an invariant the reader promises (asserted here, so a break is a crash too).
//!
//! Inputs that stand for several files (a sharded safetensors folder, a split GGUF set) are the files'
//! bytes joined by [`FILE_SEPARATOR`]; [`split_files`] cuts them apart. Those bodies write the files into a
//! fresh temporary folder per call (removed again before returning), so the real open path — names, memory
//! maps, shard routing — is what gets exercised.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gguf::{GgufFile, GgufModel};
use crate::safetensors::{SafetensorsModel, INDEX_FILE, SINGLE_FILE};

/// Separates the files of a multi-file input. Long and unlikely in real files; the fuzzer learns it from the
/// seeds (and from the comparison `split_files` makes).
pub const FILE_SEPARATOR: &[u8] = b"\n==ossify-fuzz-next-file==\n";

/// Cuts a multi-file input into its files (at most `max`; anything after the last allowed separator stays in
/// the last file).
pub fn split_files(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < max {
        match find(rest, FILE_SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + FILE_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A fresh, empty folder for one call's files; removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new() -> Result<ScratchDir, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ossify-fuzz-{}-{n}", std::process::id()));
        // A folder left by a killed run of the same pid and number is stale; start empty.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ScratchDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` inside the folder.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The GGUF reader. One file: parsed from memory ([`GgufFile::from_bytes`]) and wrapped as a one-file model
/// ([`GgufModel::from_file`], which checks the split keys). Several files (joined by [`FILE_SEPARATOR`], at most
/// 4): written as the shards `m-0000N-of-0000K.gguf` of a split set and opened with [`GgufModel::open`], which
/// finds, cross-checks and joins them.
///
/// Invariants checked on an accepted file: every tensor's bytes lie in the file and are exactly its shape of
/// its type; names are unique; every metadata value renders.
pub fn gguf(data: &[u8]) -> Result<(), String> {
    let parts = split_files(data, 4);
    if let [one] = parts.as_slice() {
        let file = GgufFile::from_bytes(one.to_vec()).map_err(|e| e.to_string())?;
        check_gguf_file(&file);
        let model =
            GgufModel::from_file(file, PathBuf::from("fuzz.gguf")).map_err(|e| e.to_string())?;
        check_gguf_model(&model);
        return Ok(());
    }
    let dir = ScratchDir::new()?;
    let count = parts.len();
    let mut first = None;
    for (i, part) in parts.iter().enumerate() {
        let p = dir.write(&format!("m-{:05}-of-{count:05}.gguf", i + 1), part)?;
        first.get_or_insert(p);
    }
    let first = first.ok_or("no file")?;
    let model = GgufModel::open(&first).map_err(|e| e.to_string())?;
    for f in model.shards() {
        check_gguf_file(f);
    }
    check_gguf_model(&model);
    Ok(())
}

fn check_gguf_file(f: &GgufFile) {
    let file_len = f.file_bytes().len();
    assert!(f.alignment.is_power_of_two());
    assert!(f.data_offset as usize <= file_len);
    for (_, v) in &f.metadata {
        let _ = v.summary();
    }
    let _ = f.architecture();
    for ti in &f.tensors {
        let bytes = f.tensor_bytes(ti);
        assert_eq!(bytes.len(), ti.size, "tensor '{}' bytes", ti.name);
        assert_eq!(f.tensor_info(&ti.name), Some(ti));
    }
    for view in f.tensor_views() {
        if let Err(e) = view.check() {
            panic!("accepted GGUF tensor fails its own shape check: {e}");
        }
    }
}

fn check_gguf_model(m: &GgufModel) {
    assert!(!m.shards().is_empty());
    let mut n = 0;
    for ti in m.tensor_infos() {
        assert_eq!(m.tensor_info(&ti.name), Some(ti));
        assert!(m.path_of(&ti.name).is_some());
        n += 1;
    }
    assert_eq!(n, m.n_tensors());
    for view in m.tensor_views() {
        if let Err(e) = view.check() {
            panic!("accepted GGUF tensor fails its own shape check: {e}");
        }
    }
    let _ = m.model_metadata();
}

/// The safetensors reader and the shard index. One file: written as `model.safetensors` and opened alone.
/// Several (joined by [`FILE_SEPARATOR`], at most 5): the first is `model.safetensors.index.json`, the others
/// the shards `model-0000N-of-00002.safetensors` (N from 0, as golden/tiny names them), and the folder is opened
/// through the index, which routes every tensor to its shard.
///
/// Invariants checked on an accepted model: every tensor's bytes are exactly its shape of its type, every name
/// resolves to itself, and (through an index) every tensor the index lists is in the shard it names.
pub fn safetensors(data: &[u8]) -> Result<(), String> {
    let parts = split_files(data, 5);
    let dir = ScratchDir::new()?;
    let model = if let [one] = parts.as_slice() {
        let p = dir.write(SINGLE_FILE, one)?;
        SafetensorsModel::open(&p).map_err(|e| e.to_string())?
    } else {
        let (index, shards) = parts.split_first().ok_or("no file")?;
        dir.write(INDEX_FILE, index)?;
        for (i, s) in shards.iter().enumerate() {
            dir.write(&format!("model-{i:05}-of-00002.safetensors"), s)?;
        }
        let model = SafetensorsModel::open(dir.path()).map_err(|e| e.to_string())?;
        let idx: serde_json::Value = serde_json::from_slice(index).map_err(|e| e.to_string())?;
        if let Some(map) = idx.get("weight_map").and_then(|m| m.as_object()) {
            for (tensor, shard) in map {
                let shard = shard.as_str().map(|s| dir.path().join(s));
                assert_eq!(
                    model.file_of(tensor),
                    shard.as_deref(),
                    "index routes '{tensor}'"
                );
            }
        }
        model
    };
    for e in model.entries() {
        let entry = model
            .entry(&e.name)
            .map(|x| (&x.name, x.file, x.start, x.end));
        assert_eq!(entry, Some((&e.name, e.file, e.start, e.end)));
        let Some(view) = model.view(e) else {
            panic!(
                "accepted safetensors tensor '{}' lies outside its file",
                e.name
            );
        };
        if let Err(msg) = view.check() {
            panic!("accepted safetensors tensor fails its own shape check: {msg}");
        }
    }
    let _ = model.metadata();
    Ok(())
}
