//! ossify: convert, quantize, inspect and verify gpt-oss checkpoints. This file only parses arguments and
//! dispatches to `ossify::cli`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ossify::checkpoint::Layout;
use ossify::cli;
use ossify::plan::OutType;

#[derive(Parser, Debug)]
#[command(
    name = "ossify",
    version = env!("OSSIFY_VERSION"),
    about = "Convert, quantize, inspect and verify OpenAI gpt-oss checkpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert an HF or original/ checkpoint to GGUF, byte for byte as llama.cpp's converter would.
    Convert(ConvertArgs),
    /// Show a checkpoint's layout, architecture and tensor table (GGUF, .safetensors or a checkpoint folder).
    InspectWeights(InspectArgs),
    /// Prove a converted model computes what its source computes: tensors, then logits (exit 0 pass, 1 fail).
    VerifyParity(VerifyParityArgs),
    /// Chunked perplexity of a model over a text, as llama-perplexity computes it.
    Perplexity(PerplexityArgs),
    /// Re-encode weights into ggml block types (GGUF, as llama-quantize) or OpenAI's MXFP4 safetensors layout.
    Quantize(cli::quantize::QuantizeArgs),
    /// Token ids of a text with the model's own tokenizer (tokenizer.json or the GGUF vocabulary).
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Answer one prompt in the harmony chat format (final channel to stdout; --json for tokens and channels).
    Generate(cli::generate::GenerateArgs),
    /// Talk to a model: one message per line of standard input, answers streamed as they are generated.
    Chat(cli::generate::ChatArgs),
    /// Print a shell completion script: ossify completions bash > /etc/bash_completion.d/ossify
    Completions {
        #[arg(value_enum, ignore_case = true)]
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "With --reference-logits, give only CANDIDATE: ossify verify-parity --reference-logits ref.npy --tokens tokens.json CANDIDATE"
)]
struct VerifyParityArgs {
    /// SOURCE CANDIDATE (or only CANDIDATE with --reference-logits).
    #[arg(num_args = 1..=2, required = true, value_name = "MODEL")]
    models: Vec<PathBuf>,
    /// float32 logits [tokens, vocab] from another implementation (.npy), for the ids in --tokens.
    #[arg(long, value_name = "FILE.npy")]
    reference_logits: Option<PathBuf>,
    /// Text to evaluate, tokenized with the source's tokenizer.
    #[arg(short = 'f', long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Token ids: [..], {"tokens": [..]} or {"sequences": [[..], ..]}.
    #[arg(long, value_name = "FILE.json")]
    tokens: Option<PathBuf>,
    /// Use only this sequence of a multi-sequence tokens file.
    #[arg(long)]
    sequence: Option<usize>,
    /// Fail when the mean KL divergence exceeds this (default 1e-3 when no threshold is given).
    #[arg(long, value_parser = cli::parse_max_kld)]
    max_kld: Option<f64>,
    /// Fail when the same-top-1 rate is below this fraction (default 0.99 when no threshold is given).
    #[arg(long, value_parser = cli::parse_min_top1)]
    min_top1: Option<f64>,
    /// Fail when PPL(candidate) / PPL(reference) exceeds this.
    #[arg(long, value_parser = cli::parse_max_ppl_ratio)]
    max_ppl_ratio: Option<f64>,
    /// Round the YaRN correction range as llama.cpp does (to match its F32 path).
    #[arg(long)]
    yarn_truncate: bool,
    /// Forward-pass precision: exact f32 (the transformers reference) or activations rounded and dots summed as
    /// llama.cpp's CPU backend does (Q8_0 for quantized weights; faster, and closer to llama.cpp's logits: to 5e-6
    /// on the tiny golden models, mean KLD 0.019 at gpt-oss-20b width where llama.cpp's F16 KV cache and attention
    /// differ; see the README).
    #[arg(long, value_enum, ignore_case = true, default_value_t = PrecisionArg::Exact)]
    precision: PrecisionArg,
    /// Where the forward pass runs: cpu, cuda (the first GPU; an error without one) or auto (CUDA when a GPU
    /// is there).
    #[arg(long, value_enum, ignore_case = true, default_value_t = ossify::gpt_oss::Device::Cpu)]
    device: ossify::gpt_oss::Device,
    /// Compare tensors only (no forward pass).
    #[arg(long)]
    tensors_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: cli::CommonArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PrecisionArg {
    Exact,
    Q8,
}

impl From<PrecisionArg> for ossify::gpt_oss::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Exact => ossify::gpt_oss::Precision::Exact,
            PrecisionArg::Q8 => ossify::gpt_oss::Precision::Q8Activations,
        }
    }
}

#[derive(clap::Args, Debug)]
struct PerplexityArgs {
    /// A checkpoint folder or GGUF file.
    model: PathBuf,
    /// Text to evaluate, tokenized with the model's tokenizer.
    #[arg(short = 'f', long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Token ids instead of text (JSON, as verify-parity --tokens).
    #[arg(long, value_name = "FILE.json", conflicts_with = "text")]
    tokens: Option<PathBuf>,
    /// Context (chunk) length.
    #[arg(short = 'c', long, default_value_t = 512, value_parser = cli::parse_ctx)]
    ctx: usize,
    /// Write the logits of every chunk, all ctx rows of each (not only the scored half), as one float32 .npy of
    /// shape [chunks × ctx, vocab], and the chunks' token ids as {"sequences": [[..], ..]} to FILE.tokens.json
    /// beside it (FILE is the path without its extension): the input of verify-parity --reference-logits.
    #[arg(long, value_name = "FILE.npy")]
    dump_logits: Option<PathBuf>,
    /// Replace existing --dump-logits files (never an input).
    #[arg(long)]
    force: bool,
    /// Round the YaRN correction range as llama.cpp does.
    #[arg(long)]
    yarn_truncate: bool,
    /// Forward-pass precision (as verify-parity --precision).
    #[arg(long, value_enum, ignore_case = true, default_value_t = PrecisionArg::Exact)]
    precision: PrecisionArg,
    /// Where the forward pass runs (as verify-parity --device).
    #[arg(long, value_enum, ignore_case = true, default_value_t = ossify::gpt_oss::Device::Cpu)]
    device: ossify::gpt_oss::Device,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: cli::CommonArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayoutArg {
    Hf,
    Original,
    Gguf,
}

/// The layouts convert reads (a GGUF is not an input of convert: quantize re-encodes GGUFs).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SourceLayoutArg {
    Hf,
    Original,
}

impl From<SourceLayoutArg> for Layout {
    fn from(l: SourceLayoutArg) -> Layout {
        match l {
            SourceLayoutArg::Hf => Layout::Hf,
            SourceLayoutArg::Original => Layout::Original,
        }
    }
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Hf => Layout::Hf,
            LayoutArg::Original => Layout::Original,
            LayoutArg::Gguf => Layout::Gguf,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutTypeArg {
    Auto,
    Bf16,
    F16,
    F32,
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<OutTypeArg> for OutType {
    fn from(o: OutTypeArg) -> OutType {
        match o {
            OutTypeArg::Auto => OutType::Auto,
            OutTypeArg::Bf16 => OutType::Bf16,
            OutTypeArg::F16 => OutType::F16,
            OutTypeArg::F32 => OutType::F32,
            OutTypeArg::Q8_0 => OutType::Q8_0,
        }
    }
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// Checkpoint folder (HF layout, or OpenAI's original/).
    src: PathBuf,
    /// Output GGUF file.
    #[arg(short, long, visible_alias = "outfile")]
    output: PathBuf,
    /// Type of the non-expert matrices (MXFP4 experts are always repacked losslessly).
    #[arg(long, value_enum, ignore_case = true, default_value = "auto")]
    outtype: OutTypeArg,
    /// Override layout detection.
    #[arg(long, value_enum, ignore_case = true)]
    layout: Option<SourceLayoutArg>,
    /// general.name in the output (default: the checkpoint folder's name, as llama.cpp's converter falls back
    /// to).
    #[arg(long, visible_alias = "model-name", value_name = "NAME", value_parser = cli::parse_model_name)]
    name: Option<String>,
    /// Print what would be written (each tensor's name, source, type and bytes; the files and the total)
    /// without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: cli::CommonArgs,
    /// Bytes per streamed piece (0: the default). For tests: 1 sends every row on its own.
    #[arg(long, default_value_t = 0, hide = true)]
    piece_bytes: usize,
    #[command(flatten)]
    split: cli::split::SplitArgs,
    /// Replace an existing output file (never an input).
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
struct InspectArgs {
    /// A GGUF file, a .safetensors file or a checkpoint folder.
    path: PathBuf,
    /// Per-tensor statistics (reads all the data, in parallel).
    #[arg(long)]
    stats: bool,
    /// Override layout detection.
    #[arg(long, value_enum, ignore_case = true)]
    layout: Option<LayoutArg>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: cli::CommonArgs,
}

impl Command {
    /// The flags every command but `completions` shares.
    fn common(&self) -> Option<cli::CommonArgs> {
        Some(match self {
            Command::Convert(a) => a.common,
            Command::InspectWeights(a) => a.common,
            Command::VerifyParity(a) => a.common,
            Command::Perplexity(a) => a.common,
            Command::Quantize(a) => a.common,
            Command::Tokenize(a) => a.common,
            Command::Generate(a) => a.decode.common,
            Command::Chat(a) => a.decode.common,
            Command::Completions { .. } => return None,
        })
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return Ok(usage_error(e)),
    };
    match cli.command.common() {
        Some(common) => common.install(|| dispatch(cli.command)),
        None => dispatch(cli.command),
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Convert(a) => cli::convert::run(&cli::convert::ConvertOptions {
            src: a.src,
            out: a.output,
            outtype: a.outtype.into(),
            layout: a.layout.map(Into::into),
            threads: a.common.threads,
            json: a.json,
            progress: !a.common.quiet,
            piece_bytes: a.piece_bytes,
            split: a.split.rule(),
            force: a.force,
            name: a.name,
            dry_run: a.dry_run,
        })?,
        Command::InspectWeights(a) => {
            cli::inspect_weights::run(&cli::inspect_weights::InspectOptions {
                path: a.path,
                stats: a.stats,
                layout: a.layout.map(Into::into),
                threads: a.common.threads,
                json: a.json,
                progress: !a.common.quiet,
            })?
        }
        Command::VerifyParity(a) => {
            let (source, candidate) = match (a.models.as_slice(), &a.reference_logits) {
                ([c], Some(_)) => (None, c.clone()),
                ([s, c], None) => (Some(s.clone()), c.clone()),
                ([_], None) => anyhow::bail!(
                    "verify-parity needs SOURCE and CANDIDATE (or --reference-logits FILE CANDIDATE)"
                ),
                _ => anyhow::bail!("with --reference-logits give only CANDIDATE"),
            };
            let pass = cli::verify_parity::run(&cli::verify_parity::VerifyOptions {
                source,
                candidate,
                reference_logits: a.reference_logits,
                text: a.text,
                tokens: a.tokens,
                sequence: a.sequence,
                thresholds: ossify::parity::logits::Thresholds {
                    max_kld: a.max_kld,
                    min_top1: a.min_top1,
                    max_ppl_ratio: a.max_ppl_ratio,
                    default_for: None,
                },
                yarn_truncate: a.yarn_truncate,
                precision: a.precision.into(),
                device: a.device,
                tensors_only: a.tensors_only,
                json: a.json,
                progress: !a.common.quiet,
            })?;
            if !pass {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Perplexity(a) => {
            let pass = cli::perplexity::run(&cli::perplexity::PerplexityOptions {
                model: a.model,
                text: a.text,
                tokens: a.tokens,
                ctx: a.ctx,
                dump_logits: a.dump_logits,
                yarn_truncate: a.yarn_truncate,
                precision: a.precision.into(),
                device: a.device,
                json: a.json,
                force: a.force,
                quiet: a.common.quiet,
            })?;
            if !pass {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Quantize(a) => cli::quantize::run(&a)?,
        Command::Tokenize(a) => cli::tokenize::run(&a)?,
        Command::Generate(a) => cli::generate::run_generate(&a)?,
        Command::Chat(a) => cli::generate::run_chat(&a)?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // into a buffer first: clap_complete panics on a write error such as a closed pipe
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ossify", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &buf)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    ossify::interrupt::install();
    match run() {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`ossify inspect-weights x | head`) is not an error.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout as clap prints them; a usage error is one line, as every other error, with
/// exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    // The first paragraph (the message and, for missing arguments, the list of them), on one line.
    let para: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = para.join(" ");
    let msg = joined.strip_prefix("error: ").unwrap_or(&joined);
    eprintln!("error: {} (see --help)", escape_controls(msg));
    ExitCode::from(2)
}

/// The error and its causes on one line: "converting into x: tensor 'y': z".
fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        // Skip a cause already contained in the previous message (thiserror's "{source}" formatting).
        if parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    escape_controls(&parts.join(": "))
}

/// Control characters (from a file name, a tensor name or any other text a file supplies) written as escapes,
/// so an error line is one line and cannot drive the terminal.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}
