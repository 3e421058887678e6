//! ossify: convert, quantize, inspect and verify gpt-oss checkpoints.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
