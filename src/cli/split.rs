//! `--split-max-size` / `--split-max-tensors`: how `convert` and `quantize` cut their GGUF into a split set, as
//! llama.cpp's tools define the flags (tools/gguf-split: a shard's tensor data stays within SIZE, or it holds at
//! most N tensors; one or the other).

use clap::Args;
use ossify_formats::gguf::SplitRule;

#[derive(Args, Clone, Debug, Default)]
pub struct SplitArgs {
    /// Write a split GGUF (PREFIX-00001-of-0000N.gguf ...) whose shards hold at most SIZE bytes of tensor data
    /// each, as llama-gguf-split --split-max-size: N bytes, or with K, M or G (powers of 1000), e.g. 50G, 500M
    #[arg(long, value_name = "SIZE", value_parser = parse_split_size, conflicts_with = "split_max_tensors")]
    pub split_max_size: Option<u64>,
    /// Write a split GGUF whose shards hold at most N tensors each, as llama-gguf-split --split-max-tensors
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64))]
    pub split_max_tensors: Option<u64>,
}

impl SplitArgs {
    pub fn rule(&self) -> SplitRule {
        match (self.split_max_size, self.split_max_tensors) {
            (Some(n), _) => SplitRule::MaxSize(n),
            (None, Some(n)) => SplitRule::MaxTensors(usize::try_from(n).unwrap_or(usize::MAX)),
            (None, None) => SplitRule::None,
        }
    }
}

/// `N`, `NK`, `NM` or `NG` with a positive integer `N`; the units are powers of 1000, as in llama.cpp's
/// converter (`split_str_to_n_bytes`: K, M, G) and gguf-split (M, G).
pub fn parse_split_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 'K')) => (&s[..i], 1_000u64),
        Some((i, 'M')) => (&s[..i], 1_000_000),
        Some((i, 'G')) => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .ok()
        .filter(|&n| n > 0 && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("'{s}' is not a size: a positive whole number of bytes, or one with K, M or G (e.g. 2G, 500M)")
        })?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_split_size;

    #[test]
    fn sizes_as_llama_cpp() {
        assert_eq!(parse_split_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_split_size("500M"), Ok(500_000_000));
        assert_eq!(parse_split_size("50G"), Ok(50_000_000_000));
        assert_eq!(parse_split_size("7K"), Ok(7_000));
        assert_eq!(parse_split_size("4096"), Ok(4096));
        for bad in [
            "",
            "G",
            "0G",
            "2.5G",
            "-1M",
            "2g",
            "2GB",
            "+2G",
            "99999999999999G",
        ] {
            assert!(parse_split_size(bad).is_err(), "{bad}");
        }
    }
}
