//! `ossify quantize`: re-encode a checkpoint's tensors into ggml block types (GGUF) or OpenAI's MXFP4
//! safetensors layout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use ossify_formats::atomic::{Existing, Kind};
use serde::Serialize;

use crate::quantize::calibrate::{collect_importance, DEFAULT_CHUNK};
use crate::quantize::preset::{parse_tensor_type, Preset};
use crate::quantize::safetensors_out::{quantize_to_safetensors, DEFAULT_SHARD_BYTES};
use crate::quantize::{
    quantize_to_gguf, ImportanceMatrix, Mxfp4Scale, OutputSplit, QuantizeOptions, Summary,
    TensorTypeOverride, TypeRules,
};

use super::dry_run::{DryRun, PlannedFile, PlannedTensorRow};

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
    /// Where --calibration runs the forward pass (as verify-parity --device).
    #[arg(long, value_enum, default_value_t = crate::gpt_oss::Device::Cpu)]
    pub device: crate::gpt_oss::Device,
    /// general.name in the output GGUF (default: the input's; from a folder, its name as convert writes it)
    #[arg(long, visible_alias = "model-name", value_name = "NAME", value_parser = super::parse_model_name)]
    pub name: Option<String>,
    /// Print what would be written (each tensor's name, source, types and bytes; the files and the total)
    /// without writing anything (no calibration is run)
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as one JSON object on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: super::CommonArgs,
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
            progress: !self.common.quiet,
            split: if self.keep_split {
                OutputSplit::KeepInput
            } else {
                OutputSplit::Rule(self.split.rule())
            },
            existing: Existing::from_force(self.force),
            name: self.name.clone(),
            dry_run: self.dry_run,
        })
    }
}

/// What `ossify quantize --json` prints.
#[derive(Debug, Serialize)]
pub struct QuantizeReport {
    pub source: String,
    pub output: String,
    pub format: &'static str,
    /// The preset (`--type`).
    #[serde(rename = "type")]
    pub preset: String,
    /// `general.file_type` written (GGUF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<u32>,
    /// Per tensor: name, source type, output type (GGUF).
    pub tensors: Vec<TensorTypes>,
    /// Tensor data read and written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The files written, first to last (GGUF: the file, or the shards).
    pub files: Vec<String>,
    /// Calibration's importance matrix, when --imatrix-out wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imatrix_out: Option<String>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct TensorTypes {
    pub name: String,
    pub source_type: String,
    #[serde(rename = "type")]
    pub dtype: String,
}

/// Runs `ossify quantize` in the caller's thread pool (main installs `--threads`).
pub fn run(args: &QuantizeArgs) -> Result<()> {
    let start = Instant::now();
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
    if args.calibration.is_some() && args.imatrix.is_some() {
        bail!("--calibration and --imatrix both give an importance matrix; pass one");
    }
    if args.format == OutputFormat::Safetensors {
        if args.keep_split || args.split.rule() != Default::default() {
            bail!("--keep-split, --split-max-size and --split-max-tensors cut a GGUF; --format safetensors shards by --shard-size");
        }
        if opts.rules.preset.name != "mxfp4_moe" || !args.tensor_type.is_empty() {
            bail!("--format safetensors writes OpenAI's layout (experts MXFP4, the rest BF16); --type and --tensor-type do not apply");
        }
        if args.name.is_some() {
            bail!(
                "--name sets general.name of a GGUF; --format safetensors writes no GGUF metadata"
            );
        }
    }
    let mut opts = opts;
    if let (Some(text), false) = (&args.calibration, args.dry_run) {
        let m = collect_importance(
            &args.input,
            text,
            DEFAULT_CHUNK,
            args.device,
            !args.common.quiet,
        )?;
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
            if args.dry_run {
                return dry_run_report(args, &s).print(args.json);
            }
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
            if !args.common.quiet {
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
            if args.json {
                print_json(&QuantizeReport {
                    source: args.input.display().to_string(),
                    output: args.output.display().to_string(),
                    format: "gguf",
                    preset: opts.rules.preset.name.to_string(),
                    file_type: Some(opts.rules.preset.ftype.id()),
                    tensors: s
                        .tensors
                        .iter()
                        .map(|(name, from, to)| TensorTypes {
                            name: name.clone(),
                            source_type: from.name().to_string(),
                            dtype: to.name().to_string(),
                        })
                        .collect(),
                    bytes_in: s.bytes_in as u64,
                    bytes_out: s.bytes_out as u64,
                    files,
                    imatrix_out: imatrix_out(args),
                    notes: s.notes.clone(),
                    seconds: start.elapsed().as_secs_f64(),
                })?;
            }
            Ok(())
        }
        OutputFormat::Safetensors => {
            let s = quantize_to_safetensors(&args.input, &args.output, &opts, args.shard_size)?;
            if args.dry_run {
                let tensors = s
                    .tensors
                    .iter()
                    .map(|(name, source, from, to, shape)| PlannedTensorRow {
                        name: name.clone(),
                        source: source.clone(),
                        source_type: from.map(|d| d.name().to_string()),
                        dtype: to.name().to_string(),
                        shape: shape.clone(),
                        bytes: to.nbytes(shape.iter().product()).unwrap_or(0) as u64,
                    })
                    .collect();
                let files = s
                    .files
                    .iter()
                    .map(|(name, bytes, tensors)| PlannedFile {
                        path: args.output.join(name).display().to_string(),
                        bytes: *bytes,
                        tensors: *tensors,
                    })
                    .collect();
                return DryRun::new(
                    args.input.display().to_string(),
                    args.output.display().to_string(),
                    tensors,
                    files,
                )
                .print(args.json);
            }
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            if !args.common.quiet {
                eprintln!(
                    "{}: {:.2} MiB",
                    args.output.display(),
                    s.bytes_out as f64 / (1 << 20) as f64
                );
            }
            if args.json {
                print_json(&QuantizeReport {
                    source: args.input.display().to_string(),
                    output: args.output.display().to_string(),
                    format: "safetensors",
                    preset: opts.rules.preset.name.to_string(),
                    file_type: None,
                    tensors: Vec::new(),
                    bytes_in: 0,
                    bytes_out: s.bytes_out as u64,
                    files: vec![args.output.display().to_string()],
                    imatrix_out: imatrix_out(args),
                    notes: s.notes.clone(),
                    seconds: start.elapsed().as_secs_f64(),
                })?;
            }
            Ok(())
        }
    }
}

fn imatrix_out(args: &QuantizeArgs) -> Option<String> {
    args.imatrix_out
        .as_ref()
        .filter(|_| args.calibration.is_some())
        .map(|p| p.display().to_string())
}

fn print_json(r: &QuantizeReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, r)?;
    writeln!(out)?;
    Ok(())
}

/// The plan of a `--dry-run` (the summary of a run that stopped before creating any file).
fn dry_run_report(args: &QuantizeArgs, s: &Summary) -> DryRun {
    let tensors = s
        .tensors
        .iter()
        .zip(&s.sources)
        .map(|((name, from, to), (source, shape))| PlannedTensorRow {
            name: name.clone(),
            source: source.clone(),
            source_type: Some(from.name().to_string()),
            dtype: to.name().to_string(),
            shape: shape.clone(),
            bytes: to.nbytes(shape.iter().product()).unwrap_or(0) as u64,
        })
        .collect();
    DryRun::new(
        args.input.display().to_string(),
        args.output.display().to_string(),
        tensors,
        s.planned_files.iter().map(Into::into).collect(),
    )
}
