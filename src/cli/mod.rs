//! One module per command. Each exposes its options as a plain struct and a `run` that prints its result;
//! `main.rs` only maps clap arguments onto them.

pub mod convert;
pub mod generate;
pub mod inspect_weights;
pub mod perplexity;
pub mod quantize;
pub mod split;
pub mod tokenize;
pub mod verify_parity;

use std::path::Path;

use ossify_formats::atomic::{self, Existing, Kind};

/// Checks before any work that `target` may be written (not an input, not an existing output unless `force`,
/// nobody else writing it), so a long run does not fail at its end; says so when a partial output left by an
/// interrupted run will be replaced. `inputs` are registered first (the readers register the files they map
/// themselves, later; text and token files are read whole, so they are named here).
pub(crate) fn check_output(
    target: &Path,
    kind: Kind,
    force: bool,
    inputs: &[&Path],
) -> anyhow::Result<()> {
    for i in inputs {
        atomic::protect_input(i);
    }
    let p = atomic::preflight(target, kind, Existing::from_force(force))?;
    if let Some(stale) = p.stale_partial {
        eprintln!(
            "note: {}: left by an interrupted run; replacing it",
            stale.display()
        );
    }
    Ok(())
}
