//! Data loading: `.npy` files (read and written by hand: format versions 1–3, little-endian
//! float, integer and bool dtypes, C or Fortran order), `.csv` files (numbers separated by commas, optional header,
//! quotes and a byte order mark dropped),
//! and [`bind_inputs`], which checks arrays against a program's declarations, binds the dimension
//! sizes and computes parameter defaults and variable initial values.
//!
//! Every problem is a [`DataError`] with its own code in E0300–E0349 that names the file, the array
//! and, for bad values, the first bad element (`X[3, 7]`).

use crate::interp::{self, Bindings, NoSubproblems, MAX_ELEMENTS};
use ndarray::{ArrayD, Dimension, IxDyn, ShapeBuilder};
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{DimId, ElemType, InputId, InputKind, Op, Program, Shape};
use std::fmt;
use std::io::Write;
use std::path::Path;

/// A data problem with its stable code (see [`DATA`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl DataError {
    fn new(code: &'static str, message: impl Into<String>) -> DataError {
        DataError {
            code,
            message: message.into(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> DataError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DataError {}

impl From<DataError> for Diagnostic {
    fn from(e: DataError) -> Diagnostic {
        let d = Diagnostic::error(e.code, e.message);
        match e.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}

pub const FILE_NOT_FOUND: &str = "E0300";
pub const UNREADABLE: &str = "E0301";
pub const NOT_NPY: &str = "E0302";
pub const UNSUPPORTED_DTYPE: &str = "E0303";
pub const WRONG_RANK: &str = "E0304";
pub const SHAPE_MISMATCH: &str = "E0305";
pub const DIM_CONFLICT: &str = "E0306";
pub const NON_FINITE: &str = "E0307";
pub const RAGGED_CSV: &str = "E0308";
pub const BAD_CSV_FIELD: &str = "E0309";
pub const WRONG_ELEM_TYPE: &str = "E0310";
pub const TOO_LARGE: &str = "E0311";
pub const UNBOUND_DIM: &str = "E0312";
pub const NPY_LENGTH: &str = "E0313";
pub const UNWRITABLE: &str = "E0314";
pub const UNKNOWN_FORMAT: &str = "E0315";
pub const EMPTY_CSV: &str = "E0316";
pub const MISSING_DATA: &str = "E0317";
pub const NOT_BINDABLE: &str = "E0318";

/// The catalogue entries of the data codes (for `optc explain`).
pub const DATA: &[CodeInfo] = &[
    CodeInfo {
        code: FILE_NOT_FOUND,
        title: "data file not found",
        explanation: "A data file named by `load(...)` or `--data` does not exist. Paths in `load` are relative to the .opt file.",
    },
    CodeInfo {
        code: UNREADABLE,
        title: "data file cannot be read",
        explanation: "The data file exists but could not be read (permissions, a directory, an I/O error).",
    },
    CodeInfo {
        code: NOT_NPY,
        title: "not an npy file",
        explanation: "The file does not start with the npy magic bytes `\\x93NUMPY`, or its header is malformed. Save arrays with `numpy.save`.",
    },
    CodeInfo {
        code: UNSUPPORTED_DTYPE,
        title: "unsupported npy dtype",
        explanation: "Supported dtypes are float64 `<f8`, float32 `<f4`, float16 `<f2`, signed integers `<i8`, `<i4`, `<i2`, `i1`, unsigned integers `<u8`, `<u4`, `<u2`, `u1` and bool `b1`, little-endian (uint64 values beyond 2^53 are rounded to the nearest float64). Convert others (complex, strings, objects, big-endian) with `arr.astype('<f8')`.",
    },
    CodeInfo {
        code: WRONG_RANK,
        title: "array has the wrong rank",
        explanation: "The number of axes of the array differs from the declaration (`real[n, d]` has rank 2). A one-column csv file is a vector only when the declaration has rank 1.",
    },
    CodeInfo {
        code: SHAPE_MISMATCH,
        title: "array shape differs from the declaration",
        explanation: "An axis of the array has a size that differs from the declared fixed size or from the size of the dimension symbol.",
    },
    CodeInfo {
        code: DIM_CONFLICT,
        title: "dimension bound to two sizes",
        explanation: "Two arrays (or an array and the command line) give the same dimension symbol different sizes.",
    },
    CodeInfo {
        code: NON_FINITE,
        title: "NaN or infinite value in data",
        explanation: "Data must be finite. The message names the first bad element.",
    },
    CodeInfo {
        code: RAGGED_CSV,
        title: "ragged csv row",
        explanation: "A csv row has a different number of fields than the first row.",
    },
    CodeInfo {
        code: BAD_CSV_FIELD,
        title: "unparsable csv field",
        explanation: "A csv field is not a number. Only the first line may be a header (all fields non-numeric).",
    },
    CodeInfo {
        code: WRONG_ELEM_TYPE,
        title: "value does not fit the element type",
        explanation: "`int` data must hold integers and `bool` data only 0 and 1.",
    },
    CodeInfo {
        code: TOO_LARGE,
        title: "array too large",
        explanation: "An array would have more than 2^34 elements, or at the bound sizes something would need more memory than the machine has available: the variables (each with its gradient and a step) and parameters, one value of the model (an intermediate such as `eye(n) @ x`), or `bench`'s random data. It is checked before allocating.",
    },
    CodeInfo {
        code: UNBOUND_DIM,
        title: "dimension has no size",
        explanation: "No array determines the size of this dimension symbol and it has no default. Give it a default (`dims n = 10`) or bind it with `--dim n=10`.",
    },
    CodeInfo {
        code: NPY_LENGTH,
        title: "npy data length mismatch",
        explanation: "The npy file holds fewer or more bytes of data than its header's shape and dtype need (a truncated file?).",
    },
    CodeInfo {
        code: UNWRITABLE,
        title: "cannot write file",
        explanation: "An output file (or its temporary sibling) could not be written or renamed.",
    },
    CodeInfo {
        code: UNKNOWN_FORMAT,
        title: "unknown data file format",
        explanation: "Data files must end in `.npy` or `.csv`.",
    },
    CodeInfo {
        code: EMPTY_CSV,
        title: "empty csv file",
        explanation: "The csv file has no data rows.",
    },
    CodeInfo {
        code: MISSING_DATA,
        title: "data array missing",
        explanation: "A `data` declaration without `= load(...)` must be bound on the command line with `--data NAME=path`.",
    },
    CodeInfo {
        code: NOT_BINDABLE,
        title: "array bound to a name that takes none",
        explanation: "Only data, parameters and variables can be given arrays.",
    },
];

/// The element types an npy file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F8,
    F4,
    F2,
    I8,
    I4,
    I2,
    I1,
    U8,
    U4,
    U2,
    U1,
    B1,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F8 | Dtype::I8 | Dtype::U8 => 8,
            Dtype::F4 | Dtype::I4 | Dtype::U4 => 4,
            Dtype::F2 | Dtype::I2 | Dtype::U2 => 2,
            Dtype::I1 | Dtype::U1 | Dtype::B1 => 1,
        }
    }

    /// The value of one little-endian element (`b` holds exactly `self.size()` bytes).
    fn decode(self, b: &[u8]) -> f64 {
        fn le<const N: usize>(b: &[u8]) -> [u8; N] {
            let mut out = [0u8; N];
            out.copy_from_slice(&b[..N]);
            out
        }
        match self {
            Dtype::F8 => f64::from_le_bytes(le(b)),
            Dtype::F4 => f32::from_le_bytes(le(b)) as f64,
            Dtype::F2 => half_to_f64(u16::from_le_bytes(le(b))),
            Dtype::I8 => i64::from_le_bytes(le(b)) as f64,
            Dtype::I4 => i32::from_le_bytes(le(b)) as f64,
            Dtype::I2 => i16::from_le_bytes(le(b)) as f64,
            Dtype::I1 => b[0] as i8 as f64,
            Dtype::U8 => u64::from_le_bytes(le(b)) as f64,
            Dtype::U4 => u32::from_le_bytes(le(b)) as f64,
            Dtype::U2 => u16::from_le_bytes(le(b)) as f64,
            Dtype::U1 => b[0] as f64,
            Dtype::B1 => f64::from(u8::from(b[0] != 0)),
        }
    }
}

/// An IEEE 754 half-precision number (numpy's float16) as f64.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::new(
                FILE_NOT_FOUND,
                format!("data file `{}` not found", path.display()),
            )
        } else {
            DataError::new(UNREADABLE, format!("cannot read `{}`: {e}", path.display()))
        }
    })
}

/// Reads an array from a `.npy` or `.csv` file (by extension). `declared_rank` decides how a csv
/// file's rows and columns are read (see [`parse_csv`]).
pub fn load(path: &Path, declared_rank: usize) -> Result<ArrayD<f64>, DataError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("npy") => read_npy(path).map(|(a, _)| a),
        Some(e) if e.eq_ignore_ascii_case("csv") => read_csv(path, declared_rank),
        _ => Err(DataError::new(
            UNKNOWN_FORMAT,
            format!("`{}` is neither a .npy nor a .csv file", path.display()),
        )),
    }
}

/// Reads a `.npy` file; returns the array (C order) and the file's dtype.
pub fn read_npy(path: &Path) -> Result<(ArrayD<f64>, Dtype), DataError> {
    parse_npy(&read_bytes(path)?, &path.display().to_string())
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Parses the bytes of an npy file; `source` names it in messages.
pub fn parse_npy(bytes: &[u8], source: &str) -> Result<(ArrayD<f64>, Dtype), DataError> {
    let not_npy = |why: &str| {
        DataError::new(NOT_NPY, format!("`{source}` is not an npy file: {why}"))
            .with_hint("save arrays with numpy.save")
    };
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(not_npy("it does not start with the npy magic bytes"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(not_npy(&format!("unknown format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| not_npy("its header is truncated or not text"))?;
    let fields = parse_header(header).map_err(|why| not_npy(&why))?;
    let dtype = parse_dtype(&fields.descr).map_err(|why| {
        DataError::new(
            UNSUPPORTED_DTYPE,
            format!("`{source}` has dtype `{}`: {why}", fields.descr),
        )
        .with_hint("convert with arr.astype('<f8') before saving")
    })?;
    let count = fields
        .shape
        .iter()
        .try_fold(1u128, |n, &s| n.checked_mul(s as u128))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            DataError::new(
                TOO_LARGE,
                format!(
                    "`{source}` has shape {:?}: more than 2^34 elements",
                    fields.shape
                ),
            )
        })? as usize;
    let body = &bytes[data_start..];
    if body.len() != count * dtype.size() {
        return Err(DataError::new(
            NPY_LENGTH,
            format!(
                "`{source}` holds {} bytes of data but shape {:?} of `{}` needs {}",
                body.len(),
                fields.shape,
                fields.descr,
                count * dtype.size()
            ),
        ));
    }
    let values: Vec<f64> = body
        .chunks_exact(dtype.size())
        .map(|b| dtype.decode(b))
        .collect();
    let shape = IxDyn(&fields.shape);
    let array = if fields.fortran_order {
        ArrayD::from_shape_vec(shape.f(), values).map(|a| a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(shape, values)
    }
    .map_err(|e| not_npy(&e.to_string()))?;
    Ok((array, dtype))
}

struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// The tokens of an npy header (a Python dict literal).
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Punct(char),
    Str(String),
    Int(usize),
    Bool(bool),
}

fn tokenize(header: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = header.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' | '}' | '(' | ')' | ':' | ',' => {
                tokens.push(Token::Punct(c));
                chars.next();
            }
            '\'' | '"' => {
                chars.next();
                let s: String = chars.by_ref().take_while(|&x| x != c).collect();
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                // Python 2 wrote long integers as `3L`.
                if chars.peek() == Some(&'L') {
                    chars.next();
                }
                tokens.push(Token::Int(
                    n.parse().map_err(|_| format!("bad size `{n}` in header"))?,
                ));
            }
            c if c.is_alphabetic() => {
                let mut word = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_alphanumeric()) {
                    word.push(d);
                    chars.next();
                }
                match word.as_str() {
                    "True" => tokens.push(Token::Bool(true)),
                    "False" => tokens.push(Token::Bool(false)),
                    _ => return Err(format!("unexpected `{word}` in header")),
                }
            }
            _ => return Err(format!("unexpected `{c}` in header")),
        }
    }
    Ok(tokens)
}

fn parse_header(header: &str) -> Result<NpyHeader, String> {
    let tokens = tokenize(header)?;
    let mut it = tokens.into_iter().peekable();
    let expect =
        |want: char, it: &mut std::iter::Peekable<std::vec::IntoIter<Token>>| match it.next() {
            Some(Token::Punct(c)) if c == want => Ok(()),
            other => Err(format!("expected `{want}` in header, found {other:?}")),
        };
    expect('{', &mut it)?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        let key = match it.next() {
            Some(Token::Punct('}')) => break,
            Some(Token::Str(k)) => k,
            other => return Err(format!("expected a key in header, found {other:?}")),
        };
        expect(':', &mut it)?;
        match (key.as_str(), it.next()) {
            ("descr", Some(Token::Str(d))) => descr = Some(d),
            ("fortran_order", Some(Token::Bool(b))) => fortran_order = Some(b),
            ("shape", Some(Token::Punct('('))) => {
                let mut dims = Vec::new();
                loop {
                    match it.next() {
                        Some(Token::Punct(')')) => break,
                        Some(Token::Int(n)) => dims.push(n),
                        Some(Token::Punct(',')) if !dims.is_empty() => {}
                        other => return Err(format!("bad shape in header near {other:?}")),
                    }
                }
                shape = Some(dims);
            }
            (k, v) => return Err(format!("unexpected entry `{k}`: {v:?}")),
        }
        match it.next() {
            Some(Token::Punct(',')) => {}
            Some(Token::Punct('}')) => break,
            other => return Err(format!("expected `,` or `}}` in header, found {other:?}")),
        }
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err("header lacks descr, fortran_order or shape".into()),
    }
}

fn parse_dtype(descr: &str) -> Result<Dtype, String> {
    let (order, kind) = descr.split_at(descr.len().min(1));
    let dtype = match kind {
        "f8" => Dtype::F8,
        "f4" => Dtype::F4,
        "f2" => Dtype::F2,
        "i8" => Dtype::I8,
        "i4" => Dtype::I4,
        "i2" => Dtype::I2,
        "i1" => Dtype::I1,
        "u8" => Dtype::U8,
        "u4" => Dtype::U4,
        "u2" => Dtype::U2,
        "u1" => Dtype::U1,
        "b1" => Dtype::B1,
        _ => return Err("not a supported dtype".into()),
    };
    match order {
        "<" => Ok(dtype),
        "|" if dtype.size() == 1 => Ok(dtype),
        ">" if dtype.size() == 1 => Ok(dtype),
        ">" => Err("big-endian data is not supported".into()),
        _ => Err(format!("byte order `{order}` is not supported")),
    }
}

/// The bytes of an npy file (format 1.0, `<f8`, C order) holding `array`.
pub fn npy_bytes(array: &ArrayD<f64>) -> Vec<u8> {
    let dims: Vec<String> = array.shape().iter().map(|s| s.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * array.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in array.iter() {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes `array` as an npy file atomically: to a temporary file in the same directory, which is
/// then renamed over `path`, so readers never see a partial file.
pub fn write_npy(path: &Path, array: &ArrayD<f64>) -> Result<(), DataError> {
    let fail = |e: std::io::Error| {
        DataError::new(
            UNWRITABLE,
            format!("cannot write `{}`: {e}", path.display()),
        )
    };
    let name = path.file_name().ok_or_else(|| {
        DataError::new(
            UNWRITABLE,
            format!("`{}` is not a file name", path.display()),
        )
    })?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&npy_bytes(array))?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Best effort: the temporary file may not exist if creating it failed.
            let _ = std::fs::remove_file(&tmp);
            Err(fail(e))
        }
    }
}

/// Reads a `.csv` file; see [`parse_csv`].
pub fn read_csv(path: &Path, declared_rank: usize) -> Result<ArrayD<f64>, DataError> {
    let bytes = read_bytes(path)?;
    let source = path.display().to_string();
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::new(UNREADABLE, format!("`{source}` is not UTF-8 text")))?;
    parse_csv(&text, &source, declared_rank)
}

/// Why `field`, not a number itself, looks like numbers written otherwise: numbers separated by
/// `;`, tabs or spaces (`numpy.savetxt`'s default), or a number with a decimal comma (`"1,5"`).
/// The hint to give, if so.
fn numbers_written_otherwise(field: &str) -> Option<String> {
    let numbers =
        |parts: Vec<&str>| parts.len() > 1 && parts.iter().all(|p| p.parse::<f64>().is_ok());
    let separator = [(';', "`;`"), ('\t', "tabs"), (' ', "spaces")]
        .into_iter()
        .find(|&(sep, _)| {
            let parts = match sep {
                ' ' => field.split_whitespace().collect(),
                _ => field.split(sep).map(str::trim).collect(),
            };
            field.contains(sep) && numbers(parts)
        });
    if let Some((_, name)) = separator {
        return Some(format!(
            "fields are separated by commas, not {name}: save the file with `,` (e.g. `numpy.savetxt(path, X, delimiter=\",\")`)"
        ));
    }
    let decimal_comma = field.contains(',') && field.replace(',', ".").parse::<f64>().is_ok();
    decimal_comma.then(|| {
        format!(
            "`{field}` has a decimal comma: write the number as `{}`",
            field.replace(',', ".")
        )
    })
}

/// The fields of a csv line: split at commas outside double quotes (`"1,5"` is one field).
fn split_fields(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

/// A field without its surrounding whitespace and double quotes (`"1.5"` is 1.5).
fn unquoted(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map_or(field, str::trim)
}

/// Parses numbers separated by commas, one row per line (a UTF-8 byte order mark and double
/// quotes around fields are dropped; a comma inside quotes does not separate). Blank lines are
/// skipped; the first line is a header when none of its fields is a number (nor numbers written
/// otherwise: split by `;`, tabs or spaces, or with a decimal comma, which is an error). Rows
/// must have equal lengths. The table is a matrix for `declared_rank` 2, a vector for rank 1
/// when it has one column (or one row), and a scalar for rank 0 when it has one field.
pub fn parse_csv(text: &str, source: &str, declared_rank: usize) -> Result<ArrayD<f64>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut first_line = true;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = split_fields(line).into_iter().map(unquoted).collect();
        // `1e400` parses as inf: a number too large, not an infinity written as such.
        let overflows = |f: &str| {
            f.parse::<f64>().is_ok_and(f64::is_infinite) && !f.to_ascii_lowercase().contains("inf")
        };
        let parsed: Vec<Option<f64>> = fields
            .iter()
            .map(|f| f.parse().ok().filter(|_| !overflows(f)))
            .collect();
        let header = fields.iter().all(|f| f.parse::<f64>().is_err())
            && !fields
                .iter()
                .any(|f| numbers_written_otherwise(f).is_some());
        if std::mem::replace(&mut first_line, false) && header {
            continue;
        }
        if let Some(first) = rows.first() {
            if fields.len() != first.len() {
                return Err(DataError::new(
                    RAGGED_CSV,
                    format!(
                        "`{source}` line {line_no} has {} fields but the first row has {}",
                        fields.len(),
                        first.len()
                    ),
                ));
            }
        }
        let row = parsed
            .iter()
            .enumerate()
            .map(|(col, x)| {
                x.ok_or_else(|| {
                    let what = match overflows(fields[col]) {
                        true => "is beyond the range of float64",
                        false => "is not a number",
                    };
                    let error = DataError::new(
                        BAD_CSV_FIELD,
                        format!(
                            "`{source}` line {line_no}, column {}: `{}` {what}",
                            col + 1,
                            fields[col]
                        ),
                    );
                    match numbers_written_otherwise(fields[col]) {
                        Some(hint) => error.with_hint(hint),
                        None => error,
                    }
                })
            })
            .collect::<Result<Vec<f64>, _>>()?;
        rows.push(row);
    }
    let (n_rows, n_cols) = match rows.first() {
        Some(r) => (rows.len(), r.len()),
        None => {
            return Err(DataError::new(
                EMPTY_CSV,
                format!("`{source}` has no data rows"),
            ))
        }
    };
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    let shape: Vec<usize> = match declared_rank {
        2 => vec![n_rows, n_cols],
        1 if n_cols == 1 || n_rows == 1 => vec![n_rows * n_cols],
        0 if n_rows == 1 && n_cols == 1 => vec![],
        _ => {
            return Err(DataError::new(
                WRONG_RANK,
                format!(
                    "`{source}` is a {n_rows}×{n_cols} table, which cannot be read as an array of rank {declared_rank}"
                ),
            )
            .with_hint("a csv file holds a matrix, a vector (one row or one column) or a scalar"))
        }
    };
    ArrayD::from_shape_vec(IxDyn(&shape), flat)
        .map_err(|e| DataError::new(RAGGED_CSV, format!("`{source}`: {e}")))
}

/// `X[3, 7]`: an element's name in messages.
fn element_name(array: &str, index: &[usize]) -> String {
    if index.is_empty() {
        return array.to_string();
    }
    let parts: Vec<String> = index.iter().map(|i| i.to_string()).collect();
    format!("{array}[{}]", parts.join(", "))
}

/// The first element that is not finite, as an error naming `name` from `source`.
pub fn check_finite(array: &ArrayD<f64>, name: &str, source: &str) -> Result<(), DataError> {
    match array.indexed_iter().find(|(_, x)| !x.is_finite()) {
        None => Ok(()),
        Some((index, x)) => Err(DataError::new(
            NON_FINITE,
            format!(
                "`{name}` ({source}) has {x} at {}",
                element_name(name, index.slice())
            ),
        )),
    }
}

/// The first element that does not fit `elem` (`int` must be integral, `bool` 0 or 1).
pub fn check_elem_type(
    array: &ArrayD<f64>,
    elem: ElemType,
    name: &str,
    source: &str,
) -> Result<(), DataError> {
    let (fits, what): (fn(f64) -> bool, &str) = match elem {
        ElemType::Real => return Ok(()),
        ElemType::Int => (|x| x.fract() == 0.0, "an integer"),
        ElemType::Bool => (|x| x == 0.0 || x == 1.0, "0 or 1"),
    };
    match array.indexed_iter().find(|(_, &x)| !fits(x)) {
        None => Ok(()),
        Some((index, x)) => Err(DataError::new(
            WRONG_ELEM_TYPE,
            format!(
                "`{name}` ({source}) has {x} at {}, but its elements must be {what}",
                element_name(name, index.slice())
            ),
        )),
    }
}

/// The memory available to new allocations, in bytes, where the system says (Linux's
/// `MemAvailable`).
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// E0311 when `bytes` exceed the memory available (where the system says): "`what` X GB at
/// these sizes, but Y GB of memory are available".
pub fn fits_in_memory(bytes: u128, what: &str) -> Result<(), DataError> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if bytes <= available as u128 {
        return Ok(());
    }
    let gb = |b: u128| b as f64 / 1e9;
    Err(DataError::new(
        TOO_LARGE,
        format!(
            "{what} {:.1} GB at these sizes, but {:.1} GB of memory are available",
            gb(bytes),
            gb(available as u128)
        ),
    )
    .with_hint("check the dimension sizes (`--dims`, the data's shapes)"))
}

/// A dimension size and where it came from (for conflict messages).
type DimBinding = Option<(u64, String)>;

/// Binds `arrays` (each with a description of where it came from, e.g. its file) to the inputs of
/// `program`: checks ranks, fixed sizes, finiteness and element types; unifies the dimension sizes
/// (`dim_overrides` first, each with where it came from, then the arrays, then the declared
/// defaults); refuses shapes of more than 2³⁴ elements; computes parameter defaults and variable
/// initial values that were not given, broadcast to their declared shapes. Inner variables of
/// `argmin` stay unbound.
pub fn bind_inputs(
    program: &Program,
    arrays: Vec<(InputId, ArrayD<f64>, String)>,
    dim_overrides: &[(DimId, u64, &str)],
) -> Result<Bindings, Vec<Diagnostic>> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut dims: Vec<DimBinding> = vec![None; program.dims.len()];
    for &(d, size, origin) in dim_overrides {
        if let Err(e) = bind_dim(program, &mut dims, d, size as i64, origin) {
            errors.push(e.into());
        }
    }
    let mut inputs: Vec<Option<ArrayD<f64>>> = vec![None; program.inputs.len()];
    // An error about one input's array points at its declaration.
    let at_declaration = |k: usize, e: DataError, label: &str| {
        let input = &program.inputs[k];
        Diagnostic::from(e).with_primary_at(input.span, format!("`{}` {label}", input.name))
    };
    for (id, array, source) in arrays {
        match check_array(program, &mut dims, id, &array, &source) {
            Ok(()) => inputs[id.0 as usize] = Some(array),
            Err(e) => errors.push(at_declaration(id.0 as usize, e, "is declared here")),
        }
    }
    // Unbound dims and missing arrays would only repeat the problems found so far.
    if !errors.is_empty() {
        return Err(errors);
    }
    let used = dims_used(program);
    let mut sizes = vec![0u64; program.dims.len()];
    for (k, info) in program.dims.iter().enumerate() {
        match (&dims[k], info.default) {
            (Some((v, _)), _) => sizes[k] = *v,
            (None, Some(v)) => sizes[k] = v,
            (None, None) if used[k] => errors.push(
                Diagnostic::from(
                    DataError::new(
                        UNBOUND_DIM,
                        format!(
                            "dimension `{}` has no size: no array determines it and it has no \
                             default",
                            info.name
                        ),
                    )
                    .with_hint(format!(
                        "give it a size with `--dims {0}=10`, or a default in the model \
                         (`dims {0} = 10`)",
                        info.name
                    )),
                )
                .with_primary_at(info.span, format!("`{}` is declared here", info.name)),
            ),
            (None, None) => {}
        }
    }
    for (k, input) in program.inputs.iter().enumerate() {
        if input.kind == InputKind::Data && inputs[k].is_none() {
            let e = DataError::new(MISSING_DATA, format!("data `{}` has no array", input.name))
                .with_hint(format!(
                    "bind it with `--data {}=file.npy` or declare `= load(\"file.npy\")`",
                    input.name
                ));
            errors.push(at_declaration(k, e, "has no array"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut bindings = Bindings {
        dims: sizes,
        inputs,
        loop_indices: Vec::new(),
    };
    let mut to_compute = Vec::new();
    for (k, input) in program.inputs.iter().enumerate() {
        match declared_shape(program, &bindings.dims, &input.shape, &input.name) {
            Ok(shape) => {
                let needs_value = matches!(input.kind, InputKind::Param | InputKind::Var);
                if needs_value && bindings.inputs[k].is_none() {
                    to_compute.push((k, shape));
                }
            }
            Err(e) => errors.push(at_declaration(k, e, "is declared here")),
        }
    }
    // Every gradient method keeps at least a variable's value, its gradient and a step.
    let bytes: u128 = to_compute
        .iter()
        .map(|(k, shape)| {
            let copies = match program.inputs[*k].kind {
                InputKind::Var => 3,
                _ => 1,
            };
            8 * copies * shape.iter().map(|&s| s as u128).product::<u128>()
        })
        .sum();
    let what = "the variables (their values, gradients and steps) and parameters need at least";
    if let Err(e) = fits_in_memory(bytes, what) {
        errors.push(e.into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (k, shape) in to_compute {
        match initial_value(program, &bindings, k, &shape) {
            Ok(v) => bindings.inputs[k] = Some(v),
            Err(d) => return Err(vec![d]),
        }
    }
    Ok(bindings)
}

/// Records `dim = value` (from `source`), or reports a conflict naming both sources.
fn bind_dim(
    program: &Program,
    dims: &mut [DimBinding],
    dim: DimId,
    value: i64,
    source: &str,
) -> Result<(), DataError> {
    let name = &program.dims[dim.0 as usize].name;
    let value = u64::try_from(value).map_err(|_| {
        DataError::new(
            SHAPE_MISMATCH,
            format!("{source} would make dimension `{name}` negative ({value})"),
        )
    })?;
    match &dims[dim.0 as usize] {
        Some((old, _)) if *old == value => Ok(()),
        Some((old, old_source)) => Err(DataError::new(
            DIM_CONFLICT,
            format!("dimension `{name}` is {old} from {old_source} but {value} from {source}"),
        )),
        None => {
            dims[dim.0 as usize] = Some((value, source.to_string()));
            Ok(())
        }
    }
}

/// Checks one given array against its input's declaration and binds the dims it determines.
fn check_array(
    program: &Program,
    dims: &mut [DimBinding],
    id: InputId,
    array: &ArrayD<f64>,
    source: &str,
) -> Result<(), DataError> {
    let input = program
        .inputs
        .get(id.0 as usize)
        .filter(|i| i.kind != InputKind::InnerVar)
        .ok_or_else(|| {
            DataError::new(
                NOT_BINDABLE,
                format!("the array from {source} is bound to something that takes no array"),
            )
        })?;
    let name = &input.name;
    if array.ndim() != input.shape.len() {
        return Err(DataError::new(
            WRONG_RANK,
            format!(
                "`{name}` ({source}) has rank {} (shape {:?}) but is declared with shape {} (rank {})",
                array.ndim(),
                array.shape(),
                program.shape_name(&input.shape),
                input.shape.len()
            ),
        ));
    }
    let elements: u128 = array.shape().iter().map(|&s| s as u128).product();
    if elements > MAX_ELEMENTS {
        return Err(DataError::new(
            TOO_LARGE,
            format!("`{name}` ({source}) has {elements} elements (at most 2^34)"),
        ));
    }
    for (axis, (&dim, &size)) in input.shape.iter().zip(array.shape()).enumerate() {
        match dim.sym {
            None if dim.offset == size as i64 => {}
            None => {
                return Err(DataError::new(
                    SHAPE_MISMATCH,
                    format!(
                        "`{name}` ({source}) has {size} elements along axis {axis} but is declared with {}",
                        dim.offset
                    ),
                ))
            }
            Some(s) => bind_dim(
                program,
                dims,
                s,
                size as i64 - dim.offset,
                &match dim.offset {
                    0 => format!("`{name}` ({source}, axis {axis})"),
                    _ => format!(
                        "`{name}` ({source}, axis {axis} of size {size} = {})",
                        program.dim_name(dim)
                    ),
                },
            )?,
        }
    }
    check_finite(array, name, source)?;
    check_elem_type(array, input.elem, name, source)
}

/// Which dims some shape or op of the program needs.
fn dims_used(program: &Program) -> Vec<bool> {
    let mut used = vec![false; program.dims.len()];
    let mut mark = |shape: &[optc_compiler::ir::Dim]| {
        for d in shape {
            if let Some(s) = d.sym {
                used[s.0 as usize] = true;
            }
        }
    };
    for input in &program.inputs {
        mark(&input.shape);
    }
    for (_, node) in program.graph.nodes() {
        mark(&node.shape);
        match &node.op {
            Op::DimSize(d)
            | Op::Eye(d)
            | Op::TopK(d)
            | Op::MatPow(d)
            | Op::MatPowFrechet(d)
            | Op::MatPowFrechet2(d) => mark(&[*d]),
            Op::Slice { start, end, .. } => mark(&[*start, *end]),
            Op::BroadcastTo(s) | Op::SumTo(s) => mark(s),
            _ => {}
        }
    }
    used
}

/// A declared shape under bound dims, refusing negative sizes and more than 2³⁴ elements.
fn declared_shape(
    program: &Program,
    dims: &[u64],
    shape: &Shape,
    name: &str,
) -> Result<Vec<usize>, DataError> {
    let mut sizes = Vec::with_capacity(shape.len());
    for &d in shape {
        let v = d.eval(dims);
        let size = usize::try_from(v).map_err(|_| {
            DataError::new(
                SHAPE_MISMATCH,
                format!(
                    "`{name}` has size {} = {v} in its shape {}",
                    program.dim_name(d),
                    program.shape_name(shape)
                ),
            )
        })?;
        sizes.push(size);
    }
    let elements: u128 = sizes.iter().map(|&s| s as u128).product();
    if elements > MAX_ELEMENTS {
        return Err(DataError::new(
            TOO_LARGE,
            format!("`{name}` would have shape {sizes:?}: {elements} elements (at most 2^34)"),
        ));
    }
    Ok(sizes)
}

/// A parameter's default or a variable's initial value (0 when it has none), evaluated with the
/// interpreter and broadcast to the declared shape.
fn initial_value(
    program: &Program,
    bindings: &Bindings,
    k: usize,
    shape: &[usize],
) -> Result<ArrayD<f64>, Diagnostic> {
    let input = &program.inputs[k];
    let value = match input.value {
        Some(node) => interp::eval(program, bindings, &[node], &mut NoSubproblems)
            .map_err(|e| {
                Diagnostic::from(e)
                    .with_note(format!("while computing the value of `{}`", input.name))
            })?
            .remove(0),
        None => ArrayD::zeros(IxDyn(&[])),
    };
    let broadcast = value.broadcast(IxDyn(shape)).ok_or_else(|| {
        Diagnostic::from(DataError::new(
            SHAPE_MISMATCH,
            format!(
                "the value of `{}` has shape {:?}, which does not broadcast to its declared shape {shape:?}",
                input.name,
                value.shape()
            ),
        ))
    })?;
    let value = broadcast.to_owned();
    let source = "its declared value";
    check_finite(&value, &input.name, source)?;
    check_elem_type(&value, input.elem, &input.name, source)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_codes_are_unique_and_in_range() {
        let mut codes: Vec<&str> = DATA.iter().map(|c| c.code).collect();
        assert!(codes.iter().all(|c| ("E0300"..="E0349").contains(c)));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), DATA.len());
    }

    #[test]
    fn header_tokens() {
        let h =
            parse_header("{'descr': '<i4', 'fortran_order': True, 'shape': (3L, 4), }").unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<i4", true, vec![3, 4])
        );
        assert!(parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (,), }").is_err());
    }
}
