//! Data loading: npy files built byte by byte, csv parsing, atomic writing, and binding arrays to
//! a program's declarations, each error case with its code.

#[path = "support/temp.rs"]
mod temp;

use ndarray::{arr0, array, ArrayD, IxDyn};
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputId, InputKind, Op, Program, Shape,
};
use optc_runtime::data::{
    bind_inputs, load, npy_bytes, parse_csv, parse_npy, read_npy, write_npy, DataError, Dtype,
};

/// A fresh directory for one test.
fn scratch(name: &str) -> temp::TempDir {
    temp::TempDir::new("data", name)
}

/// An npy file of format `version` with the given header dict and data bytes.
fn npy(version: u8, dict: &str, body: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.to_string();
    let unpadded = prefix + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

fn le_bytes<const N: usize>(xs: &[[u8; N]]) -> Vec<u8> {
    xs.iter().flatten().copied().collect()
}

#[test]
fn npy_dtypes_from_hand_made_bytes() {
    let cases: Vec<(&str, Vec<u8>, Dtype, Vec<f64>)> = vec![
        (
            "<f8",
            le_bytes(&[1.5f64.to_le_bytes(), (-2.0f64).to_le_bytes()]),
            Dtype::F8,
            vec![1.5, -2.0],
        ),
        (
            "<f4",
            le_bytes(&[0.5f32.to_le_bytes(), 3.0f32.to_le_bytes()]),
            Dtype::F4,
            vec![0.5, 3.0],
        ),
        (
            "<i8",
            le_bytes(&[(-3i64).to_le_bytes(), 7i64.to_le_bytes()]),
            Dtype::I8,
            vec![-3.0, 7.0],
        ),
        (
            "<i4",
            le_bytes(&[2i32.to_le_bytes(), (-5i32).to_le_bytes()]),
            Dtype::I4,
            vec![2.0, -5.0],
        ),
        // float16: 1.5, −2.0, the largest finite (65504), the least subnormal (2⁻²⁴), −∞.
        (
            "<f2",
            le_bytes(&[0x3e00u16, 0xc000, 0x7bff, 0x0001, 0xfc00].map(u16::to_le_bytes)),
            Dtype::F2,
            vec![1.5, -2.0, 65504.0, 2f64.powi(-24), f64::NEG_INFINITY],
        ),
        (
            "<i2",
            le_bytes(&[(-300i16).to_le_bytes(), 7i16.to_le_bytes()]),
            Dtype::I2,
            vec![-300.0, 7.0],
        ),
        ("|i1", vec![0x80, 5], Dtype::I1, vec![-128.0, 5.0]),
        (
            "<u2",
            le_bytes(&[65535u16.to_le_bytes(), 1u16.to_le_bytes()]),
            Dtype::U2,
            vec![65535.0, 1.0],
        ),
        (
            "<u4",
            le_bytes(&[4_000_000_000u32.to_le_bytes(), 0u32.to_le_bytes()]),
            Dtype::U4,
            vec![4e9, 0.0],
        ),
        (
            "<u8",
            le_bytes(&[(1u64 << 53).to_le_bytes(), 3u64.to_le_bytes()]),
            Dtype::U8,
            vec![2f64.powi(53), 3.0],
        ),
        ("|u1", vec![0, 255], Dtype::U1, vec![0.0, 255.0]),
        ("<u1", vec![9, 1], Dtype::U1, vec![9.0, 1.0]),
        ("|b1", vec![1, 0], Dtype::B1, vec![1.0, 0.0]),
    ];
    for (descr, body, dtype, want) in cases {
        let shape = format!("({},)", want.len());
        let bytes = npy(1, &dict(descr, false, &shape), &body);
        let (a, got_dtype) = parse_npy(&bytes, "t.npy").unwrap();
        assert_eq!(got_dtype, dtype, "{descr}");
        assert_eq!(
            a,
            ArrayD::from_shape_vec(IxDyn(&[want.len()]), want).unwrap(),
            "{descr}"
        );
    }
}

#[test]
fn npy_header_versions_scalars_and_fortran_order() {
    let body = le_bytes(&[
        1.0f64.to_le_bytes(),
        2.0f64.to_le_bytes(),
        3.0f64.to_le_bytes(),
        4.0f64.to_le_bytes(),
        5.0f64.to_le_bytes(),
        6.0f64.to_le_bytes(),
    ]);
    // C order 2×3.
    for version in [1, 2, 3] {
        let (a, _) =
            parse_npy(&npy(version, &dict("<f8", false, "(2, 3)"), &body), "c.npy").unwrap();
        assert_eq!(a, array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    }
    // Fortran order: the same bytes are the columns.
    let (f, _) = parse_npy(&npy(1, &dict("<f8", true, "(2, 3)"), &body), "f.npy").unwrap();
    assert_eq!(f, array![[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]].into_dyn());
    assert!(f.is_standard_layout());
    // A scalar, with the keys in another order and double quotes.
    let scalar = npy(
        1,
        "{\"shape\": (), \"fortran_order\": False, \"descr\": \"<f8\"}",
        &7.25f64.to_le_bytes(),
    );
    assert_eq!(
        parse_npy(&scalar, "s.npy").unwrap().0,
        arr0(7.25).into_dyn()
    );
}

fn npy_err(bytes: &[u8]) -> DataError {
    parse_npy(bytes, "bad.npy").unwrap_err()
}

#[test]
fn npy_errors_have_their_codes() {
    let body = 1.0f64.to_le_bytes();
    let big = npy_err(&npy(1, &dict(">f8", false, "(1,)"), &body));
    assert_eq!(big.code, "E0303");
    assert!(
        big.message.contains("big-endian") && big.message.contains("bad.npy"),
        "{}",
        big.message
    );
    assert_eq!(
        npy_err(&npy(1, &dict("<c16", false, "(1,)"), &body)).code,
        "E0303"
    );
    assert_eq!(npy_err(b"PK\x03\x04 a zip file, not npy").code, "E0302");
    assert_eq!(npy_err(&npy(1, "{'descr': '<f8'}", &body)).code, "E0302");
    assert_eq!(npy_err(&npy(1, "not a dict", &body)).code, "E0302");
    let truncated = npy_err(&npy(1, &dict("<f8", false, "(2,)"), &body));
    assert_eq!(truncated.code, "E0313");
    let huge = npy_err(&npy(1, &dict("<f8", false, "(1000000, 1000000)"), &body));
    assert_eq!(huge.code, "E0311");
}

#[test]
fn npy_write_is_atomic_and_round_trips() {
    let dir = scratch("roundtrip");
    for (k, a) in [
        array![[1.0, -2.5, 3.0], [0.0, 1e-300, 6.0]].into_dyn(),
        array![4.0].into_dyn(),
        arr0(-0.5).into_dyn(),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("a{k}.npy"));
        write_npy(&path, &a).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, npy_bytes(&a));
        // The data starts 64-byte aligned, as numpy writes it.
        assert_eq!((bytes.len() - 8 * a.len()) % 64, 0);
        let (back, dtype) = read_npy(&path).unwrap();
        assert_eq!((back, dtype), (a, Dtype::F8));
    }
    // Overwriting replaces the file and leaves no temporary file behind.
    let path = dir.join("a0.npy");
    write_npy(&path, &array![9.0].into_dyn()).unwrap();
    assert_eq!(load(&path, 1).unwrap(), array![9.0].into_dyn());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    let unwritable = write_npy(
        &dir.join("missing-dir").join("x.npy"),
        &array![1.0].into_dyn(),
    );
    assert_eq!(unwritable.unwrap_err().code, "E0314");
}

#[test]
fn file_errors() {
    let dir = scratch("files");
    assert_eq!(load(&dir.join("nope.npy"), 1).unwrap_err().code, "E0300");
    let as_dir = dir.join("dir.npy");
    std::fs::create_dir_all(&as_dir).unwrap();
    assert_eq!(load(&as_dir, 1).unwrap_err().code, "E0301");
    assert_eq!(load(&dir.join("x.txt"), 1).unwrap_err().code, "E0315");
    let csv = dir.join("x.csv");
    std::fs::write(&csv, "a,b\n1,2\n3,4\n").unwrap();
    assert_eq!(
        load(&csv, 2).unwrap(),
        array![[1.0, 2.0], [3.0, 4.0]].into_dyn()
    );
}

#[test]
fn csv_parsing() {
    let m = parse_csv("x, y\n1, 2.5\n\n-3,4e2\n", "t.csv", 2).unwrap();
    assert_eq!(m, array![[1.0, 2.5], [-3.0, 400.0]].into_dyn());
    let no_header = parse_csv("1,2\n3,4", "t.csv", 2).unwrap();
    assert_eq!(no_header, array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
    // A number beyond float64 is no infinity (and no header), said as such.
    for text in ["1e400,2\n3,4", "1,2\n3,-1e999"] {
        let e = parse_csv(text, "o.csv", 2).unwrap_err();
        assert_eq!(e.code, "E0309");
        assert!(
            e.message.contains("is beyond the range of float64"),
            "{}",
            e.message
        );
    }
    // One column: a vector only when the declaration has rank 1.
    let col = "v\n1\n2\n3\n";
    assert_eq!(
        parse_csv(col, "c.csv", 1).unwrap(),
        array![1.0, 2.0, 3.0].into_dyn()
    );
    assert_eq!(
        parse_csv(col, "c.csv", 2).unwrap(),
        array![[1.0], [2.0], [3.0]].into_dyn()
    );
    assert_eq!(
        parse_csv("1,2,3", "r.csv", 1).unwrap(),
        array![1.0, 2.0, 3.0].into_dyn()
    );
    assert_eq!(
        parse_csv("2.5\n", "s.csv", 0).unwrap(),
        arr0(2.5).into_dyn()
    );
    // Spreadsheet exports: a byte order mark, quoted numbers (data, not a header), a quoted
    // header.
    let expected = array![[1.0, 2.0], [3.0, 4.0]].into_dyn();
    for text in [
        "\u{feff}1,2\n3,4\n",
        "\"1\",\"2\"\n3,4\n",
        "\u{feff}\"a\",\"b\"\n1, \" 2 \"\n3,4\r\n",
    ] {
        assert_eq!(parse_csv(text, "s.csv", 2).unwrap(), expected, "{text:?}");
    }
}

#[test]
fn csv_errors() {
    let ragged = parse_csv("a,b\n1,2\n3\n", "r.csv", 2).unwrap_err();
    assert_eq!(ragged.code, "E0308");
    assert!(
        ragged.message.contains("line 3") && ragged.message.contains("r.csv"),
        "{}",
        ragged.message
    );
    let bad = parse_csv("1,2\n3,x4\n", "b.csv", 2).unwrap_err();
    assert_eq!(bad.code, "E0309");
    assert!(
        bad.message.contains("line 2, column 2") && bad.message.contains("x4"),
        "{}",
        bad.message
    );
    // A partly numeric first line is data, not a header.
    assert_eq!(
        parse_csv("1,oops\n3,4\n", "h.csv", 2).unwrap_err().code,
        "E0309"
    );
    assert_eq!(
        parse_csv("1,2\n3,4\n", "m.csv", 1).unwrap_err().code,
        "E0304"
    );
    assert_eq!(parse_csv("x,y\n\n", "e.csv", 2).unwrap_err().code, "E0316");
    // Numbers split by `;`, tabs or spaces (`numpy.savetxt`'s default), or quoted with decimal
    // commas, are no header: the error is at line 1, with the way they are written (the first
    // line used to be skipped as a header for spaces and decimal commas).
    for (text, named) in [
        ("1;2\n3;4\n", "`;`"),
        ("1\t2\n3\t4\n", "tabs"),
        ("1 2 3\n4 5 6\n", "spaces"),
        ("\"1,5\",\"2,5\"\n\"3,5\",\"4\"\n", "`1.5`"),
    ] {
        let e = parse_csv(text, "semi.csv", 2).unwrap_err();
        assert_eq!(e.code, "E0309");
        assert!(e.message.contains("line 1, column 1"), "{}", e.message);
        let hint = e.hint.unwrap_or_default();
        assert!(hint.contains(named), "{hint}");
    }
}

/// `dims n, d; data X : real[n, d]; data y : real[n]; param lam = 0.5; param w : real[d] = 2 lam;
/// var W : real[d, d]; var b : real[d] = 1`, plus extra inputs a test needs.
struct Decl {
    p: Program,
}

impl Decl {
    fn new() -> Decl {
        let mut decl = Decl {
            p: Program::default(),
        };
        for name in ["n", "d"] {
            decl.p.dims.push(DimInfo {
                name: name.into(),
                default: None,
                span: None,
            });
        }
        let (n, d) = (Dim::sym(DimId(0)), Dim::sym(DimId(1)));
        decl.add("X", InputKind::Data, ElemType::Real, vec![n, d], None);
        decl.add("y", InputKind::Data, ElemType::Real, vec![n], None);
        let half = decl.p.graph.constant(0.5);
        let lam = decl.add("lam", InputKind::Param, ElemType::Real, vec![], Some(half));
        let two = decl.p.graph.constant(2.0);
        let twice = decl
            .p
            .graph
            .add(Op::Binary(BinaryOp::Mul), vec![two, lam])
            .unwrap();
        decl.add("w", InputKind::Param, ElemType::Real, vec![d], Some(twice));
        decl.add("W", InputKind::Var, ElemType::Real, vec![d, d], None);
        let one = decl.p.graph.constant(1.0);
        decl.add("b", InputKind::Var, ElemType::Real, vec![d], Some(one));
        decl
    }

    fn add(
        &mut self,
        name: &str,
        kind: InputKind,
        elem: ElemType,
        shape: Shape,
        value: Option<optc_compiler::ir::NodeId>,
    ) -> optc_compiler::ir::NodeId {
        let (id, node) = self.p.add_input(name, kind, elem, shape);
        self.p.inputs[id.0 as usize].value = value;
        node
    }

    fn bind(
        &self,
        arrays: Vec<(u32, ArrayD<f64>)>,
    ) -> Result<optc_runtime::interp::Bindings, Vec<Diagnostic>> {
        let arrays = arrays
            .into_iter()
            .map(|(i, a)| (InputId(i), a, format!("file{i}.npy")))
            .collect();
        bind_inputs(&self.p, arrays, &[])
    }
}

fn x32() -> ArrayD<f64> {
    array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].into_dyn()
}

fn y3() -> ArrayD<f64> {
    array![1.0, 0.0, 1.0].into_dyn()
}

fn single_error(r: Result<optc_runtime::interp::Bindings, Vec<Diagnostic>>) -> Diagnostic {
    let mut errors = r.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn binding_computes_dims_defaults_and_initial_values() {
    let decl = Decl::new();
    let b = decl.bind(vec![(0, x32()), (1, y3())]).unwrap();
    assert_eq!(b.dims, vec![3, 2]);
    assert_eq!(b.inputs[0], Some(x32()));
    assert_eq!(b.inputs[2], Some(arr0(0.5).into_dyn()));
    assert_eq!(b.inputs[3], Some(array![1.0, 1.0].into_dyn()));
    assert_eq!(b.inputs[4], Some(ArrayD::zeros(IxDyn(&[2, 2]))));
    assert_eq!(b.inputs[5], Some(array![1.0, 1.0].into_dyn()));
    // A given parameter replaces its default, and defaults that depend on it follow.
    let b = decl
        .bind(vec![(0, x32()), (1, y3()), (2, arr0(3.0).into_dyn())])
        .unwrap();
    assert_eq!(b.inputs[3], Some(array![6.0, 6.0].into_dyn()));
}

#[test]
fn conflicting_dims_name_both_arrays() {
    let decl = Decl::new();
    let e = single_error(decl.bind(vec![(0, x32()), (1, array![1.0, 2.0].into_dyn())]));
    assert_eq!(e.code, "E0306");
    assert!(
        e.message.contains("`X` (file0.npy") && e.message.contains("`y` (file1.npy"),
        "{}",
        e.message
    );
    let over = bind_inputs(
        &decl.p,
        vec![
            (InputId(0), x32(), "X.npy".into()),
            (InputId(1), y3(), "y.npy".into()),
        ],
        &[(DimId(1), 5, "the command line")],
    );
    let e = single_error(over);
    assert_eq!(e.code, "E0306");
    assert!(e.message.contains("command line"), "{}", e.message);
}

/// `real[n - 1]` data binds `n` to its length plus one; a conflict shows the shifted size; a
/// shifted size that comes out negative is refused.
#[test]
fn shifted_sizes_solve_for_their_dim() {
    let source = "dims n\ndata y : real[n]\ndata w : real[n - 1]\nvar x : real[n - 2] = 0\nminimize sumsq(x) + sum(w) + sum(y)\n";
    let program =
        optc_compiler::driver::compile("shift.opt", source, optc_compiler::driver::Until::Ir)
            .unwrap()
            .program
            .unwrap();
    let [y, w, x] = ["y", "w", "x"].map(|n| program.input_by_name(n).unwrap());
    let vector = |len: usize| ArrayD::<f64>::ones(IxDyn(&[len]));
    let only_w = bind_inputs(&program, vec![(w, vector(4), "w.npy".into())], &[]);
    // `y` is missing, but `n` is known from `w` alone: no unbound-dim error.
    assert_eq!(single_error(only_w).code, "E0317");
    let b = bind_inputs(
        &program,
        vec![
            (y, vector(5), "y.npy".into()),
            (w, vector(4), "w.npy".into()),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(b.dims, vec![5]);
    assert_eq!(b.inputs[x.0 as usize].as_ref().unwrap().len(), 3);
    let conflict = bind_inputs(
        &program,
        vec![
            (y, vector(5), "y.npy".into()),
            (w, vector(2), "w.npy".into()),
        ],
        &[],
    );
    let e = single_error(conflict);
    assert_eq!(e.code, "E0306");
    assert!(
        e.message
            .contains("3 from `w` (w.npy, axis 0 of size 2 = n-1)"),
        "{}",
        e.message
    );
    let too_small = bind_inputs(
        &program,
        vec![
            (y, vector(1), "y.npy".into()),
            (w, vector(0), "w.npy".into()),
        ],
        &[],
    );
    let e = single_error(too_small);
    assert_eq!(e.code, "E0305");
    assert!(e.message.contains("`x` has size n-2 = -1"), "{}", e.message);
}

#[test]
fn bad_arrays_are_reported_with_codes() {
    let decl = Decl::new();
    let e = single_error(decl.bind(vec![(0, y3()), (1, y3())]));
    assert_eq!(e.code, "E0304");
    let mut nan = x32();
    nan[[1, 0]] = f64::NAN;
    let e = single_error(decl.bind(vec![(0, nan), (1, y3())]));
    assert_eq!(e.code, "E0307");
    assert!(
        e.message.contains("X[1, 0]") && e.message.contains("file0.npy"),
        "{}",
        e.message
    );
    // Missing data: both arrays absent, two errors; n and d are then unbound too.
    let errors = decl.bind(vec![]).unwrap_err();
    let codes: Vec<&str> = errors.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["E0312", "E0312", "E0317", "E0317"]);
}

#[test]
fn element_types_fixed_sizes_and_absurd_shapes() {
    let mut decl = Decl::new();
    decl.add(
        "k",
        InputKind::Data,
        ElemType::Int,
        vec![Dim::fixed(2)],
        None,
    );
    decl.add("mask", InputKind::Data, ElemType::Bool, vec![], None);
    let base =
        |k: ArrayD<f64>, mask: f64| vec![(0, x32()), (1, y3()), (6, k), (7, arr0(mask).into_dyn())];
    assert!(decl.bind(base(array![1.0, -4.0].into_dyn(), 1.0)).is_ok());
    let e = single_error(decl.bind(base(array![1.0, 2.5].into_dyn(), 0.0)));
    assert_eq!(e.code, "E0310");
    assert!(e.message.contains("k[1]"), "{}", e.message);
    assert_eq!(
        single_error(decl.bind(base(array![1.0, 2.0].into_dyn(), 2.0))).code,
        "E0310"
    );
    assert_eq!(
        single_error(decl.bind(base(array![1.0, 2.0, 3.0].into_dyn(), 0.0))).code,
        "E0305"
    );
    // d = 2^20 makes W : real[d, d] 2^40 elements: refused before anything is allocated.
    let decl = Decl::new();
    let empty = bind_inputs(
        &decl.p,
        vec![
            (InputId(1), y3(), "y.npy".into()),
            (InputId(0), ArrayD::zeros(IxDyn(&[3, 0])), "X.npy".into()),
        ],
        &[],
    );
    assert!(empty.is_ok(), "d = 0 is a valid size");
    let mut decl = Decl::new();
    decl.p.dims.push(DimInfo {
        name: "k".into(),
        default: Some(1 << 20),
        span: None,
    });
    let k = Dim::sym(DimId(2));
    decl.add("V", InputKind::Var, ElemType::Real, vec![k, k], None);
    let e = single_error(decl.bind(vec![(0, x32()), (1, y3())]));
    assert_eq!(e.code, "E0311");
}
