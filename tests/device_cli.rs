//! `--device`: without a CUDA driver `--device cuda` is one clear error (exit 2), and `--device auto` falls back to
//! the CPU and computes what `--device cpu` computes.

use std::path::Path;
use std::process::Command;

fn ossify() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ossify"))
}

fn golden(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(p)
        .display()
        .to_string()
}

fn perplexity(device: &str) -> std::process::Output {
    ossify()
        .args(["perplexity", &golden("tiny"), "--tokens"])
        .arg(golden("reference/tokens.json"))
        .args(["--ctx", "16", "--json", "--device", device])
        .output()
        .unwrap()
}

#[test]
fn device_cuda_without_a_driver_says_so() {
    if ossify_kernels::cuda::Gpu::probe().is_ok() {
        eprintln!("skipped: a CUDA device is there");
        return;
    }
    let out = perplexity("cuda");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--device cuda: no CUDA"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn device_auto_computes_what_cpu_computes() {
    let cpu = perplexity("cpu");
    let auto = perplexity("auto");
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    assert!(
        auto.status.success(),
        "{}",
        String::from_utf8_lossy(&auto.stderr)
    );
    let j = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (a, b) = (j(&cpu), j(&auto));
    let ppl = |v: &serde_json::Value| v["ppl"].as_f64().unwrap();
    let (pa, pb) = (ppl(&a), ppl(&b));
    assert_eq!(a["device"], "cpu");
    if ossify_kernels::cuda::Gpu::probe().is_ok() {
        assert_ne!(b["device"], "cpu");
        assert!((pa - pb).abs() <= 1e-4 * pa, "cpu {pa} vs auto (cuda) {pb}");
    } else {
        assert_eq!(b["device"], "cpu");
        assert_eq!(pa, pb);
    }
}
