//! ossify: convert, quantize, inspect and verify gpt-oss checkpoints. This file only parses arguments and
//! dispatches to `ossify::cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ossify", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Re-encode weights into ggml block types (GGUF) or OpenAI's MXFP4 safetensors layout
    Quantize(ossify::cli::quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Quantize(a) => ossify::cli::quantize::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
