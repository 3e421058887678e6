//! ossify: convert, quantize, inspect and verify gpt-oss checkpoints.

mod checkpoint;
mod gpt_oss;

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
