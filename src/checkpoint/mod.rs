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
//! Tensor names are the checkpoint's own (HF: `model.layers.0.mlp.experts.gate_up_proj_blocks`; original:
//! `block.0.mlp.mlp1_weight.blocks`; GGUF: `blk.0.ffn_gate_exps.weight`). Shapes are row-major, outermost first.
