//! `ossify tokenize MODEL [--text FILE | -] [-p TEXT]`: the token ids a model's own tokenizer gives a text, as
//! `llama-tokenize` prints them (`--pieces`: one `id -> 'piece'` line per token).
//!
//! The tokenizer is the one every other command uses for that path: a folder's tokenizer.json (the Python
//! `tokenizers` library's encoding), a GGUF file's vocabulary (llama.cpp's), or o200k_harmony for a folder
//! without one. Special tokens written in the text (`<|start|>`) are parsed as the model's tokenizer parses them
//! (`tokenizers`' default, llama.cpp's `parse_special = true`) unless `--no-parse-special`; nothing is added
//! (gpt-oss adds no BOS).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::tokenizer::TextTokenizer;

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// A checkpoint folder (its tokenizer.json) or a GGUF file (its vocabulary).
    pub model: PathBuf,
    /// Text file to tokenize; `-` (or no --text and no --prompt) reads standard input.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "prompt")]
    pub text: Option<PathBuf>,
    /// Text given on the command line.
    #[arg(long, short = 'p', value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Print each token's piece beside its id (`id -> 'piece'`, as llama-tokenize).
    #[arg(long)]
    pub pieces: bool,
    /// Read special tokens written in the text (`<|start|>`) as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Print one JSON object: ids (and pieces with --pieces), count, tokenizer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: super::CommonArgs,
}

/// Tokenizes and prints.
pub fn run(a: &TokenizeArgs) -> Result<()> {
    let text = match (&a.text, &a.prompt) {
        (_, Some(p)) => p.clone(),
        (Some(f), None) if f.as_os_str() != "-" => crate::checkpoint::read_input_text(f)?,
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input (tokenize needs UTF-8 text)")?;
            s
        }
    };
    if !a.model.exists() {
        bail!("{}: no such file or folder", a.model.display());
    }
    let tok = TextTokenizer::for_checkpoint(&a.model)?;
    let ids = tok.encode(&text, !a.no_parse_special)?;
    let pieces: Vec<Vec<u8>> = if a.pieces {
        ids.iter()
            .map(|&id| tok.piece_bytes(id))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut v = serde_json::json!({
            "model": a.model.display().to_string(),
            "tokenizer": tok.describe(),
            "parse_special": !a.no_parse_special,
            "n_tokens": ids.len(),
            "ids": ids,
        });
        if a.pieces {
            v["pieces"] = pieces
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else if a.pieces {
        for (id, p) in ids.iter().zip(&pieces) {
            // raw bytes, as llama-tokenize prints them: a piece may be half of a UTF-8 character
            write!(out, "{id:>6} -> '")?;
            out.write_all(p)?;
            writeln!(out, "'")?;
        }
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    }
    out.flush()?;
    if !a.common.quiet && !a.json {
        eprintln!("{} tokens ({})", ids.len(), tok.describe());
    }
    Ok(())
}
