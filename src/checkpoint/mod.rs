//! Open any checkpoint ossify reads and present it as a config plus a catalogue of tensor views over
//! memory-mapped files.
//!
//! PUBLIC CONTRACT (other modules are written against it; keep these signatures):
//! ```ignore
//! pub enum Layout { Hf, Original, Gguf }
//! pub struct Checkpoint { pub path: PathBuf, pub layout: Layout, pub config: GptOssConfig, .. }
//! impl Checkpoint {
//!     pub fn open(path: &Path, layout: Option<Layout>) -> anyhow::Result<Checkpoint>;
//!     /// Error names the file and the tensor.
//!     pub fn tensor(&self, name: &str) -> anyhow::Result<TensorView<'_>>;
//!     pub fn get(&self, name: &str) -> Option<TensorView<'_>>;
//!     /// In file order.
//!     pub fn tensor_names(&self) -> Vec<&str>;
//! }
//! ```
//! Beyond the contract: `config_path`, `tokenizer_dir` (the folder with tokenizer.json; for `original/` its
//! parent), `experts` ([`ExpertStorage`]: MXFP4 pair, dense (E, in, out), or GGUF), `file_of(name)`, `gguf()` and
//! `safetensors()` (the underlying readers), [`detect_layout`], [`expected_tensors`] and [`config_from_gguf`].
//! Which tensors a config implies, and where each GGUF tensor lives in each layout, is
//! [`crate::gpt_oss::names`]'s table.
//!
//! Tensor names are the checkpoint's own (HF: `model.layers.0.mlp.experts.gate_up_proj_blocks`; original:
//! `block.0.mlp.mlp1_weight.blocks`; GGUF: `blk.0.ffn_gate_exps.weight`). Shapes are row-major, outermost first.
//!
//! Layout detection: a file starting with the GGUF magic is GGUF; a folder whose config.json names gpt-oss
//! (`model_type: gpt_oss` or `GptOssForCausalLM`) is HF; a folder whose config.json has OpenAI's keys
//! (`num_experts` and `experts_per_token`, no `model_type`) is original. `--layout` overrides detection.
//! Opening validates every tensor the config implies (present, shape, dtype), so later stages can index
//! without checks failing on input.

mod expect;
mod gguf;

pub use crate::gpt_oss::metadata::config_from_gguf;

pub use crate::gpt_oss::names::{ExpectedDType, ExpectedTensor, ExpertStorage, Layout};
pub use expect::expected_tensors;
pub use gguf::validate as validate_gguf_tensors;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::gguf::GgufModel;
use ossify_formats::safetensors::SafetensorsModel;
use ossify_formats::TensorView;

use crate::gpt_oss::config::{read_json, ConfigSource};
use crate::gpt_oss::{GptOssConfig, TensorSource};

enum Store {
    Safetensors(SafetensorsModel),
    Gguf(Box<GgufModel>),
}

/// A checkpoint: its config and a catalogue of tensors over memory maps.
pub struct Checkpoint {
    /// What was opened: the model folder, or the GGUF file.
    pub path: PathBuf,
    pub layout: Layout,
    pub config: GptOssConfig,
    /// The config.json read (None for GGUF).
    pub config_path: Option<PathBuf>,
    /// Where tokenizer.json & co. live (the model folder; for `original/`, its parent), if found.
    pub tokenizer_dir: Option<PathBuf>,
    /// How the expert matrices are stored.
    pub experts: ExpertStorage,
    store: Store,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("experts", &self.experts)
            .finish_non_exhaustive()
    }
}

/// Reads a whole input file (a text, a token list, a JSON file), refusing anything that is not a regular file
/// before reading a byte: a FIFO or a device would block or never end, a folder is not a file. Opened
/// non-blocking and checked on the open descriptor, so the answer holds for what is read.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |m: &std::fs::Metadata| -> Option<String> {
        if m.is_dir() {
            Some(format!("{}: is a folder, not a file", path.display()))
        } else if !m.is_file() {
            let kind = special_file_kind(path).unwrap_or("a special file");
            Some(format!("{}: is {kind}, not a regular file", path.display()))
        } else {
            None
        }
    };
    if let Ok(m) = std::fs::metadata(path) {
        if let Some(e) = not_regular(&m) {
            bail!(e);
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let m = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if let Some(e) = not_regular(&m) {
        bail!(e);
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

/// [`read_input`] as UTF-8 text.
pub fn read_input_text(path: &Path) -> Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", path.display()))
}

/// "a FIFO", "a socket", ... for a path that exists but is neither a regular file nor a folder.
fn special_file_kind(path: &Path) -> Option<&'static str> {
    let t = std::fs::metadata(path).ok()?.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
    }
    (!t.is_file() && !t.is_dir()).then_some("a special file")
}

/// Guesses the layout of `path` (see the module docs).
pub fn detect_layout(path: &Path) -> Result<Layout> {
    if path.is_file() {
        let mut magic = [0u8; 4];
        let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        use std::io::Read;
        if f.read_exact(&mut magic).is_ok() && magic == ossify_formats::gguf::constants::GGUF_MAGIC
        {
            return Ok(Layout::Gguf);
        }
        bail!(
            "{}: not a GGUF file and not a folder; give the checkpoint folder (the one with config.json)",
            path.display()
        );
    }
    if !path.is_dir() {
        if let Some(kind) = special_file_kind(path) {
            bail!("{}: is {kind}, not a model file or folder", path.display());
        }
        bail!("{}: no such file or folder", path.display());
    }
    let cfg_path = path.join("config.json");
    if let Some(kind) = special_file_kind(&cfg_path) {
        bail!("{}: is {kind}, not a regular file", cfg_path.display());
    }
    if !cfg_path.is_file() {
        if path.join("original").join("config.json").is_file() {
            bail!(
                "{}: no config.json here; did you mean {}?",
                path.display(),
                path.join("original").display()
            );
        }
        bail!("{}: no config.json", path.display());
    }
    let cfg = read_json(&cfg_path)?;
    let has = |k: &str| cfg.get(k).is_some_and(|v| !v.is_null());
    let model_type = cfg.get("model_type").and_then(|v| v.as_str());
    let gpt_oss_arch = cfg
        .get("architectures")
        .and_then(|v| v.as_array())
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("GptOssForCausalLM")));
    if model_type == Some("gpt_oss") || gpt_oss_arch {
        return Ok(Layout::Hf);
    }
    if model_type.is_none() && has("num_experts") && has("experts_per_token") {
        return Ok(Layout::Original);
    }
    bail!(
        "{}: unknown architecture (model_type {}); ossify reads gpt-oss only",
        cfg_path.display(),
        model_type.map_or("missing".to_string(), |m| format!("'{m}'"))
    )
}

pub(crate) use crate::gpt_oss::names::layers_present;

impl Checkpoint {
    /// Opens and validates a checkpoint; `layout` overrides detection.
    pub fn open(path: &Path, layout: Option<Layout>) -> Result<Checkpoint> {
        let layout = match layout {
            Some(l) => l,
            None => detect_layout(path)?,
        };
        match layout {
            Layout::Gguf => gguf::open(path),
            Layout::Hf | Layout::Original => Self::open_safetensors(path, layout),
        }
    }

    fn open_safetensors(dir: &Path, layout: Layout) -> Result<Checkpoint> {
        if !dir.is_dir() {
            bail!(
                "{}: the {layout} layout is a folder with config.json and safetensors files",
                dir.display()
            );
        }
        let cfg_path = dir.join("config.json");
        let json = read_json(&cfg_path)?;
        let config = match layout {
            Layout::Hf => GptOssConfig::from_hf_json(&json, &cfg_path)?,
            _ => GptOssConfig::from_original_json(&json, &cfg_path)?,
        };
        let model = SafetensorsModel::open_dir(dir)?;
        let template = match layout {
            Layout::Original => crate::gpt_oss::names::PER_LAYER[0].original,
            _ => crate::gpt_oss::names::PER_LAYER[0].hf,
        };
        let present = layers_present(model.entries().iter().map(|e| e.name.as_str()), template);
        if config.num_hidden_layers > present {
            bail!(
                "{}: {} = {} but the checkpoint's tensors hold {present} layer(s)",
                cfg_path.display(),
                match layout {
                    Layout::Original => ConfigSource::OriginalJson,
                    _ => ConfigSource::HfJson,
                }
                .spell("num_hidden_layers"),
                config.num_hidden_layers
            );
        }
        let experts = expect::validate(&model, layout, &config)?;
        let tokenizer_dir = [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            // present at all: a tokenizer.json that is not a regular file is refused by name when read
            .find(|d| std::fs::metadata(d.join("tokenizer.json")).is_ok())
            .map(Path::to_path_buf);
        // Every file of the checkpoint is an input: no output may be written over one of them.
        ossify_formats::atomic::protect_input(dir);
        if let Some(t) = &tokenizer_dir {
            ossify_formats::atomic::protect_input(t);
        }
        Ok(Checkpoint {
            path: dir.to_path_buf(),
            layout,
            config,
            config_path: Some(cfg_path),
            tokenizer_dir,
            experts,
            store: Store::Safetensors(model),
        })
    }

    /// A tensor by its name in this checkpoint; the error names the checkpoint and the tensor.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.get(name)
            .ok_or_else(|| anyhow!("{}: no tensor '{name}'", self.path.display()))
    }

    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        match &self.store {
            Store::Safetensors(m) => m.tensor(name),
            Store::Gguf(g) => g.tensor(name),
        }
    }

    /// Drops the resident pages under `bytes`, a slice of one of this checkpoint's tensor views, once the caller
    /// is done with it: a streaming reader keeps its resident set small this way. The bytes stay readable (they
    /// are faulted back in from the file). A no-op for other slices.
    pub fn release(&self, bytes: &[u8]) {
        match &self.store {
            Store::Safetensors(m) => m.release(bytes),
            Store::Gguf(g) => g.release(bytes),
        }
    }

    /// Every tensor name, in file order.
    pub fn tensor_names(&self) -> Vec<&str> {
        match &self.store {
            Store::Safetensors(m) => m.entries().iter().map(|e| e.name.as_str()).collect(),
            Store::Gguf(g) => g.tensor_infos().map(|t| t.name.as_str()).collect(),
        }
    }

    /// The file holding `name` (a shard, or the GGUF file).
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        match &self.store {
            Store::Safetensors(m) => m.file_of(name),
            Store::Gguf(g) => g.path_of(name),
        }
    }

    /// The GGUF file (or split set) behind a GGUF checkpoint (for its metadata).
    pub fn gguf(&self) -> Option<&GgufModel> {
        match &self.store {
            Store::Gguf(g) => Some(g),
            Store::Safetensors(_) => None,
        }
    }

    /// The safetensors files behind an HF / original checkpoint.
    pub fn safetensors(&self) -> Option<&SafetensorsModel> {
        match &self.store {
            Store::Safetensors(m) => Some(m),
            Store::Gguf(_) => None,
        }
    }
}

/// The forward pass reads a checkpoint's tensors through this (gpt_oss knows nothing of checkpoints).
impl TensorSource for Checkpoint {
    fn config(&self) -> &GptOssConfig {
        &self.config
    }

    fn get(&self, name: &str) -> Option<TensorView<'_>> {
        Checkpoint::get(self, name)
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}
