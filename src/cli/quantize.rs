//! `ossify quantize`: re-encode a checkpoint's tensors into ggml block types (GGUF) or OpenAI's MXFP4
//! safetensors layout.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use ossify_formats::atomic::{Existing, Kind};

use crate::quantize::calibrate::{collect_importance, DEFAULT_CHUNK};
use crate::quantize::preset::{parse_tensor_type, Preset};
use crate::quantize::safetensors_out::{quantize_to_safetensors, DEFAULT_SHARD_BYTES};
use crate::quantize::{
    quantize_to_gguf, ImportanceMatrix, Mxfp4Scale, OutputSplit, QuantizeOptions,
    TensorTypeOverride, TypeRules,
};

use super::split::SplitArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// llama.cpp's GGUF
    Gguf,
    /// OpenAI's HF layout: MXFP4 experts as *_blocks / *_scales, other tensors BF16 (from a GGUF: no
    /// tokenizer files, which a GGUF does not hold)
    Safetensors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScaleArg {
    /// ggml's rule, bit-exact with llama.cpp
    Ref,
    /// least (importance-weighted) squared error per block
    Mse,
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Input checkpoint: a GGUF file, or a Hugging Face folder (BF16 fine-tune or MXFP4)
    pub input: PathBuf,
    /// Output GGUF file, or folder with --format safetensors
    #[arg(short, long, visible_alias = "outfile")]
    pub output: PathBuf,
    /// Preset: mxfp4_moe, q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16, f32
    #[arg(long = "type", default_value = "mxfp4_moe")]
    pub preset: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Gguf)]
    pub format: OutputFormat,
    /// Per-tensor type, REGEX=TYPE (first match wins; as llama-quantize's --tensor-type)
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE")]
    pub tensor_type: Vec<String>,
    /// Type of output.weight
    #[arg(long)]
    pub output_tensor_type: Option<String>,
    /// Type of token_embd.weight
    #[arg(long)]
    pub token_embedding_type: Option<String>,
    /// Allow re-quantizing tensors that are already quantized
    #[arg(long)]
    pub allow_requantize: bool,
    /// Quantize NaN / Inf weights instead of refusing them (each breaks its whole block)
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// How MXFP4 blocks choose their scale
    #[arg(long, value_enum, default_value_t = ScaleArg::Ref)]
    pub mxfp4_scale: ScaleArg,
    /// Text file to run through the model to collect expert activation importance (implies --mxfp4-scale mse)
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Importance matrix in llama.cpp's imatrix GGUF format (from llama-imatrix, or written by
    /// --calibration); implies --mxfp4-scale mse
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Largest safetensors shard, in bytes (--format safetensors)
    #[arg(long, default_value_t = DEFAULT_SHARD_BYTES, hide = true)]
    pub shard_size: usize,
    /// With --calibration: also save the importance matrix here (llama.cpp's imatrix GGUF format)
    #[arg(long, value_name = "FILE")]
    pub imatrix_out: Option<PathBuf>,
    /// Worker threads (default: all cores). The output is the same at any count.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Where --calibration runs the forward pass (as verify-parity --device).
    #[arg(long, value_enum, default_value_t = crate::gpt_oss::Device::Cpu)]
    pub device: crate::gpt_oss::Device,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub split: SplitArgs,
    /// Split the output as the input split GGUF is split: each tensor in the shard it came from, the shards
    /// named after -o (as llama-quantize --keep-split)
    #[arg(long, conflicts_with_all = ["split_max_size", "split_max_tensors"])]
    pub keep_split: bool,
    /// Replace an existing output file (and --imatrix-out); never an input, never a folder with contents
    #[arg(long)]
    pub force: bool,
}

impl QuantizeArgs {
    /// Turns the arguments into options, checking every name and type before anything is opened.
    pub fn options(&self) -> Result<QuantizeOptions> {
        let preset = Preset::by_name(&self.preset).map_err(anyhow::Error::msg)?;
        let mut rules = TypeRules::new(preset);
        for t in &self.tensor_type {
            rules
                .overrides
                .push(TensorTypeOverride::parse(t).map_err(anyhow::Error::msg)?);
        }
        let ty = |flag: &str, s: &Option<String>| -> Result<_> {
            s.as_deref()
                .map(parse_tensor_type)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        rules.output_tensor_type = ty("--output-tensor-type", &self.output_tensor_type)?;
        rules.token_embedding_type = ty("--token-embedding-type", &self.token_embedding_type)?;
        let weighted = self.calibration.is_some() || self.imatrix.is_some();
        let mxfp4_scale = match (self.mxfp4_scale, weighted) {
            (ScaleArg::Mse, _) | (_, true) => Mxfp4Scale::Mse,
            (ScaleArg::Ref, false) => Mxfp4Scale::Ref,
        };
        let imatrix = self
            .imatrix
            .as_deref()
            .map(ImportanceMatrix::read_gguf)
            .transpose()?;
        Ok(QuantizeOptions {
            rules,
            allow_requantize: self.allow_requantize,
            allow_nonfinite: self.allow_nonfinite,
            mxfp4_scale,
            imatrix,
            progress: !self.quiet,
            split: if self.keep_split {
                OutputSplit::KeepInput
            } else {
                OutputSplit::Rule(self.split.rule())
            },
            existing: Existing::from_force(self.force),
        })
    }
}

pub fn run(args: &QuantizeArgs) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| anyhow::anyhow!("starting {} worker threads: {e}", args.threads))?;
    pool.install(|| run_inner(args))
}

fn run_inner(args: &QuantizeArgs) -> Result<()> {
    let opts = args.options()?;
    let inputs: Vec<&Path> = [
        Some(args.input.as_path()),
        args.calibration.as_deref(),
        args.imatrix.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let kind = match args.format {
        OutputFormat::Gguf => Kind::File,
        OutputFormat::Safetensors => Kind::Folder,
    };
    // A split output is shards named after -o (checked when created, before any work), not -o itself.
    let splits = args.keep_split || args.split.rule() != Default::default();
    super::check_output(&args.output, kind, args.force || splits, &inputs)?;
    if let Some(path) = &args.imatrix_out {
        super::check_output(path, Kind::File, args.force, &inputs)?;
    }
    let mut opts = opts;
    if let Some(text) = &args.calibration {
        if args.imatrix.is_some() {
            bail!("--calibration and --imatrix both give an importance matrix; pass one");
        }
        let m = collect_importance(&args.input, text, DEFAULT_CHUNK, args.device)?;
        if let Some(path) = &args.imatrix_out {
            m.write_gguf(
                path,
                &text.display().to_string(),
                DEFAULT_CHUNK as u32,
                opts.existing,
            )?;
        }
        opts.imatrix = Some(m);
    }
    match args.format {
        OutputFormat::Gguf => {
            let s = quantize_to_gguf(&args.input, &args.output, &opts)?;
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            if !args.quiet {
                let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
                eprintln!(
                    "{}: {} tensors, {:.2} MiB -> {:.2} MiB",
                    match files.as_slice() {
                        [first, .., last] => format!("{} files, {first} to {last}", files.len()),
                        _ => args.output.display().to_string(),
                    },
                    s.tensors.len(),
                    s.bytes_in as f64 / (1 << 20) as f64,
                    s.bytes_out as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
        OutputFormat::Safetensors => {
            if args.keep_split || args.split.rule() != Default::default() {
                bail!("--keep-split, --split-max-size and --split-max-tensors cut a GGUF; --format safetensors shards by --shard-size");
            }
            if opts.rules.preset.name != "mxfp4_moe" || !args.tensor_type.is_empty() {
                bail!("--format safetensors writes OpenAI's layout (experts MXFP4, the rest BF16); --type and --tensor-type do not apply");
            }
            let s = quantize_to_safetensors(&args.input, &args.output, &opts, args.shard_size)?;
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            if !args.quiet {
                eprintln!(
                    "{}: {:.2} MiB",
                    args.output.display(),
                    s.bytes_out as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
    }
}
