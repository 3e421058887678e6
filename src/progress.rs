//! Progress bars, the one place they are made: on standard error, only when it is a terminal and the user did
//! not pass `-q`; without colour under `NO_COLOR` (<https://no-color.org>). Library code takes an
//! `indicatif::ProgressBar` and advances it; a hidden bar costs nothing, so callers that want no progress
//! (tests, the library used from elsewhere) pass [`ProgressBar::hidden`].

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a bar counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, shown as KiB / MiB / GiB with a rate.
    Bytes,
    /// Whole things, named in the plural ("tensors", "tokens", "chunks").
    Items(&'static str),
}

/// Whether colour may be used: `NO_COLOR` unset or empty.
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A bar of `len` units labelled `what`, drawn on standard error; hidden unless `enabled` and standard error is
/// a terminal. It redraws itself a few times a second (elapsed time and spinner move while one long step runs).
pub fn bar(enabled: bool, len: u64, what: &str, unit: Unit) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(style(unit, color_allowed()));
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn style(unit: Unit, color: bool) -> ProgressStyle {
    ProgressStyle::with_template(&template(unit, color))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Shows `bars` one under the other while they advance together (each visible one is moved into the returned
/// group, which must live as long as they draw; hidden ones stay hidden).
pub fn stack(bars: &[&ProgressBar]) -> indicatif::MultiProgress {
    let multi = indicatif::MultiProgress::new();
    for b in bars {
        if !b.is_hidden() {
            multi.add((*b).clone());
        }
    }
    multi
}

/// The template of a bar: the same text with and without colour.
fn template(unit: Unit, color: bool) -> String {
    let (spinner, bar) = if color {
        ("{spinner:.green}", "{bar:30.cyan/blue}")
    } else {
        ("{spinner}", "{bar:30}")
    };
    let counts = match unit {
        Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec})".to_string(),
        Unit::Items(what) => format!("{{pos}}/{{len}} {what}"),
    };
    format!("{spinner} {{msg}} [{bar}] {counts}, {{elapsed}} elapsed, eta {{eta}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_plain_has_no_colour() {
        for unit in [Unit::Bytes, Unit::Items("tensors")] {
            for color in [false, true] {
                let t = template(unit, color);
                assert!(ProgressStyle::with_template(&t).is_ok(), "{t}");
                assert_eq!(t.contains(".cyan"), color, "{t}");
            }
        }
    }

    #[test]
    fn not_on_a_pipe_or_when_quiet() {
        assert!(bar(false, 10, "x", Unit::Items("things")).is_hidden());
    }
}
