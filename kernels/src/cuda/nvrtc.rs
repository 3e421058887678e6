//! NVRTC, the CUDA run-time compiler, opened by path when first needed: the kernels in `kernels/cuda/*.cu` are
//! compiled for the GPU found (a cubin for its `sm_XY`), so a build needs no CUDA toolkit and the binary carries
//! no GPU code.
//!
//! cudarc binds NVRTC too, but finds it only by library name through the loader's search path, fixed when the
//! process starts; NVRTC often lives in a Python wheel (`nvidia-cuda-nvrtc-cu12`) or a toolkit folder that is not
//! on that path, so this module opens it by path ([`Nvrtc::locate`]) and binds the ten entry points ossify uses.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::CudaError;

type Program = *mut c_void;

/// The entry points ossify calls (nvrtc.h); the signatures are NVRTC's since CUDA 11.
struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Program) -> c_int,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
}

/// An opened NVRTC library.
pub struct Nvrtc {
    api: Api,
    /// Where it was found (a path, or the library name the loader resolved).
    pub origin: String,
    /// NVRTC's own version (major, minor).
    pub version: (i32, i32),
    // Keeps the library mapped while `api` points into it.
    _lib: libloading::Library,
}

/// What [`Nvrtc::compile`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// PTX text for a virtual architecture (`compute_XY`), which a driver compiles further.
    Ptx,
    /// Machine code for one real architecture (`sm_XY`), loaded as is.
    Cubin,
}

/// The environment variable that names NVRTC's library file, overriding the search.
pub const NVRTC_ENV: &str = "OSSIFY_NVRTC";

/// Library names the loader may resolve by itself (newest first).
const NAMES: [&str; 4] = [
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
];

/// Folders where toolkits put NVRTC, relative to a toolkit root.
const TOOLKIT_LIB_DIRS: [&str; 3] = ["lib64", "lib", "targets/x86_64-linux/lib"];

/// Where the pip wheels put NVRTC inside `site-packages`: `nvidia-cuda-nvrtc-cu12` (and -cu11), and the CUDA 13
/// wheels' shared `nvidia/cu13` folder.
const WHEEL_LIB_DIRS: [&str; 2] = ["nvidia/cuda_nvrtc/lib", "nvidia/cu13/lib"];

impl Nvrtc {
    /// The process-wide NVRTC, located and opened on first use.
    pub fn get() -> Result<&'static Nvrtc, CudaError> {
        static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
        NVRTC
            .get_or_init(|| Nvrtc::locate().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| CudaError::NoNvrtc(e.clone()))
    }

    /// Finds NVRTC: `$OSSIFY_NVRTC` if set (and then only there); else the loader's search path; else the CUDA
    /// toolkit folders (`$CUDA_HOME`, `$CUDA_PATH`, /usr/local/cuda); else the NVRTC wheels in the Python
    /// environments at `$VIRTUAL_ENV`, `$OSSIFY_VENV` and `.venv`.
    pub fn locate() -> Result<Nvrtc, CudaError> {
        if let Some(path) = std::env::var_os(NVRTC_ENV) {
            return Nvrtc::open(Path::new(&path));
        }
        let mut tried = Vec::new();
        for name in NAMES {
            match Nvrtc::open(Path::new(name)) {
                Ok(n) => return Ok(n),
                Err(_) => tried.push(name.to_string()),
            }
        }
        for path in search_paths() {
            match Nvrtc::open(&path) {
                Ok(n) => return Ok(n),
                Err(_) => tried.push(path.display().to_string()),
            }
        }
        Err(CudaError::NoNvrtc(format!(
            "tried {}; install the nvidia-cuda-nvrtc-cu12 wheel or a CUDA toolkit, or set {NVRTC_ENV} to \
             libnvrtc.so's path",
            tried.join(", ")
        )))
    }

    /// Opens the NVRTC library at `path` (a file, or a bare library name for the loader to resolve).
    pub fn open(path: &Path) -> Result<Nvrtc, CudaError> {
        let fail = |why: String| CudaError::NoNvrtc(format!("{}: {why}", path.display()));
        // SAFETY: loading NVRTC runs its initialisers, which only set up the library itself.
        let lib = unsafe { libloading::Library::new(path.as_os_str()) }
            .map_err(|e| fail(e.to_string()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is looked up by its nvrtc.h name and given that declaration's type.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| fail(format!("{}: {e}", $name)))?
            };
        }
        let api = Api {
            version: sym!("nvrtcVersion"),
            create: sym!("nvrtcCreateProgram"),
            compile: sym!("nvrtcCompileProgram"),
            destroy: sym!("nvrtcDestroyProgram"),
            log_size: sym!("nvrtcGetProgramLogSize"),
            log: sym!("nvrtcGetProgramLog"),
            ptx_size: sym!("nvrtcGetPTXSize"),
            ptx: sym!("nvrtcGetPTX"),
            cubin_size: sym!("nvrtcGetCUBINSize"),
            cubin: sym!("nvrtcGetCUBIN"),
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: nvrtcVersion writes two ints.
        let rc = unsafe { (api.version)(&mut major, &mut minor) };
        if rc != 0 {
            return Err(fail(format!("nvrtcVersion failed with code {rc}")));
        }
        Ok(Nvrtc {
            api,
            origin: path.display().to_string(),
            version: (major, minor),
            _lib: lib,
        })
    }

    /// Compiles one CUDA source for `arch` (a compute capability as `90` for 9.0): PTX for `compute_90` or a
    /// cubin for `sm_90`. Compile errors carry NVRTC's log.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        arch: u32,
        output: Output,
    ) -> Result<Vec<u8>, CudaError> {
        let arch_flag = match output {
            Output::Ptx => format!("--gpu-architecture=compute_{arch}"),
            Output::Cubin => format!("--gpu-architecture=sm_{arch}"),
        };
        let err = |log: String| CudaError::Compile {
            name: name.to_string(),
            arch: arch_flag.clone(),
            log,
        };
        let src = CString::new(source).map_err(|_| err("source holds a NUL byte".into()))?;
        let cname = CString::new(name).map_err(|_| err("name holds a NUL byte".into()))?;
        // No fast-math: the kernels must round as the CPU reference does (IEEE division and square root).
        let options: Vec<CString> = [arch_flag.as_str(), "--std=c++17", "--fmad=true"]
            .iter()
            .map(|o| CString::new(*o).map_err(|_| err("bad option".into())))
            .collect::<Result<_, _>>()?;
        let opt_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: the strings outlive the call; no headers are passed.
        let rc = unsafe {
            (self.api.create)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(err(format!("nvrtcCreateProgram failed with code {rc}")));
        }
        let guard = ProgramGuard {
            api: &self.api,
            prog,
        };
        // SAFETY: `prog` is a live program; the option pointers outlive the call.
        let rc =
            unsafe { (self.api.compile)(guard.prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr()) };
        if rc != 0 {
            return Err(err(self.log(guard.prog)));
        }
        let (size_fn, get_fn) = match output {
            Output::Ptx => (self.api.ptx_size, self.api.ptx),
            Output::Cubin => (self.api.cubin_size, self.api.cubin),
        };
        let mut size = 0usize;
        // SAFETY: writes one usize.
        let rc = unsafe { size_fn(guard.prog, &mut size) };
        if rc != 0 || size == 0 {
            return Err(err(format!("no {output:?} produced (code {rc})")));
        }
        let mut out = vec![0u8; size];
        // SAFETY: `out` holds the `size` bytes NVRTC said it writes.
        let rc = unsafe { get_fn(guard.prog, out.as_mut_ptr().cast()) };
        if rc != 0 {
            return Err(err(format!("reading the {output:?} failed (code {rc})")));
        }
        Ok(out)
    }

    fn log(&self, prog: Program) -> String {
        let mut size = 0usize;
        // SAFETY: writes one usize.
        if unsafe { (self.api.log_size)(prog, &mut size) } != 0 || size == 0 {
            return "compilation failed (no log)".into();
        }
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` holds the `size` bytes (NUL included) NVRTC said it writes.
        if unsafe { (self.api.log)(prog, buf.as_mut_ptr().cast()) } != 0 {
            return "compilation failed (log unreadable)".into();
        }
        CStr::from_bytes_until_nul(&buf)
            .map(|c| c.to_string_lossy().trim().to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(&buf).into_owned())
    }
}

struct ProgramGuard<'a> {
    api: &'a Api,
    prog: Program,
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `prog` was created by nvrtcCreateProgram and is destroyed once.
        unsafe { (self.api.destroy)(&mut self.prog) };
    }
}

/// Candidate library files outside the loader's search path, in the order [`Nvrtc::locate`] tries them.
fn search_paths() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .collect();
    roots.push(PathBuf::from("/usr/local/cuda"));
    let mut dirs: Vec<PathBuf> = roots
        .iter()
        .flat_map(|r| TOOLKIT_LIB_DIRS.iter().map(move |d| r.join(d)))
        .collect();
    let mut venvs: Vec<PathBuf> = ["VIRTUAL_ENV", "OSSIFY_VENV"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .collect();
    venvs.push(PathBuf::from(".venv"));
    for venv in venvs {
        // <venv>/lib/python3.X/site-packages/<wheel dir>
        let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
            continue;
        };
        for e in entries.flatten() {
            let site = e.path().join("site-packages");
            dirs.extend(WHEEL_LIB_DIRS.iter().map(|d| site.join(d)));
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libnvrtc.so"))
            })
            .collect();
        // libnvrtc.so before libnvrtc.so.12 before libnvrtc.so.12.9.86: the shortest name is the link to use.
        libs.sort_by_key(|p| p.as_os_str().len());
        out.extend(libs);
    }
    out
}
