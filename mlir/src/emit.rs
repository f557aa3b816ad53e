//! MLIR text of a planned function: one `func.func @optc_main` over rank-1 `memref<?xf64>` views
//! of the caller's arrays (`memref<?xf32>` for an f32 GPU function, whose arithmetic is then f32
//! too, but for exp, log, log1p and tanh, computed in f64 by `crate::math`), built from the
//! func, arith, math, scf, memref and cf dialects.
//!
//! A buffered node is computed by a loop nest (`scf.for`) over its own index space; the value of
//! each element is built by [`Emitter::eval`], which recurses through fused arguments (remapping
//! indices for broadcasting, transposes, slices, diagonals) and loads buffered ones. A fused
//! expression that is elementwise down to buffers of the loop's size (or of one element) runs as
//! one flat loop. Reductions carry their accumulators through `iter_args`. Matrix kernels are
//! `func.call`s to external C functions (see [`KERNELS`]); a nonzero status returns at once.
//!
//! The index of each `select` is checked by the interpreter's rule (an integer in `0..len`) once,
//! before the loops of the node that computes it (the select itself or the consumer it is fused
//! into), and not at all when it is a constant or dim size in range. A failed check writes the
//! fault record (node id, index, axis length) at `%scratch[plan.scratch_len..]` and returns
//! [`BAD_INDEX`]. GPU kernels cannot return a status: there an invalid index gives NaN (the load
//! reads element 0 of the axis, or nothing when the axis is empty).

use crate::plan::{is_elementwise, is_pointwise, Plan, Storage};
use crate::MlirError;
use optc_compiler::ir::{op_text, BinaryOp, NodeId, Op, Program, UnaryOp};
pub use optc_compiler::launch::Precision;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

/// Name of the entry function.
pub const ENTRY: &str = "optc_main";

/// Status of a failed index check: the Cranelift backend's (`optc_runtime::cpu::BAD_INDEX`), a
/// value no kernel returns.
pub const BAD_INDEX: i32 = 5;

/// f64 after the planned scratch where a failed index check records the node id, the index and
/// the axis length (the Cranelift backend's layout, `optc_runtime::cpu::INDEX_FAULT_LEN`).
pub const INDEX_FAULT_LEN: usize = 3;

/// A C kernel: name and MLIR parameter types; every kernel returns an `i32` status.
pub struct Kernel {
    pub name: &'static str,
    pub params: &'static str,
}

/// The runtime kernels the lowering may call, with their C signatures (pointers to row-major f64
/// arrays, sizes as i64, transpose flags as i32).
pub const KERNELS: [Kernel; 9] = [
    Kernel {
        name: "optc_kernel_matmul",
        params: "!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64, i64, i32, i32",
    },
    Kernel {
        name: "optc_kernel_logdet",
        params: "!llvm.ptr, !llvm.ptr, i64",
    },
    Kernel {
        name: "optc_kernel_logdet_inv",
        params: "!llvm.ptr, !llvm.ptr, !llvm.ptr, i64",
    },
    Kernel {
        name: "optc_kernel_solve",
        params: "!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64",
    },
    Kernel {
        name: "optc_kernel_inv",
        params: "!llvm.ptr, !llvm.ptr, i64",
    },
    Kernel {
        name: "optc_kernel_expm",
        params: "!llvm.ptr, !llvm.ptr, i64",
    },
    Kernel {
        name: "optc_kernel_sort_desc",
        params: "!llvm.ptr, !llvm.ptr, i64",
    },
    Kernel {
        name: "optc_kernel_topk",
        params: "!llvm.ptr, !llvm.ptr, i64, i64",
    },
    Kernel {
        name: "optc_kernel_nuclear_norm",
        params: "!llvm.ptr, !llvm.ptr, i64, i64",
    },
];

type Res<T> = Result<T, MlirError>;

/// The largest |n| of a constant integer exponent computed by multiplications.
const MAX_INTEGER_EXPONENT: f64 = 16.0;

/// An SSA value name (`%v12`).
type Val = String;

/// The math functions [`Emitter::math`] computes.
#[derive(Clone, Copy)]
enum MathFn {
    Exp,
    Log,
    Log1p,
    Tanh,
    Pow,
}

/// The body of a loop over one index: the index and the carried accumulators in, the next
/// accumulators out.
type RangeBody<'e, 'a> = dyn FnMut(&mut Emitter<'a>, &Val, &[Val]) -> Res<Vec<Val>> + 'e;

/// The body of a loop nest: one index per axis.
type NestBody<'e, 'a> = dyn FnMut(&mut Emitter<'a>, &[Val], &[Val]) -> Res<Vec<Val>> + 'e;

/// The body of a scan: the element's position and value.
type ScanBody<'e, 'a> = dyn FnMut(&mut Emitter<'a>, &Ix, Val, &[Val]) -> Res<Vec<Val>> + 'e;

/// Combines an accumulator and an element.
type Combine<'e, 'a> = dyn Fn(&mut Emitter<'a>, &Val, &Val) -> Val + 'e;

/// The position of an element: one flat index (elementwise loops) or one index per axis.
enum Ix {
    Flat(Val),
    Multi(Vec<Val>),
}

/// Where the function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Sequential `scf.for` loops on the host.
    Cpu,
    /// The loops of pointwise nodes become `scf.parallel` (for outlining to GPU kernels), over
    /// buffers of the given element type.
    Gpu(Precision),
    /// [`Target::Cpu`] with exp, log and their kin computed as in GPU kernels ([`crate::math`])
    /// instead of by libm: tests run that arithmetic on the host.
    CpuKernelMath,
}

/// A text emitter for the function of one plan.
pub struct Emitter<'a> {
    program: &'a Program,
    target: Target,
    /// Inside a loop that becomes a GPU kernel.
    in_kernel: bool,
    plan: &'a Plan,
    dims: &'a [u64],
    body: String,
    depth: usize,
    next_value: usize,
    next_block: usize,
    /// Kernels called, declared at the end.
    used: BTreeSet<&'static str>,
    /// The checked position (`index`) of each `select` on the CPU, defined before the loops of
    /// the node that computes it (see [`Emitter::check_indices`]).
    positions: HashMap<NodeId, Val>,
}

/// The MLIR module text of a plan: the entry function and the declarations of the kernels it
/// calls (in [`KERNELS`] order), and the names of those kernels.
pub fn module_text(
    program: &Program,
    plan: &Plan,
    dims: &[u64],
    target: Target,
) -> Res<(String, Vec<&'static str>)> {
    let mut e = Emitter {
        program,
        target,
        in_kernel: false,
        plan,
        dims,
        body: String::new(),
        depth: 2,
        next_value: 0,
        next_block: 0,
        used: BTreeSet::new(),
        positions: HashMap::new(),
    };
    for &id in &plan.schedule {
        e.node(id)?;
    }
    for &(k, id) in &plan.copies {
        e.copy(id, k)?;
    }
    let ok = e.int_const(0, "i32");
    e.line(format!("cf.br ^ret({ok} : i32)"));

    let memref = e.memref();
    let mut params: Vec<String> = (0..program.inputs.len())
        .map(|k| format!("%in{k}: {memref}"))
        .collect();
    params.extend((0..plan.outputs).map(|k| format!("%out{k}: {memref}")));
    params.push(format!("%scratch: {memref}"));

    let mut text = String::from("module {\n");
    let _ = writeln!(
        text,
        "  func.func @{ENTRY}({}) -> i32 attributes {{llvm.emit_c_interface}} {{",
        params.join(", ")
    );
    text.push_str(&e.body);
    text.push_str("  ^ret(%status: i32):\n    return %status : i32\n  }\n");
    let used: Vec<&'static str> = KERNELS
        .iter()
        .filter(|k| e.used.contains(k.name))
        .map(|k| k.name)
        .collect();
    for kernel in KERNELS.iter().filter(|k| e.used.contains(k.name)) {
        let _ = writeln!(
            text,
            "  func.func private @{}({}) -> i32",
            kernel.name, kernel.params
        );
    }
    text.push_str("}\n");
    Ok((text, used))
}

/// A literal of `x` in `precision` (rounded to it) that MLIR parses back exactly: decimal with a
/// point, or the bits in hex for non-finite values.
pub(crate) fn float_literal(x: f64, precision: Precision) -> String {
    let x = precision.round(x);
    if !x.is_finite() {
        return match precision {
            Precision::F64 => format!("0x{:016X}", x.to_bits()),
            Precision::F32 => format!("0x{:08X}", (x as f32).to_bits()),
        };
    }
    let s = format!("{x:?}");
    match (s.contains('.'), s.find('e')) {
        (false, Some(e)) => format!("{}.0{}", &s[..e], &s[e..]),
        (false, None) => format!("{s}.0"),
        _ => s,
    }
}

/// Reductions computed one output element at a time, each folding a line (or a few lines) of
/// the argument: a sum, maximum or log-sum-exp along an axis, a `sum_to`, a trace.
pub fn is_line_reduction(op: &Op) -> bool {
    matches!(
        op,
        Op::Sum { axis: Some(_) }
            | Op::Max { axis: Some(_) }
            | Op::SumTo(_)
            | Op::Trace
            | Op::LogSumExp { axis: Some(_) }
    )
}

/// The exponent of a power `id` that is computed by multiplications: an integer constant of
/// magnitude at most [`MAX_INTEGER_EXPONENT`].
fn integer_exponent(program: &Program, id: NodeId) -> Option<i32> {
    let node = program.graph.node(id);
    match (
        &node.op,
        node.args.get(1).map(|&e| &program.graph.node(e).op),
    ) {
        (Op::Binary(BinaryOp::Pow), Some(&Op::Const(n)))
            if n.fract() == 0.0 && n.abs() <= MAX_INTEGER_EXPONENT =>
        {
            Some(n as i32)
        }
        _ => None,
    }
}

/// Whether the GPU function computes `id` in a kernel of its own, one thread per element: a
/// pointwise node the backend lowers, or a line reduction (a `sum_to` to one element is a
/// library sum instead). The rest are library calls or the runtime's host steps.
pub fn outlined(program: &Program, plan: &Plan, id: NodeId) -> bool {
    let op = &program.graph.node(id).op;
    plan.numel(id) > 0
        && if is_pointwise(op) {
            !crate::plan::on_host(op)
        } else {
            is_line_reduction(op) && !(matches!(op, Op::SumTo(_)) && plan.numel(id) == 1)
        }
}

impl<'a> Emitter<'a> {
    fn line(&mut self, text: impl AsRef<str>) {
        for _ in 0..self.depth {
            self.body.push_str("  ");
        }
        self.body.push_str(text.as_ref());
        self.body.push('\n');
    }

    fn fresh(&mut self) -> Val {
        self.next_value += 1;
        format!("%v{}", self.next_value)
    }

    /// Emits `%v = <rhs>` and returns `%v`.
    fn assign(&mut self, rhs: impl AsRef<str>) -> Val {
        let v = self.fresh();
        self.line(format!("{v} = {}", rhs.as_ref()));
        v
    }

    fn op(&self, id: NodeId) -> &'a Op {
        &self.program.graph.node(id).op
    }

    fn args(&self, id: NodeId) -> &'a [NodeId] {
        &self.program.graph.node(id).args
    }

    fn size(&self, id: NodeId, axis: usize) -> usize {
        self.plan.shape(id)[axis]
    }

    fn index(&mut self, n: i64) -> Val {
        self.assign(format!("arith.constant {n} : index"))
    }

    fn int_const(&mut self, n: i64, ty: &str) -> Val {
        self.assign(format!("arith.constant {n} : {ty}"))
    }

    /// The element type of the buffers and the arithmetic (f64 on the CPU).
    fn precision(&self) -> Precision {
        match self.target {
            Target::Cpu | Target::CpuKernelMath => Precision::F64,
            Target::Gpu(p) => p,
        }
    }

    fn on_cpu(&self) -> bool {
        !matches!(self.target, Target::Gpu(_))
    }

    /// `function` (exp, log, log1p, tanh of one argument, pow of two) of `args`: libm's on the
    /// CPU; in GPU kernels (and for [`Target::CpuKernelMath`]) arithmetic ([`crate::math`]), in
    /// f64 on f32 buffers too.
    fn math(&mut self, function: MathFn, args: &[&Val]) -> Val {
        if !self.in_kernel && self.target == Target::Cpu {
            let name = match function {
                MathFn::Exp => "math.exp",
                MathFn::Log => "math.log",
                MathFn::Log1p => "math.log1p",
                MathFn::Tanh => "math.tanh",
                MathFn::Pow => "math.powf",
            };
            return self.float_op(name, args);
        }
        let single = self.precision() == Precision::F32;
        let wide: Vec<Val> = args
            .iter()
            .map(|&x| match single {
                true => self.assign(format!("arith.extf {x} : f32 to f64")),
                false => x.clone(),
            })
            .collect();
        let mut f64_ops = crate::math::F64 { lines: self };
        let y = match function {
            MathFn::Exp => f64_ops.exp(&wide[0]),
            MathFn::Log => f64_ops.log(&wide[0]),
            MathFn::Log1p => f64_ops.log1p(&wide[0]),
            MathFn::Tanh => f64_ops.tanh(&wide[0]),
            MathFn::Pow => f64_ops.pow(&wide[0], &wide[1]),
        };
        match single {
            true => self.assign(format!("arith.truncf {y} : f64 to f32")),
            false => y,
        }
    }

    /// `x^n` by multiplications (binary powering), `1 / x^|n|` for a negative `n`.
    fn integer_power(&mut self, x: &Val, n: i32) -> Val {
        let mut result: Option<Val> = None;
        let mut base = x.clone();
        let mut k = n.unsigned_abs();
        while k > 0 {
            if k & 1 == 1 {
                result = Some(match result {
                    None => base.clone(),
                    Some(r) => self.float_op("arith.mulf", &[&r, &base]),
                });
            }
            k >>= 1;
            if k > 0 {
                base = self.float_op("arith.mulf", &[&base, &base]);
            }
        }
        match result {
            None => self.float(1.0),
            Some(r) if n < 0 => {
                let one = self.float(1.0);
                self.float_op("arith.divf", &[&one, &r])
            }
            Some(r) => r,
        }
    }

    /// The element type's name (`f64`, `f32`).
    fn ty(&self) -> &'static str {
        self.precision().name()
    }

    /// The type of the function's buffers.
    fn memref(&self) -> String {
        format!("memref<?x{}>", self.ty())
    }

    fn float(&mut self, x: f64) -> Val {
        let literal = float_literal(x, self.precision());
        self.assign(format!("arith.constant {literal} : {}", self.ty()))
    }

    fn float_op(&mut self, op: &str, args: &[&Val]) -> Val {
        let list: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        self.assign(format!("{op} {} : {}", list.join(", "), self.ty()))
    }

    fn index_op(&mut self, op: &str, a: &Val, b: &Val) -> Val {
        self.assign(format!("{op} {a}, {b} : index"))
    }

    fn cmpf(&mut self, pred: &str, a: &Val, b: &Val) -> Val {
        self.assign(format!("arith.cmpf {pred}, {a}, {b} : {}", self.ty()))
    }

    fn select(&mut self, cond: &Val, a: &Val, b: &Val) -> Val {
        self.assign(format!("arith.select {cond}, {a}, {b} : {}", self.ty()))
    }

    /// The memref holding a buffered node and the element offset of its first element.
    fn buffer(&self, id: NodeId) -> Res<(String, usize)> {
        Ok(match self.plan.storage(id) {
            Storage::Input(k) => (format!("%in{k}"), 0),
            Storage::Output(k) => (format!("%out{k}"), 0),
            Storage::Scratch(at) => ("%scratch".into(), at),
            _ => return Err(MlirError::Internal("read of an unbuffered node")),
        })
    }

    /// `offset + base` as an index value (`None` offset: the first element).
    fn position(&mut self, base: usize, offset: Option<&Val>) -> Val {
        match (offset, base) {
            (Some(o), 0) => o.clone(),
            (Some(o), b) => {
                let b = self.index(b as i64);
                self.index_op("arith.addi", o, &b)
            }
            (None, b) => self.index(b as i64),
        }
    }

    fn load(&mut self, memref: &str, base: usize, offset: Option<&Val>) -> Val {
        let at = self.position(base, offset);
        let ty = self.memref();
        self.assign(format!("memref.load {memref}[{at}] : {ty}"))
    }

    fn store(&mut self, v: &Val, memref: &str, base: usize, offset: Option<&Val>) {
        let at = self.position(base, offset);
        let ty = self.memref();
        self.line(format!("memref.store {v}, {memref}[{at}] : {ty}"));
    }

    /// Emits `scf.for` over `0..n` carrying `accs` (floats); `body(i, accs)` returns the next
    /// accumulators. Returns the final accumulators. Loops of length 0 and 1 are unrolled.
    fn for_range(
        &mut self,
        n: usize,
        accs: Vec<Val>,
        body: &mut RangeBody<'_, 'a>,
    ) -> Res<Vec<Val>> {
        match n {
            0 => return Ok(accs),
            1 => {
                let zero = self.index(0);
                return body(self, &zero, &accs);
            }
            _ => {}
        }
        let (lo, hi, step) = (self.index(0), self.index(n as i64), self.index(1));
        let i = self.fresh();
        let header = format!("scf.for {i} = {lo} to {hi} step {step}");
        let results: Vec<Val> = accs.iter().map(|_| self.fresh()).collect();
        let carried: Vec<Val> = accs.iter().map(|_| self.fresh()).collect();
        if accs.is_empty() {
            self.line(format!("{header} {{"));
        } else {
            let inits: Vec<String> = carried
                .iter()
                .zip(&accs)
                .map(|(c, a)| format!("{c} = {a}"))
                .collect();
            let types = vec![self.ty(); accs.len()].join(", ");
            self.line(format!(
                "{} = {header} iter_args({}) -> ({types}) {{",
                results.join(", "),
                inits.join(", ")
            ));
        }
        self.depth += 1;
        let next = body(self, &i, &carried)?;
        if !next.is_empty() {
            let types = vec![self.ty(); next.len()].join(", ");
            self.line(format!("scf.yield {} : {types}", next.join(", ")));
        }
        self.depth -= 1;
        self.line("}");
        Ok(results)
    }

    /// Emits `scf.parallel` over `0..n` running `body(i)` (nothing for `n = 0`).
    fn parallel_range(
        &mut self,
        n: usize,
        body: &mut dyn FnMut(&mut Self, &Val) -> Res<()>,
    ) -> Res<()> {
        if n == 0 {
            return Ok(());
        }
        let (lo, hi, step) = (self.index(0), self.index(n as i64), self.index(1));
        let i = self.fresh();
        self.line(format!(
            "scf.parallel ({i}) = ({lo}) to ({hi}) step ({step}) {{"
        ));
        self.depth += 1;
        self.in_kernel = true;
        let done = body(self, &i);
        self.in_kernel = false;
        done?;
        self.depth -= 1;
        self.line("}");
        Ok(())
    }

    /// The per-axis indices of row-major flat position `i` in `shape`.
    fn unflatten(&mut self, shape: &[usize], i: &Val) -> Vec<Val> {
        let mut idx = vec![String::new(); shape.len()];
        let mut stride = 1usize;
        for axis in (0..shape.len()).rev() {
            let scaled = if stride == 1 {
                i.clone()
            } else {
                let s = self.index(stride as i64);
                self.index_op("arith.divui", i, &s)
            };
            idx[axis] = if axis == 0 {
                scaled
            } else {
                let size = self.index(shape[axis] as i64);
                self.index_op("arith.remui", &scaled, &size)
            };
            stride *= shape[axis];
        }
        idx
    }

    /// Runs `body(idx, accs)` over every index of `shape`, row-major, carrying `accs`.
    fn for_each_index(
        &mut self,
        shape: &[usize],
        accs: Vec<Val>,
        body: &mut NestBody<'_, 'a>,
    ) -> Res<Vec<Val>> {
        self.nest(shape, &mut Vec::new(), accs, body)
    }

    fn nest(
        &mut self,
        shape: &[usize],
        prefix: &mut Vec<Val>,
        accs: Vec<Val>,
        body: &mut NestBody<'_, 'a>,
    ) -> Res<Vec<Val>> {
        if prefix.len() == shape.len() {
            return body(self, prefix, &accs);
        }
        self.for_range(shape[prefix.len()], accs, &mut |s, i, carried| {
            prefix.push(i.clone());
            let done = s.nest(shape, prefix, carried.to_vec(), body);
            prefix.pop();
            done
        })
    }

    /// Row-major element offset of `idx` in `shape` (`None` for 0); size-1 axes contribute nothing.
    fn linear(&mut self, shape: &[usize], idx: &[Val]) -> Option<Val> {
        let mut stride = 1i64;
        let mut offset: Option<Val> = None;
        for (axis, &size) in shape.iter().enumerate().rev() {
            if size != 1 {
                let term = if stride == 1 {
                    idx[axis].clone()
                } else {
                    let s = self.index(stride);
                    self.index_op("arith.muli", &idx[axis], &s)
                };
                offset = Some(match offset {
                    None => term,
                    Some(o) => self.index_op("arith.addi", &o, &term),
                });
            }
            stride *= size as i64;
        }
        offset
    }

    /// Element offset of `ix` in the buffer of `id`.
    fn offset(&mut self, id: NodeId, ix: &Ix) -> Option<Val> {
        match ix {
            Ix::Flat(i) => (self.plan.numel(id) != 1).then(|| i.clone()),
            Ix::Multi(idx) => {
                let shape = self.plan.shape(id).to_vec();
                self.linear(&shape, idx)
            }
        }
    }

    /// Whether `id`, evaluated over `numel` elements, is elementwise all the way down to buffers
    /// of `numel` or one element (so one flat loop computes it).
    fn flat_ok(&self, id: NodeId, numel: usize) -> bool {
        if self.plan.is_buffered(id) {
            let own = self.plan.numel(id);
            return own == numel || own == 1;
        }
        is_elementwise(self.op(id)) && self.args(id).iter().all(|&a| self.flat_ok(a, numel))
    }

    /// Visits every element of `id` (row-major) with its index and value, carrying `accs`; flat
    /// when possible unless `multi` asks for per-axis indices.
    fn scan(
        &mut self,
        id: NodeId,
        multi: bool,
        accs: Vec<Val>,
        body: &mut ScanBody<'_, 'a>,
    ) -> Res<Vec<Val>> {
        let numel = self.plan.numel(id);
        if !multi && (self.plan.is_buffered(id) || self.flat_ok(id, numel)) {
            self.for_range(numel, accs, &mut |s, i, carried| {
                let ix = Ix::Flat(i.clone());
                let v = s.eval(id, &ix)?;
                body(s, &ix, v, carried)
            })
        } else {
            let shape = self.plan.shape(id).to_vec();
            self.for_each_index(&shape, accs, &mut |s, idx, carried| {
                let ix = Ix::Multi(idx.to_vec());
                let v = s.eval(id, &ix)?;
                body(s, &ix, v, carried)
            })
        }
    }

    /// Folds every element of `arg` into one accumulator starting at `init`.
    fn fold(&mut self, arg: NodeId, init: f64, combine: &Combine<'_, 'a>) -> Res<Val> {
        let start = self.float(init);
        let done = self.scan(arg, false, vec![start], &mut |s, _, x, accs| {
            Ok(vec![combine(s, &accs[0], &x)])
        })?;
        Ok(done[0].clone())
    }

    /// The value of `id` at `ix`: a load when buffered, else its fused expression.
    fn eval(&mut self, id: NodeId, ix: &Ix) -> Res<Val> {
        if self.plan.is_buffered(id) {
            let (memref, base) = self.buffer(id)?;
            let offset = self.offset(id, ix);
            Ok(self.load(&memref, base, offset.as_ref()))
        } else {
            self.eval_op(id, ix)
        }
    }

    /// The index of broadcast argument `arg` for the element `ix` of its consumer.
    fn broadcast_ix(&mut self, arg: NodeId, ix: &Ix) -> Ix {
        match ix {
            Ix::Flat(i) => Ix::Flat(i.clone()),
            Ix::Multi(idx) => {
                let shape = self.plan.shape(arg).to_vec();
                let drop = idx.len() - shape.len();
                Ix::Multi(
                    shape
                        .iter()
                        .enumerate()
                        .map(|(j, &size)| {
                            if size == 1 {
                                self.index(0)
                            } else {
                                idx[drop + j].clone()
                            }
                        })
                        .collect(),
                )
            }
        }
    }

    fn multi(ix: &Ix) -> Res<&[Val]> {
        match ix {
            Ix::Multi(idx) => Ok(idx),
            Ix::Flat(_) => Err(MlirError::Internal("flat index for an index-remapping op")),
        }
    }

    /// 1.0 where `i == j`, else `value` … 0.0.
    fn on_diagonal(&mut self, i: &Val, j: &Val, value: &Val) -> Val {
        let same = self.assign(format!("arith.cmpi eq, {i}, {j} : index"));
        let zero = self.float(0.0);
        self.select(&same, value, &zero)
    }

    /// The value of pointwise node `id` at `ix`, computed from its arguments.
    fn eval_op(&mut self, id: NodeId, ix: &Ix) -> Res<Val> {
        let args = self.args(id);
        Ok(match self.op(id) {
            Op::Const(c) => self.float(*c),
            Op::DimSize(d) => self.float(d.eval(self.dims) as f64),
            Op::Unary(u) => {
                let x = self.eval(args[0], ix)?;
                self.unary(*u, &x)
            }
            Op::Binary(o) => {
                let ia = self.broadcast_ix(args[0], ix);
                let a = self.eval(args[0], &ia)?;
                if let Some(n) = integer_exponent(self.program, id) {
                    return Ok(self.integer_power(&a, n));
                }
                let ib = self.broadcast_ix(args[1], ix);
                let b = self.eval(args[1], &ib)?;
                self.binary(*o, &a, &b)
            }
            Op::BroadcastTo(_) => {
                let ia = self.broadcast_ix(args[0], ix);
                self.eval(args[0], &ia)?
            }
            Op::Eye(_) => {
                let idx = Self::multi(ix)?.to_vec();
                let one = self.float(1.0);
                self.on_diagonal(&idx[0], &idx[1], &one)
            }
            Op::Transpose => {
                let idx = Self::multi(ix)?;
                let swapped = Ix::Multi(vec![idx[1].clone(), idx[0].clone()]);
                self.eval(args[0], &swapped)?
            }
            Op::Slice { axis, start, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                let a = *axis as usize;
                let start = self.index(start.eval(self.dims));
                idx[a] = self.index_op("arith.addi", &idx[a], &start);
                self.eval(args[0], &Ix::Multi(idx))?
            }
            Op::Expand { axis, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                idx.remove(*axis as usize);
                self.eval(args[0], &Ix::Multi(idx))?
            }
            Op::Pad { axis, start, .. } => {
                let a = *axis as usize;
                let len = self.size(args[0], a) as i64;
                if len == 0 {
                    return Ok(self.float(0.0));
                }
                let mut idx = Self::multi(ix)?.to_vec();
                let begin = self.index(start.eval(self.dims));
                let shifted = self.index_op("arith.subi", &idx[a], &begin);
                let (zero, last) = (self.index(0), self.index(len - 1));
                let above = self.assign(format!("arith.cmpi sge, {shifted}, {zero} : index"));
                let below = self.assign(format!("arith.cmpi sle, {shifted}, {last} : index"));
                let inside = self.assign(format!("arith.andi {above}, {below} : i1"));
                // Padding positions read the nearest element in range, then select 0.
                let clamped = self.index_op("arith.maxsi", &shifted, &zero);
                idx[a] = self.index_op("arith.minsi", &clamped, &last);
                let x = self.eval(args[0], &Ix::Multi(idx))?;
                let zero = self.float(0.0);
                self.select(&inside, &x, &zero)
            }
            Op::DiagPart => {
                let i = Self::multi(ix)?[0].clone();
                self.eval(args[0], &Ix::Multi(vec![i.clone(), i]))?
            }
            Op::Diag => {
                let idx = Self::multi(ix)?.to_vec();
                let x = self.eval(args[0], &Ix::Multi(vec![idx[0].clone()]))?;
                self.on_diagonal(&idx[0], &idx[1], &x)
            }
            Op::Select { axis } => {
                let a = *axis as usize;
                let mut idx = Self::multi(ix)?.to_vec();
                if self.on_cpu() {
                    idx.insert(a, self.checked(id)?);
                    return self.eval(args[0], &Ix::Multi(idx));
                }
                let len = self.size(args[0], a);
                if len == 0 {
                    return Ok(self.float(f64::NAN));
                }
                let (valid, position) = match self.known_position(id, len) {
                    Some(p) => (None, p),
                    None => {
                        let index = self.eval(args[1], &Ix::Multi(Vec::new()))?;
                        let (valid, position) = self.position_of(&index, len);
                        (Some(valid), position)
                    }
                };
                idx.insert(a, position);
                let x = self.eval(args[0], &Ix::Multi(idx))?;
                match valid {
                    Some(valid) => {
                        let nan = self.float(f64::NAN);
                        self.select(&valid, &x, &nan)
                    }
                    None => x,
                }
            }
            _ => return Err(MlirError::Internal("fused a non-pointwise op")),
        })
    }

    /// The position [`Self::check_indices`] defined for `select` node `id`.
    fn checked(&self, id: NodeId) -> Res<Val> {
        self.positions
            .get(&id)
            .cloned()
            .ok_or(MlirError::Internal("an index read before its check"))
    }

    /// The position of `select` node `id` along an axis of length `len` when its index is a
    /// constant or dim size in range (an integer in `0..len`): an `index` constant.
    fn known_position(&mut self, id: NodeId, len: usize) -> Option<Val> {
        let index = match self.op(self.args(id)[1]) {
            Op::Const(c) => *c,
            Op::DimSize(d) => d.eval(self.dims) as f64,
            _ => return None,
        };
        let valid = index.fract() == 0.0 && index >= 0.0 && index < len as f64;
        valid.then(|| self.index(index as i64))
    }

    /// Whether the float `index` is an integer in `0..len` (the interpreter's rule; NaN fails every
    /// comparison), and its position as an `index` (0 when it is not in range, so that a read at
    /// it stays inside a non-empty axis).
    fn position_of(&mut self, index: &Val, len: usize) -> (Val, Val) {
        let (zero, end) = (self.float(0.0), self.float(len as f64));
        let above = self.cmpf("oge", index, &zero);
        let below = self.cmpf("olt", index, &end);
        let inside = self.assign(format!("arith.andi {above}, {below} : i1"));
        // Converted only inside the axis (elsewhere `fptosi` is poison).
        let safe = self.select(&inside, index, &zero);
        let ty = self.ty();
        let whole = self.assign(format!("arith.fptosi {safe} : {ty} to i64"));
        let back = self.assign(format!("arith.sitofp {whole} : i64 to {ty}"));
        let integral = self.cmpf("oeq", &back, &safe);
        let valid = self.assign(format!("arith.andi {inside}, {integral} : i1"));
        let position = self.assign(format!("arith.index_cast {whole} : i64 to index"));
        (valid, position)
    }

    /// Checks the index of every `select` that the loops of `id` compute (`id` itself and its
    /// fused arguments, the inner ones first, as an index may select) once, before those loops,
    /// and records their positions. A constant index in range needs no check; a failed check
    /// stores the fault record and returns [`BAD_INDEX`].
    fn check_indices(&mut self, id: NodeId) -> Res<()> {
        for &arg in self.args(id) {
            if self.plan.storage(arg) == Storage::Fused && !self.positions.contains_key(&arg) {
                self.check_indices(arg)?;
            }
        }
        let Op::Select { axis } = self.op(id) else {
            return Ok(());
        };
        let len = self.size(self.args(id)[0], *axis as usize);
        let position = match self.known_position(id, len) {
            Some(position) => position,
            None => {
                let index = self.eval(self.args(id)[1], &Ix::Multi(Vec::new()))?;
                let (valid, position) = self.position_of(&index, len);
                let (fail, next) = (self.block(), self.block());
                self.line(format!("cf.cond_br {valid}, {next}, {fail}"));
                self.body.push_str(&format!("  {fail}:\n"));
                let fields = [self.float(id.0 as f64), index, self.float(len as f64)];
                for (k, field) in fields.iter().enumerate() {
                    self.store(field, "%scratch", self.plan.scratch_len + k, None);
                }
                let status = self.int_const(BAD_INDEX as i64, "i32");
                self.line(format!("cf.br ^ret({status} : i32)"));
                self.body.push_str(&format!("  {next}:\n"));
                position
            }
        };
        self.positions.insert(id, position);
        Ok(())
    }

    /// A fresh block label.
    fn block(&mut self) -> String {
        self.next_block += 1;
        format!("^bb{}", self.next_block)
    }

    /// |x|: `math.absf`, or on the GPU (where NVPTX would call libdevice) the sign bit cleared.
    fn abs(&mut self, x: &Val) -> Val {
        if !self.in_kernel {
            return self.float_op("math.absf", &[x]);
        }
        let (ty, int, mask) = match self.precision() {
            Precision::F64 => ("f64", "i64", i64::MAX),
            Precision::F32 => ("f32", "i32", i64::from(i32::MAX)),
        };
        let bits = self.assign(format!("arith.bitcast {x} : {ty} to {int}"));
        let mask = self.int_const(mask, int);
        let cleared = self.assign(format!("arith.andi {bits}, {mask} : {int}"));
        self.assign(format!("arith.bitcast {cleared} : {int} to {ty}"))
    }

    fn unary(&mut self, op: UnaryOp, x: &Val) -> Val {
        match op {
            UnaryOp::Neg => self.float_op("arith.negf", &[x]),
            UnaryOp::Exp => self.math(MathFn::Exp, &[x]),
            UnaryOp::Log => self.math(MathFn::Log, &[x]),
            // In a kernel, NVVM's correctly rounded square root, the `sqrt.rn` instruction
            // (`math.sqrt` and `llvm.intr.sqrt` become libdevice calls).
            UnaryOp::Sqrt if self.in_kernel => {
                let (ty, intrinsic) = match self.precision() {
                    Precision::F64 => ("f64", "llvm.nvvm.sqrt.rn.d"),
                    Precision::F32 => ("f32", "llvm.nvvm.sqrt.rn.f"),
                };
                self.assign(format!(
                    "llvm.call_intrinsic \"{intrinsic}\"({x}) : ({ty}) -> {ty}"
                ))
            }
            UnaryOp::Sqrt => self.float_op("math.sqrt", &[x]),
            UnaryOp::Abs => self.abs(x),
            UnaryOp::Tanh => self.math(MathFn::Tanh, &[x]),
            UnaryOp::Sign => {
                let zero = self.float(0.0);
                let (one, minus_one) = (self.float(1.0), self.float(-1.0));
                let negative = self.cmpf("olt", x, &zero);
                let positive = self.cmpf("ogt", x, &zero);
                let s = self.select(&negative, &minus_one, x);
                self.select(&positive, &one, &s)
            }
            UnaryOp::Step => {
                // 1 for x ≥ 0, 0 for x < 0; NaN stays NaN.
                let zero = self.float(0.0);
                let one = self.float(1.0);
                let nonneg = self.cmpf("oge", x, &zero);
                let negative = self.cmpf("olt", x, &zero);
                let s = self.select(&negative, &zero, x);
                self.select(&nonneg, &one, &s)
            }
            UnaryOp::Sigmoid => {
                // 1 / (1 + e^-x) for x ≥ 0, e^x / (1 + e^x) otherwise: no overflow.
                let zero = self.float(0.0);
                let one = self.float(1.0);
                let nonneg = self.cmpf("oge", x, &zero);
                let minus_x = self.float_op("arith.negf", &[x]);
                let e_neg = self.math(MathFn::Exp, &[&minus_x]);
                let d_neg = self.float_op("arith.addf", &[&one, &e_neg]);
                let pos = self.float_op("arith.divf", &[&one, &d_neg]);
                let e = self.math(MathFn::Exp, &[x]);
                let d = self.float_op("arith.addf", &[&one, &e]);
                let neg = self.float_op("arith.divf", &[&e, &d]);
                self.select(&nonneg, &pos, &neg)
            }
            UnaryOp::Softplus => {
                // max(x, 0) + log1p(e^-|x|).
                let zero = self.float(0.0);
                let positive = self.cmpf("ogt", x, &zero);
                let relu = self.select(&positive, x, &zero);
                let abs = self.abs(x);
                let minus = self.float_op("arith.negf", &[&abs]);
                let e = self.math(MathFn::Exp, &[&minus]);
                let l = self.math(MathFn::Log1p, &[&e]);
                self.float_op("arith.addf", &[&relu, &l])
            }
        }
    }

    fn binary(&mut self, op: BinaryOp, a: &Val, b: &Val) -> Val {
        let name = match op {
            BinaryOp::Add => "arith.addf",
            BinaryOp::Sub => "arith.subf",
            BinaryOp::Mul => "arith.mulf",
            BinaryOp::Div => "arith.divf",
            BinaryOp::Max => "arith.maximumf",
            BinaryOp::Min => "arith.minimumf",
            BinaryOp::Pow => return self.math(MathFn::Pow, &[a, b]),
        };
        self.float_op(name, &[a, b])
    }

    fn node(&mut self, id: NodeId) -> Res<()> {
        let op = self.op(id);
        let args = self.args(id);
        let (out, base) = self.buffer(id)?;
        let _ = writeln!(self.body, "    // {id} = {}", op_text(self.program, op));
        if matches!(self.target, Target::Gpu(_)) && crate::plan::on_host(op) {
            // The GPU runtime computes it on the host from the stored arguments.
            return Ok(());
        }
        if self.on_cpu() {
            self.check_indices(id)?;
        }
        let add = |s: &mut Self, a: &Val, x: &Val| s.float_op("arith.addf", &[a, x]);
        let max = |s: &mut Self, a: &Val, x: &Val| s.float_op("arith.maximumf", &[a, x]);
        if is_pointwise(op) {
            let numel = self.plan.numel(id);
            let flat = is_elementwise(op) && args.iter().all(|&a| self.flat_ok(a, numel));
            if matches!(self.target, Target::Gpu(_)) {
                let shape = self.plan.shape(id).to_vec();
                return self.parallel_range(numel, &mut |s, i| {
                    let ix = if flat {
                        Ix::Flat(i.clone())
                    } else {
                        Ix::Multi(s.unflatten(&shape, i))
                    };
                    let v = s.eval_op(id, &ix)?;
                    s.store(&v, &out, base, Some(i));
                    Ok(())
                });
            }
            if flat {
                self.for_range(numel, Vec::new(), &mut |s, i, _| {
                    let v = s.eval_op(id, &Ix::Flat(i.clone()))?;
                    s.store(&v, &out, base, Some(i));
                    Ok(Vec::new())
                })?;
                return Ok(());
            }
            let shape = self.plan.shape(id).to_vec();
            self.for_each_index(&shape, Vec::new(), &mut |s, idx, _| {
                let v = s.eval_op(id, &Ix::Multi(idx.to_vec()))?;
                let o = s.linear(&shape, idx);
                s.store(&v, &out, base, o.as_ref());
                Ok(Vec::new())
            })?;
            return Ok(());
        }
        if is_line_reduction(op) {
            let shape = self.plan.shape(id).to_vec();
            if matches!(self.target, Target::Gpu(_)) {
                if !outlined(self.program, self.plan, id) {
                    // A host step of the GPU runtime.
                    return Ok(());
                }
                return self.parallel_range(self.plan.numel(id), &mut |s, i| {
                    let idx = s.unflatten(&shape, i);
                    let v = s.reduced(id, &idx)?;
                    s.store(&v, &out, base, Some(i));
                    Ok(())
                });
            }
            self.for_each_index(&shape, Vec::new(), &mut |s, idx, _| {
                let v = s.reduced(id, idx)?;
                let o = s.linear(&shape, idx);
                s.store(&v, &out, base, o.as_ref());
                Ok(Vec::new())
            })?;
            return Ok(());
        }
        match op {
            Op::Sum { axis: None }
            | Op::Max { axis: None }
            | Op::Card
            | Op::LogSumExp { axis: None } => {
                let v = match op {
                    Op::Sum { .. } => self.fold(args[0], 0.0, &add)?,
                    Op::Max { .. } => self.fold(args[0], f64::NEG_INFINITY, &max)?,
                    Op::Card => self.fold(args[0], 0.0, &|s, a, x| {
                        let zero = s.float(0.0);
                        let abs = s.abs(x);
                        let nonzero = s.cmpf("ogt", &abs, &zero);
                        let one = s.float(1.0);
                        let inc = s.select(&nonzero, &one, &zero);
                        s.float_op("arith.addf", &[a, &inc])
                    })?,
                    _ => {
                        let all = self.plan.shape(args[0]).to_vec();
                        self.log_sum_exp(args[0], &all, &|free| free.to_vec())?
                    }
                };
                self.store(&v, &out, base, None);
            }
            Op::Stack => {
                let inner = self.plan.numel(args[0]);
                for (k, &arg) in args.iter().enumerate() {
                    let arg_shape = self.plan.shape(arg).to_vec();
                    self.scan(arg, false, Vec::new(), &mut |s, ix, x, _| {
                        let within = match ix {
                            Ix::Flat(i) => Some(i.clone()),
                            Ix::Multi(idx) => s.linear(&arg_shape, idx),
                        };
                        s.store(&x, &out, base + k * inner, within.as_ref());
                        Ok(Vec::new())
                    })?;
                }
            }
            _ => self.kernel(id)?,
        }
        Ok(())
    }

    /// log Σ exp of `arg` over the index space `over`, whose index `free` is the element
    /// `full(free)` of `arg`; the maximum is subtracted first, as the interpreter does.
    fn log_sum_exp(
        &mut self,
        arg: NodeId,
        over: &[usize],
        full: &dyn Fn(&[Val]) -> Vec<Val>,
    ) -> Res<Val> {
        let minus_inf = self.float(f64::NEG_INFINITY);
        let m = self.for_each_index(over, vec![minus_inf], &mut |s, free, accs| {
            let x = s.eval(arg, &Ix::Multi(full(free)))?;
            Ok(vec![s.float_op("arith.maximumf", &[&accs[0], &x])])
        })?[0]
            .clone();
        let zero = self.float(0.0);
        let sum = self.for_each_index(over, vec![zero], &mut |s, free, accs| {
            let x = s.eval(arg, &Ix::Multi(full(free)))?;
            let centered = s.float_op("arith.subf", &[&x, &m]);
            let e = s.math(MathFn::Exp, &[&centered]);
            Ok(vec![s.float_op("arith.addf", &[&accs[0], &e])])
        })?[0]
            .clone();
        let log = self.math(MathFn::Log, &[&sum]);
        let shifted = self.float_op("arith.addf", &[&m, &log]);
        // A non-finite maximum is the result itself.
        let diff = self.float_op("arith.subf", &[&m, &m]);
        let finite = self.cmpf("oeq", &diff, &diff);
        Ok(self.select(&finite, &shifted, &m))
    }

    /// Element `idx` of line reduction `id` ([`is_line_reduction`]): its line of the argument
    /// folded (for `sum_to`, the leading axes and those where the output has size 1 and the
    /// argument does not; for a trace, the diagonal; for log-sum-exp, by [`Self::log_sum_exp`]).
    fn reduced(&mut self, id: NodeId, idx: &[Val]) -> Res<Val> {
        let op = self.op(id);
        let arg = self.args(id)[0];
        let arg_shape = self.plan.shape(arg).to_vec();
        if let Op::LogSumExp { axis: Some(a) } = *op {
            let a = a as usize;
            let line = |free: &[Val]| {
                let mut full = idx.to_vec();
                full.insert(a, free[0].clone());
                full
            };
            return self.log_sum_exp(arg, &[arg_shape[a]], &line);
        }
        let lead = arg_shape.len() - idx.len();
        // The reduced axes of the argument (for a trace, one index for both).
        let reduced: Vec<usize> = match op {
            Op::Sum { axis: Some(a) } | Op::Max { axis: Some(a) } => vec![*a as usize],
            Op::SumTo(_) => {
                let shape = self.plan.shape(id);
                (0..arg_shape.len())
                    .filter(|&j| j < lead || (shape[j - lead] == 1 && arg_shape[j] != 1))
                    .collect()
            }
            Op::Trace => vec![0],
            _ => return Err(MlirError::Internal("a line reduction of another op")),
        };
        // The argument's index at the reduced axes' indices `free`.
        let full = |free: &[Val]| -> Vec<Val> {
            match op {
                Op::Trace => vec![free[0].clone(), free[0].clone()],
                Op::SumTo(_) => (0..arg_shape.len())
                    .map(|j| match reduced.iter().position(|&r| r == j) {
                        Some(k) => free[k].clone(),
                        None => idx[j - lead].clone(),
                    })
                    .collect(),
                _ => {
                    let mut full = idx.to_vec();
                    full.insert(reduced[0], free[0].clone());
                    full
                }
            }
        };
        let is_max = matches!(op, Op::Max { .. });
        let start = self.float(if is_max { f64::NEG_INFINITY } else { 0.0 });
        let combine = if is_max {
            "arith.maximumf"
        } else {
            "arith.addf"
        };
        let sizes: Vec<usize> = reduced.iter().map(|&j| arg_shape[j]).collect();
        let total = self.for_each_index(&sizes, vec![start], &mut |s, free, accs| {
            let x = s.eval(arg, &Ix::Multi(full(free)))?;
            Ok(vec![s.float_op(combine, &[&accs[0], &x])])
        })?;
        Ok(total[0].clone())
    }

    /// An `!llvm.ptr` to the first element of buffered node `id`.
    fn pointer(&mut self, id: NodeId) -> Res<Val> {
        let (memref, base) = self.buffer(id)?;
        let ty = self.memref();
        let address = self.assign(format!(
            "memref.extract_aligned_pointer_as_index {memref} : {ty} -> index"
        ));
        let address = self.assign(format!("arith.index_cast {address} : index to i64"));
        let address = if base == 0 {
            address
        } else {
            let bytes = self.int_const((base * self.precision().bytes()) as i64, "i64");
            self.assign(format!("arith.addi {address}, {bytes} : i64"))
        };
        Ok(self.assign(format!("llvm.inttoptr {address} : i64 to !llvm.ptr")))
    }

    /// A matrix operand of a kernel: its pointer and whether it is stored transposed.
    fn operand(&mut self, id: NodeId) -> Res<(Val, bool)> {
        if self.plan.storage(id) == Storage::TransposeFlag {
            Ok((self.pointer(self.args(id)[0])?, true))
        } else {
            Ok((self.pointer(id)?, false))
        }
    }

    /// Calls `name` with `args` (values and their types) and returns from the function with the
    /// status when it is not 0.
    fn call_kernel(&mut self, name: &'static str, args: &[(Val, &str)]) {
        self.used.insert(name);
        let values: Vec<&str> = args.iter().map(|a| a.0.as_str()).collect();
        let types: Vec<&str> = args.iter().map(|a| a.1).collect();
        let status = self.assign(format!(
            "func.call @{name}({}) : ({}) -> i32",
            values.join(", "),
            types.join(", ")
        ));
        let zero = self.int_const(0, "i32");
        let failed = self.assign(format!("arith.cmpi ne, {status}, {zero} : i32"));
        let next = self.block();
        self.line(format!("cf.cond_br {failed}, ^ret({status} : i32), {next}"));
        self.body.push_str(&format!("  {next}:\n"));
    }

    fn kernel(&mut self, id: NodeId) -> Res<()> {
        let args = self.args(id);
        let out = self.pointer(id)?;
        let i64_of = |s: &mut Self, n: usize| (s.int_const(n as i64, "i64"), "i64");
        let square = self.plan.shape(args[0]).first().copied().unwrap_or(0);
        match self.op(id) {
            Op::MatMul => {
                let (a, ta) = self.operand(args[0])?;
                let (b, tb) = self.operand(args[1])?;
                let (sa, sb) = (self.plan.shape(args[0]), self.plan.shape(args[1]));
                let (m, k) = match *sa {
                    [k] => (1, k),
                    [m, k] => (m, k),
                    _ => return Err(MlirError::Internal("matmul operand rank")),
                };
                let n = if sb.len() == 2 { sb[1] } else { 1 };
                let mut call = vec![(a, "!llvm.ptr"), (b, "!llvm.ptr"), (out, "!llvm.ptr")];
                for size in [m, k, n] {
                    call.push(i64_of(self, size));
                }
                for flag in [ta, tb] {
                    call.push((self.int_const(flag as i64, "i32"), "i32"));
                }
                self.call_kernel("optc_kernel_matmul", &call);
            }
            Op::LogDet | Op::Inv if self.plan.shared_lu[id.0 as usize].is_some() => {
                // A logdet and an inv of one matrix, from one LU (the plan's pairing).
                let partner = self.plan.shared_lu[id.0 as usize].expect("checked");
                let other = self.pointer(partner)?;
                let (logdet, inv) = if *self.op(id) == Op::LogDet {
                    (out, other)
                } else {
                    (other, out)
                };
                let a = self.pointer(args[0])?;
                let n = i64_of(self, square);
                self.call_kernel(
                    "optc_kernel_logdet_inv",
                    &[
                        (a, "!llvm.ptr"),
                        (logdet, "!llvm.ptr"),
                        (inv, "!llvm.ptr"),
                        n,
                    ],
                );
            }
            Op::LogDet | Op::Inv | Op::Expm | Op::SortDesc => {
                let name = match self.op(id) {
                    Op::LogDet => "optc_kernel_logdet",
                    Op::Inv => "optc_kernel_inv",
                    Op::Expm => "optc_kernel_expm",
                    _ => "optc_kernel_sort_desc",
                };
                let a = self.pointer(args[0])?;
                let n = i64_of(self, square);
                self.call_kernel(name, &[(a, "!llvm.ptr"), (out, "!llvm.ptr"), n]);
            }
            Op::Solve => {
                let (a, b) = (self.pointer(args[0])?, self.pointer(args[1])?);
                let shape_b = self.plan.shape(args[1]);
                let m = if shape_b.len() == 2 { shape_b[1] } else { 1 };
                let (n, m) = (i64_of(self, square), i64_of(self, m));
                self.call_kernel(
                    "optc_kernel_solve",
                    &[(a, "!llvm.ptr"), (b, "!llvm.ptr"), (out, "!llvm.ptr"), n, m],
                );
            }
            Op::TopK(_) => {
                let x = self.pointer(args[0])?;
                let n = i64_of(self, square);
                let k = i64_of(self, self.plan.numel(id));
                self.call_kernel(
                    "optc_kernel_topk",
                    &[(x, "!llvm.ptr"), (out, "!llvm.ptr"), n, k],
                );
            }
            Op::NuclearNorm => {
                let a = self.pointer(args[0])?;
                let m = i64_of(self, square);
                let n = i64_of(self, self.size(args[0], 1));
                self.call_kernel(
                    "optc_kernel_nuclear_norm",
                    &[(a, "!llvm.ptr"), (out, "!llvm.ptr"), m, n],
                );
            }
            _ => return Err(MlirError::Internal("no kernel for this op")),
        }
        Ok(())
    }

    /// Copies buffered node `id` into output `k`.
    fn copy(&mut self, id: NodeId, k: u32) -> Res<()> {
        let (src, base) = self.buffer(id)?;
        let _ = writeln!(self.body, "    // output {k} = copy of {id}");
        let dst = format!("%out{k}");
        self.for_range(self.plan.numel(id), Vec::new(), &mut |s, i, _| {
            let v = s.load(&src, base, Some(i));
            s.store(&v, &dst, 0, Some(i));
            Ok(Vec::new())
        })?;
        Ok(())
    }
}

impl crate::math::Lines for Emitter<'_> {
    fn assign(&mut self, rhs: &str) -> Val {
        Emitter::assign(self, rhs)
    }
}
