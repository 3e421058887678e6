//! A GGUF file as a checkpoint: config from its `gpt-oss.*` metadata ([`crate::gpt_oss::metadata`], the keys
//! llama.cpp reads), tensors from its tensor infos.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ossify_formats::gguf::GgufModel;

use crate::gpt_oss::metadata::config_from_gguf;
use crate::gpt_oss::names;
use crate::gpt_oss::GptOssConfig;

use super::{Checkpoint, ExpertStorage, Layout, Store};

pub(super) fn open(path: &Path) -> Result<Checkpoint> {
    let file = GgufModel::open(path).map_err(anyhow::Error::new)?;
    let config = config_from_gguf(&file, path)?;
    validate(&file, path, &config)?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        layout: Layout::Gguf,
        config,
        config_path: None,
        tokenizer_dir: None,
        experts: ExpertStorage::Gguf,
        store: Store::Gguf(Box::new(file)),
    })
}

/// Every tensor llama.cpp's gpt-oss loader requires, with the shape the metadata implies.
pub fn validate(file: &GgufModel, path: &Path, c: &GptOssConfig) -> Result<()> {
    for r in names::resolve_all(Layout::Gguf, ExpertStorage::Gguf, c) {
        let name = &r.gguf;
        let t = file
            .tensor_info(name)
            .with_context(|| format!("{}: tensor '{name}' is missing", path.display()))?;
        if t.shape != r.shape {
            bail!(
                "{}: tensor '{name}' has shape {:?}, expected {:?} for this model's metadata",
                path.display(),
                t.shape,
                r.shape
            );
        }
    }
    Ok(())
}
