//! Every CUDA kernel source compiles with NVRTC for compute capability 9.0 (Hopper: H100, H200) and 8.0 (Ampere:
//! A100), to PTX and to a cubin, and defines every kernel the backend loads, on any machine: no GPU is needed,
//! only NVRTC (the `nvidia-cuda-nvrtc-cu12` wheel that scripts/test-all installs and names in `OSSIFY_NVRTC`).
//! With `OSSIFY_REQUIRE_NVRTC` set (scripts/test-all sets it) a missing NVRTC fails the test; otherwise the test
//! says it skipped.
#![cfg(feature = "cuda")]

use ossify_kernels::cuda::{full_source, Nvrtc, Output, KERNEL_NAMES, SOURCES};

fn nvrtc() -> Option<Nvrtc> {
    match Nvrtc::locate() {
        Ok(n) => Some(n),
        Err(e) if std::env::var_os("OSSIFY_REQUIRE_NVRTC").is_some() => panic!("{e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn every_kernel_compiles_for_sm_90_and_sm_80() {
    let Some(nv) = nvrtc() else { return };
    println!("NVRTC {}.{} from {}", nv.version.0, nv.version.1, nv.origin);
    let mut failures = Vec::new();
    for arch in [90, 80] {
        let mut entries = String::new();
        for (name, src) in SOURCES {
            let full = full_source(name, src);
            match nv.compile(name, &full, arch, Output::Ptx) {
                Ok(ptx) => {
                    let text = String::from_utf8_lossy(&ptx);
                    assert!(
                        text.contains(&format!(".target sm_{arch}")),
                        "{name}: PTX for another target"
                    );
                    entries.push_str(&text);
                    println!("{name}: compute_{arch} PTX, {} bytes", ptx.len());
                }
                Err(e) => failures.push(e.to_string()),
            }
            match nv.compile(name, &full, arch, Output::Cubin) {
                // An ELF image for the GPU.
                Ok(cubin) => {
                    assert_eq!(
                        &cubin[..4],
                        b"\x7fELF",
                        "{name}: sm_{arch} cubin is not ELF"
                    );
                    println!("{name}: sm_{arch} cubin, {} bytes", cubin.len());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.is_empty() {
            for k in KERNEL_NAMES {
                assert!(
                    entries.contains(&format!(".entry {k}(")),
                    "no kernel {k} in the compute_{arch} PTX"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A kernel that does not compile is an error carrying NVRTC's log, which names the file and line.
#[test]
fn a_broken_kernel_is_reported_with_its_line() {
    let Some(nv) = nvrtc() else { return };
    let src = full_source(
        "broken.cu",
        "extern \"C\" __global__ void k(float* x) {\n  x[0] = undefined_name;\n}\n",
    );
    let err = nv
        .compile("broken.cu", &src, 90, Output::Ptx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.cu(2)"), "{err}");
    assert!(err.contains("undefined_name"), "{err}");
}
