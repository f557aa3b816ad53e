//! The `.optx` artifact: a model compiled on one machine (`optc build`) and run on another
//! (`optc run FILE.optx`), for every target (`cpu`, `gpu`).
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `OPTX\r\n\x1a\n` (a text-mode transfer or a truncation shows) |
//! | 4 | format version (u32, [`FORMAT_VERSION`]) |
//! | 8 | payload length in bytes (u64) |
//! | length | payload: the [`Artifact`] as JSON |
//! | 8 | FNV-1a 64 checksum of the payload (u64) |
//!
//! Reading checks each part in this order and returns a coded [`ArtifactError`]; it never panics,
//! whatever the bytes. The payload holds the IR after the front end, so everything after it
//! (bindings, derivatives, simplification, staging, native code, solve) runs where the artifact is
//! run; an artifact is tied to the optc version that wrote it.

use crate::gpu::plan::GpuPlan;
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::Program;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The first bytes of every artifact.
pub const MAGIC: [u8; 8] = *b"OPTX\r\n\x1a\n";
/// The container and payload format this optc writes and reads.
pub const FORMAT_VERSION: u32 = 8;
/// The optc version recorded in artifacts written by this build.
pub const OPTC_VERSION: &str = env!("CARGO_PKG_VERSION");

const HEADER_LEN: usize = 8 + 4 + 8;
const CHECKSUM_LEN: usize = 8;

/// The machine an artifact was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Cpu,
    Gpu,
}

impl Target {
    /// The name `optc build --target` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Gpu => "gpu",
        }
    }
}

/// One compiled GPU kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    pub name: String,
    pub ptx: String,
}

/// The payload of an `.optx` file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub optc_version: String,
    pub target: Target,
    /// The source file's name as given to `optc build` (for messages).
    pub source_name: String,
    /// The source file's directory: `load("...")` paths are relative to it.
    pub source_dir: String,
    /// The IR after the front end.
    pub program: Program,
    /// Dimension sizes fixed at build time (`--dims`).
    pub dims: Vec<(String, u64)>,
    /// `gpu` target: the PTX module of each kernel of [`Artifact::gpu`]'s launches.
    pub kernels: Vec<Kernel>,
    /// `gpu` target: the staged plan of the objective and gradient at `dims` (since version 2;
    /// with its element type, `precision`, since version 3).
    pub gpu: Option<GpuPlan>,
}

/// Why a file is not a usable artifact.
#[derive(Clone, Debug, PartialEq)]
pub enum ArtifactError {
    /// The file does not start with [`MAGIC`].
    NotArtifact,
    /// The format version is not [`FORMAT_VERSION`].
    UnsupportedVersion(u32),
    /// Length, checksum, JSON or IR do not hold together.
    Corrupt(String),
    /// Written by another optc version.
    OtherOptc(String),
    /// The file cannot be read or written.
    Io(String),
}

pub const NOT_ARTIFACT: &str = "E0370";
pub const UNSUPPORTED_VERSION: &str = "E0371";
pub const CORRUPT: &str = "E0372";
pub const OTHER_OPTC: &str = "E0373";
pub const IO: &str = "E0374";

/// Catalogue entries of artifact errors (E0370–E0379).
pub const ARTIFACT_CODES: &[CodeInfo] = &[
    CodeInfo {
        code: NOT_ARTIFACT,
        title: "not an optc artifact",
        explanation: "The file does not start with the `.optx` magic bytes `OPTX\\r\\n\\x1a\\n`. Artifacts are written by `optc build FILE.opt -o FILE.optx`; copy them as binary files (a text-mode transfer changes the line endings in the magic).",
    },
    CodeInfo {
        code: UNSUPPORTED_VERSION,
        title: "unsupported artifact format version",
        explanation: "The artifact's format version differs from the one this optc reads. Rebuild the artifact with this optc (`optc build`), or run it with the optc that built it.",
    },
    CodeInfo {
        code: CORRUPT,
        title: "truncated or corrupt artifact",
        explanation: "The artifact's length, checksum or content does not hold together: the file was cut short or changed after `optc build` wrote it. Copy it again or rebuild it.",
    },
    CodeInfo {
        code: OTHER_OPTC,
        title: "artifact built by another optc version",
        explanation: "An artifact holds optc's internal representation, which changes between versions: run it with the optc version that built it, or rebuild it with this one.",
    },
    CodeInfo {
        code: IO,
        title: "artifact cannot be read or written",
        explanation: "The artifact file could not be read or written (a missing directory, permissions, a full disk).",
    },
];

impl ArtifactError {
    pub fn code(&self) -> &'static str {
        match self {
            ArtifactError::NotArtifact => NOT_ARTIFACT,
            ArtifactError::UnsupportedVersion(_) => UNSUPPORTED_VERSION,
            ArtifactError::Corrupt(_) => CORRUPT,
            ArtifactError::OtherOptc(_) => OTHER_OPTC,
            ArtifactError::Io(_) => IO,
        }
    }
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::NotArtifact => write!(f, "not an optc artifact (no .optx magic bytes)"),
            ArtifactError::UnsupportedVersion(v) => write!(
                f,
                "artifact format version {v} is not supported: this optc reads version {FORMAT_VERSION}"
            ),
            ArtifactError::Corrupt(why) => write!(f, "truncated or corrupt artifact: {why}"),
            ArtifactError::OtherOptc(v) => write!(
                f,
                "artifact built by optc {v}, but this is optc {OPTC_VERSION}"
            ),
            ArtifactError::Io(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ArtifactError {}

impl From<ArtifactError> for Diagnostic {
    fn from(e: ArtifactError) -> Diagnostic {
        let hint = match e {
            ArtifactError::UnsupportedVersion(_) | ArtifactError::OtherOptc(_) => {
                Some("rebuild it with `optc build FILE.opt -o FILE.optx` using this optc")
            }
            ArtifactError::Corrupt(_) => {
                Some("copy the artifact again as a binary file, or rebuild it")
            }
            ArtifactError::NotArtifact | ArtifactError::Io(_) => None,
        };
        let d = Diagnostic::error(e.code(), e.to_string());
        match hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}

/// Whether `bytes` start like an artifact (how `optc run` tells artifacts from sources).
pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Splits the text of `optc_mlir::ptx_text` (modules each introduced by a `// gpu.module @NAME`
/// line) into named kernels.
pub fn kernels_from_ptx(text: &str) -> Vec<Kernel> {
    let mut kernels: Vec<Kernel> = Vec::new();
    for line in text.split_inclusive('\n') {
        match line.trim_end().strip_prefix("// gpu.module @") {
            Some(name) => kernels.push(Kernel {
                name: name.to_string(),
                ptx: String::new(),
            }),
            None => {
                if let Some(k) = kernels.last_mut() {
                    k.ptx.push_str(line)
                }
            }
        }
    }
    kernels
}

/// FNV-1a, 64 bits.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bytes of an `.optx` file.
pub fn encode(artifact: &Artifact) -> Vec<u8> {
    let payload = serde_json::to_vec(artifact).expect("an artifact serializes to JSON");
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&checksum(&payload).to_le_bytes());
    bytes
}

/// Reads an artifact from the bytes of an `.optx` file.
pub fn decode(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
    let corrupt = |why: String| ArtifactError::Corrupt(why);
    if !is_artifact(bytes) {
        return Err(ArtifactError::NotArtifact);
    }
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(ArtifactError::UnsupportedVersion(version));
    }
    let length = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let expected = (HEADER_LEN + CHECKSUM_LEN) as u128 + u128::from(length);
    if bytes.len() as u128 != expected {
        return Err(corrupt(format!(
            "the header announces {expected} bytes, the file has {}",
            bytes.len()
        )));
    }
    let (payload, sum) = bytes[HEADER_LEN..].split_at(bytes.len() - HEADER_LEN - CHECKSUM_LEN);
    if checksum(payload) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err(corrupt("the checksum does not match the content".into()));
    }
    // The version is checked before the rest, whose form may differ between versions.
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| corrupt(format!("bad JSON: {e}")))?;
    match value.get("optc_version").and_then(|v| v.as_str()) {
        Some(v) if v == OPTC_VERSION => {}
        Some(v) => return Err(ArtifactError::OtherOptc(v.to_string())),
        None => return Err(corrupt("no optc version".into())),
    }
    let artifact: Artifact =
        serde_json::from_value(value).map_err(|e| corrupt(format!("bad content: {e}")))?;
    let mut programs = vec![&artifact.program];
    if let Some(plan) = &artifact.gpu {
        programs.extend([&plan.staged.derived, &plan.staged.function]);
    }
    for program in programs {
        let problems = optc_compiler::ir::verify(program);
        if let Some(first) = problems.first() {
            return Err(corrupt(format!("malformed IR: {first}")));
        }
        if !dims_are_declared(program) {
            return Err(corrupt(
                "malformed IR: a shape names an undeclared dimension".into(),
            ));
        }
    }
    if let Some(plan) = &artifact.gpu {
        plan.check()
            .map_err(|why| corrupt(format!("GPU plan: {why}")))?;
    }
    Ok(artifact)
}

/// Whether every dimension symbol in the program's shapes is declared (the verifier assumes it).
fn dims_are_declared(p: &Program) -> bool {
    let declared = |d: &optc_compiler::ir::Dim| d.sym.is_none_or(|s| (s.0 as usize) < p.dims.len());
    p.inputs.iter().all(|i| i.shape.iter().all(declared))
        && p.graph.nodes().all(|(_, n)| n.shape.iter().all(declared))
        && p.constraints
            .iter()
            .flat_map(|c| &c.ranges)
            .all(|r| declared(&r.start) && declared(&r.end))
}

/// Writes `artifact` to `path` (atomically: a temporary file, then a rename).
pub fn write(path: &Path, artifact: &Artifact) -> Result<(), ArtifactError> {
    let io = |e: std::io::Error| ArtifactError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension("optx.tmp");
    std::fs::write(&tmp, encode(artifact)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads the artifact at `path`.
pub fn read(path: &Path) -> Result<Artifact, ArtifactError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ArtifactError::Io(format!("cannot read {}: {e}", path.display())))?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        let text = "dims n\nvar x : real[n] = 0\nminimize sumsq(x - 1)\n";
        let compiled =
            optc_compiler::driver::compile("t.opt", text, optc_compiler::driver::Until::Ir)
                .expect("compiles");
        Artifact {
            optc_version: OPTC_VERSION.into(),
            target: Target::Cpu,
            source_name: "t.opt".into(),
            source_dir: ".".into(),
            program: compiled.program.expect("ir"),
            dims: vec![("n".into(), 3)],
            kernels: Vec::new(),
            gpu: None,
        }
    }

    #[test]
    fn round_trip_keeps_the_program() {
        let a = sample();
        let back = decode(&encode(&a)).expect("decodes");
        assert_eq!(
            optc_compiler::ir::print_program(&back.program),
            optc_compiler::ir::print_program(&a.program)
        );
        assert_eq!(back.dims, a.dims);
        assert_eq!(back.target, Target::Cpu);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_a_coded_error() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            let e = decode(&bytes[..len]).expect_err("truncated");
            let expected = if len < MAGIC.len() {
                NOT_ARTIFACT
            } else {
                CORRUPT
            };
            assert_eq!(e.code(), expected, "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x04;
            let e = decode(&flipped).expect_err("flipped");
            let expected = match i {
                0..8 => NOT_ARTIFACT,
                8..12 => UNSUPPORTED_VERSION,
                _ => CORRUPT,
            };
            assert_eq!(e.code(), expected, "bit flipped in byte {i}");
        }
    }

    #[test]
    fn version_and_optc_mismatches_say_which() {
        let mut bytes = encode(&sample());
        let other_version = FORMAT_VERSION + 1;
        bytes[8..12].copy_from_slice(&other_version.to_le_bytes());
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e, ArtifactError::UnsupportedVersion(other_version));
        assert!(e.to_string().contains(&format!("version {other_version}")));
        assert!(e
            .to_string()
            .contains(&format!("reads version {FORMAT_VERSION}")));

        let mut other = sample();
        other.optc_version = "0.0.0-other".into();
        let e = decode(&encode(&other)).unwrap_err();
        assert_eq!(e.code(), OTHER_OPTC);
        assert!(e.to_string().contains("0.0.0-other"));
    }

    #[test]
    fn a_valid_checksum_over_bad_content_is_corrupt() {
        for payload in [&b"not json"[..], b"{\"optc_version\": 3}", b"[]"] {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            bytes.extend_from_slice(payload);
            bytes.extend_from_slice(&checksum(payload).to_le_bytes());
            assert_eq!(decode(&bytes).unwrap_err().code(), CORRUPT);
        }
    }

    #[test]
    fn ptx_text_splits_into_named_kernels() {
        let text = "// gpu.module @k0\n.version 8.0\n.entry k0()\n// gpu.module @k1\n.entry k1()\n";
        assert_eq!(
            kernels_from_ptx(text),
            vec![
                Kernel {
                    name: "k0".into(),
                    ptx: ".version 8.0\n.entry k0()\n".into()
                },
                Kernel {
                    name: "k1".into(),
                    ptx: ".entry k1()\n".into()
                },
            ]
        );
    }

    #[test]
    fn an_undeclared_dimension_is_corrupt() {
        let mut a = sample();
        a.program.dims.clear();
        assert_eq!(decode(&encode(&a)).unwrap_err().code(), CORRUPT);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            proptest::prop_assert!(decode(&bytes).is_err());
            proptest::prop_assert!(decode(&tail).is_err());
        }
    }
}
