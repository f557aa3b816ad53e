//! The GPU backend's availability check. A GPU run needs the NVIDIA driver's `libcuda`; it is
//! looked for before anything touches CUDA, so its absence is a coded error, never a crash.
//! The GPU runtime itself (loading an artifact's PTX and running the solve on the device) is not
//! part of this build yet: with a driver present, [`unavailable`] says so.

use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;

pub const NO_DRIVER: &str = "E0380";
pub const NOT_IN_BUILD: &str = "E0381";

/// Catalogue entries of GPU backend errors (E0380–E0389).
pub const GPU_CODES: &[CodeInfo] = &[
    CodeInfo {
        code: NO_DRIVER,
        title: "no CUDA driver found",
        explanation: "`--backend gpu` needs the NVIDIA driver's library `libcuda.so.1` (installed with the NVIDIA driver, not with the CUDA toolkit), and none was found on the library search path. Run on the machine with the GPU, or use `--backend cpu`.",
    },
    CodeInfo {
        code: NOT_IN_BUILD,
        title: "GPU runtime not available in this build",
        explanation: "The CUDA driver was found, but this optc cannot yet run models on the GPU: the GPU runtime (loading an artifact's PTX kernels and solving on the device) is not implemented. Use `--backend cpu`.",
    },
];

/// Names under which the driver library is looked for, most specific first.
const DRIVER_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    DRIVER_NAMES.iter().any(|name| {
        // SAFETY: loading the NVIDIA driver library runs only its own initializers; nothing is
        // called from it and it is unloaded when the handle drops.
        unsafe { libloading::Library::new(name) }.is_ok()
    })
}

/// Why models cannot run on the GPU with this optc on this machine: no driver, or (with one) no
/// GPU runtime in this build.
pub fn unavailable() -> Diagnostic {
    if !driver_present() {
        return Diagnostic::error(
            NO_DRIVER,
            "no CUDA driver found (libcuda.so.1 is not on the library search path)",
        )
        .with_hint(
            "run on a machine with an NVIDIA GPU and its driver installed, or use `--backend cpu`",
        );
    }
    Diagnostic::error(
        NOT_IN_BUILD,
        "a CUDA driver is present, but this optc cannot run models on the GPU yet: the GPU runtime is not implemented",
    )
    .with_hint("use `--backend cpu`")
}
