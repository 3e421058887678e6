//! The one SIMD decision of the whole program: which x86 instruction-set extensions the fast paths of
//! `ossify-formats` and `ossify-kernels` may use, detected once per process.
//!
//! `OSSIFY_SIMD` caps it: `scalar` (no SIMD at all), `avx2` (AVX2 + FMA, and AVX-VNNI where the CPU has it),
//! `avx512` (the default: everything the CPU has). `OSSIFY_NO_SIMD` (any value) is the same as `scalar`. An
//! unknown value caps nothing. Tests do not go through this variable: they select each implementation the CPU
//! supports explicitly (see `ossify_kernels::cpu::Isa::available`).

use std::sync::OnceLock;

/// What the CPU offers the fast paths, after the `OSSIFY_SIMD` cap. Built only by [`cpu_features`], so a value
/// that claims a feature is proof that the CPU has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    avx2: bool,
    avx_vnni: bool,
    avx512: bool,
    avx512_bf16: bool,
}

impl CpuFeatures {
    /// AVX2, FMA and F16C (every AVX2 CPU has F16C: Haswell, Zen and later).
    pub fn avx2(&self) -> bool {
        self.avx2
    }

    /// AVX-VNNI (`vpdpbusd` with a VEX encoding, 256-bit), with [`CpuFeatures::avx2`].
    pub fn avx_vnni(&self) -> bool {
        self.avx_vnni
    }

    /// AVX-512 F, BW, VL, DQ and VNNI together (Ice Lake, Zen 4 and later), with [`CpuFeatures::avx2`]: the set
    /// the 512-bit kernels are written for. CPUs with AVX-512 but without VNNI (Skylake-X) use the AVX2 paths.
    pub fn avx512(&self) -> bool {
        self.avx512
    }

    /// AVX-512 BF16 (`vdpbf16ps`), with [`CpuFeatures::avx512`].
    pub fn avx512_bf16(&self) -> bool {
        self.avx512_bf16
    }

    /// The same CPU with everything above AVX2 turned off (for tests that run each implementation).
    pub fn capped_to_avx2(self) -> CpuFeatures {
        CpuFeatures {
            avx512: false,
            avx512_bf16: false,
            ..self
        }
    }

    /// The same CPU with no SIMD at all.
    pub fn scalar() -> CpuFeatures {
        CpuFeatures::default()
    }
}

/// The features the fast paths use in this process: detected on first call, capped by `OSSIFY_SIMD`.
pub fn cpu_features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        let cap = if std::env::var_os("OSSIFY_NO_SIMD").is_some() {
            Some("scalar".to_owned())
        } else {
            std::env::var("OSSIFY_SIMD").ok()
        };
        let all = detected();
        match cap.as_deref() {
            Some("scalar") => CpuFeatures::scalar(),
            Some("avx2") => all.capped_to_avx2(),
            _ => all,
        }
    })
}

/// Every feature this CPU has, ignoring `OSSIFY_SIMD`: what tests iterate over.
pub fn detected() -> CpuFeatures {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512 = avx2
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512vl")
            && has!("avx512dq")
            && has!("avx512vnni");
        CpuFeatures {
            avx2,
            avx_vnni: avx2 && has!("avxvnni"),
            avx512,
            avx512_bf16: avx512 && has!("avx512bf16"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    CpuFeatures::scalar()
}
