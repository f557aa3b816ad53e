//! CLIF construction: the scheduled nodes of a [`Plan`] become loops and kernel calls of one
//! function `(inputs, outputs, scratch) -> status` (see the ABI in [`super`]).
//!
//! A buffered node is computed by loops over its own index space; the expression of each element
//! is built by [`Lower::eval`], which recurses through fused arguments (remapping indices for
//! broadcasting, transposes, slices, diagonals, expand, pad and scatter) and loads buffered ones.
//! When the whole fused expression is elementwise and every buffer it reads has the loop's size or
//! one element, a single flat loop replaces the loop nest.
//!
//! # Vector loops
//! On x86-64 and AArch64 the innermost loop runs over groups of [`LANES`] consecutive elements as
//! `f64x2` values (Cranelift's x64 backend encodes 128-bit vectors only, AVX merely re-encodes
//! them, so wider vectors are not available), followed by one scalar step per remaining element.
//! The same emitter builds both: an [`Ix`] carries the axis along which its lanes run, and
//! [`Lower::eval`] loads a vector where that axis is the buffer's last one (stride 1), gathers the
//! lanes with two scalar loads where it is another axis (transposed reads), and loads a scalar
//! where the element does not depend on the lanes (stride 0: broadcasts, constants, `select` and
//! `scatter` positions); scalars are splat only where they meet a vector; `eye` and `diag`
//! compare a vector of lane positions. A loop stays scalar when a value that depends on the lanes
//! calls a runtime function (exp, log, tanh, sigmoid, softplus, pow but squares: unpacking the
//! lanes for one call each measured about 6% more instructions than the scalar loop), when a
//! fused index remapping has no lane axis for its argument (diagonal access) or when the
//! lane index enters other index arithmetic (the padded axis of `pad`, the scattered axis of
//! `scatter`); so do the index-tracking loops (argmax, trace) and the exp passes of log-sum-exp.
//! Reductions to a scalar run their vector steps in unrolled pairs into two vector accumulators
//! (so that consecutive adds do not wait on each other), combined lane by lane at the end (a sum
//! adds the lanes' partial sums, then the scalar tail); when the reduced axis is the lane axis of
//! a reduction into a buffer, the lanes of each group are combined before adding it to the
//! buffer.

use super::kernels::{self, Param};
use super::plan::{is_elementwise, is_pointwise, Plan, Storage};
use super::CpuError;
use crate::interp;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F64, F64X2, I32, I64, I64X2};
use cranelift_codegen::ir::{
    AbiParam, Block, Endianness, FuncRef, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{Linkage, Module};
use optc_compiler::fusion::PlanError;
use optc_compiler::ir::{BinaryOp, NodeId, Op, Program, UnaryOp};
use std::collections::HashMap;

type Res<T> = Result<T, CpuError>;

/// Elements per vector of a vector loop.
pub const LANES: usize = 2;
/// The vector type of a vector loop: [`LANES`] × f64.
const VECTOR: Type = F64X2;
/// Whether the host's Cranelift backend has `f64x2` (the JIT compiles for the host).
const SIMD: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The axis of a node's index space along which the lanes of a vector run, `None` when the
/// element is a scalar (a scalar loop, or a value that is the same for every lane).
type Lane = Option<usize>;

/// What a fold merges of each element.
#[derive(Clone, Copy)]
enum Element {
    /// The element itself.
    Itself,
    /// 1 where |x| > 0, else 0 (NaN counts 0, as in the interpreter's `card`).
    NonZero,
    /// `exp(x - shift)`: a call, so its folds run scalar steps only.
    ShiftedExp(Value),
}

/// The body of a loop nest: emits the work at one index (with the lane axis of vector steps).
type IndexBody<'b, L> = dyn FnMut(&mut L, &[Value], Lane) -> Res<()> + 'b;

/// The position of an element: one flat index (elementwise loops) or one index per axis, with the
/// lane axis of vector loops (for a flat index, `Some(0)`). With lanes, the index names the first
/// of [`LANES`] elements that are consecutive along the lane axis.
enum Ix {
    Flat(Value, Lane),
    Multi(Vec<Value>, Lane),
}

impl Ix {
    fn lane(&self) -> Lane {
        match self {
            Ix::Flat(_, lane) | Ix::Multi(_, lane) => *lane,
        }
    }
}

pub struct Lower<'a, 'f, M: Module> {
    program: &'a Program,
    plan: &'a Plan,
    dims: &'a [u64],
    module: &'a mut M,
    b: FunctionBuilder<'f>,
    ptr: Type,
    imports: HashMap<&'static str, FuncRef>,
    /// Base address of each buffered node, defined in the entry block.
    bases: Vec<Option<Value>>,
    scratch: Value,
    /// Returns its `i32` parameter.
    ret: Block,
    /// The checked position (`i64`) of each `select` and `scatter`, defined before the loops of
    /// the node that computes it (see [`Lower::check_indices`]).
    positions: HashMap<NodeId, Value>,
    /// Whether [`Self::for_lanes`] runs two vector steps per iteration (set by [`Self::fold`],
    /// whose two accumulators then take alternate steps).
    unroll_vector_steps: bool,
}

impl<'a, 'f, M: Module> Lower<'a, 'f, M> {
    /// Emits the whole function into `b`, whose signature must be `(ptr, ptr, ptr) -> i32`.
    pub fn run(
        program: &'a Program,
        plan: &'a Plan,
        dims: &'a [u64],
        module: &'a mut M,
        mut b: FunctionBuilder<'f>,
    ) -> Res<()> {
        let ptr = module.target_config().pointer_type();
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (inputs, outputs, scratch) = (params[0], params[1], params[2]);
        let ret = b.create_block();
        b.append_block_param(ret, I32);
        let mut bases = vec![None; plan.storage.len()];
        for (i, storage) in plan.storage.iter().enumerate() {
            let table_entry = |b: &mut FunctionBuilder, table: Value, k: u32| {
                b.ins().load(
                    ptr,
                    MemFlagsData::trusted(),
                    table,
                    (k as i32) * ptr.bytes() as i32,
                )
            };
            bases[i] = match *storage {
                Storage::Input(k) => Some(table_entry(&mut b, inputs, k)),
                Storage::Output(k) => Some(table_entry(&mut b, outputs, k)),
                Storage::Scratch(at) => Some(b.ins().iadd_imm_s(scratch, (at * 8) as i64)),
                _ => None,
            };
        }
        let mut lower = Lower {
            program,
            plan,
            dims,
            module,
            b,
            ptr,
            imports: HashMap::new(),
            bases,
            scratch,
            ret,
            positions: HashMap::new(),
            unroll_vector_steps: false,
        };
        for &id in &plan.schedule {
            lower.node(id)?;
        }
        for &(k, id) in &plan.copies {
            let out = lower.b.ins().load(
                ptr,
                MemFlagsData::trusted(),
                outputs,
                (k as i32) * ptr.bytes() as i32,
            );
            lower.copy(id, out)?;
        }
        let ok = lower.b.ins().iconst(I32, kernels::OK as i64);
        lower.b.ins().jump(ret, &[ok.into()]);
        lower.b.switch_to_block(ret);
        let status = lower.b.block_params(ret)[0];
        lower.b.ins().return_(&[status]);
        lower.b.seal_all_blocks();
        let config = lower.module.target_config();
        lower.b.finalize(config);
        Ok(())
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

    /// The buffer a node is read from (a transpose folded into matmul flags reads its argument).
    fn base(&self, id: NodeId) -> Res<Value> {
        self.bases[id.0 as usize].ok_or(CpuError::Internal("read of an unbuffered node"))
    }

    fn import(&mut self, name: &'static str) -> Res<FuncRef> {
        if let Some(&f) = self.imports.get(name) {
            return Ok(f);
        }
        let symbol = kernels::symbols()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or(CpuError::Internal("unknown runtime symbol"))?;
        let mut sig = self.module.make_signature();
        for p in symbol.params {
            sig.params.push(AbiParam::new(match p {
                Param::Ptr => self.ptr,
                Param::I64 => I64,
                Param::I32 => I32,
                Param::F64 => F64,
            }));
        }
        sig.returns
            .push(AbiParam::new(if symbol.returns_status { I32 } else { F64 }));
        let id = self
            .module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| CpuError::Codegen(e.to_string()))?;
        let f = self.module.declare_func_in_func(id, self.b.func);
        self.imports.insert(name, f);
        Ok(f)
    }

    fn call_f64(&mut self, name: &'static str, args: &[Value]) -> Res<Value> {
        let f = self.import(name)?;
        let call = self.b.ins().call(f, args);
        Ok(self.b.inst_results(call)[0])
    }

    /// Calls a kernel and returns its status from the function when it is not OK.
    fn call_kernel(&mut self, name: &'static str, args: &[Value]) -> Res<()> {
        let f = self.import(name)?;
        let call = self.b.ins().call(f, args);
        let status = self.b.inst_results(call)[0];
        let next = self.b.create_block();
        self.b
            .ins()
            .brif(status, self.ret, &[status.into()], next, &[]);
        self.b.switch_to_block(next);
        Ok(())
    }

    fn int(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    fn float(&mut self, v: f64) -> Value {
        self.b.ins().f64const(v)
    }

    /// Runs `body(i)` for i in 0..n (inline when n ≤ 1).
    fn for_range(&mut self, n: usize, body: impl FnMut(&mut Self, Value) -> Res<()>) -> Res<()> {
        self.for_step(n, 1, body)
    }

    /// Runs `body(i)` for i = 0, step, 2·step, … below n, a multiple of `step` (inline when
    /// n ≤ step).
    fn for_step(
        &mut self,
        n: usize,
        step: usize,
        mut body: impl FnMut(&mut Self, Value) -> Res<()>,
    ) -> Res<()> {
        if n == 0 {
            return Ok(());
        }
        if n == step {
            let zero = self.int(0);
            return body(self, zero);
        }
        let counter = self.b.declare_var(I64);
        let zero = self.int(0);
        self.b.def_var(counter, zero);
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(counter);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, n as i64);
        self.b.ins().brif(more, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// Whether a loop of `n` iterations with vectorizable elements runs vector steps.
    fn vector_steps(n: usize, vectorizable: bool) -> bool {
        SIMD && vectorizable && n >= LANES
    }

    /// Runs `body(i, lanes)` for i in 0..n: when [`Self::vector_steps`], with `lanes` over the
    /// groups i = 0, LANES, … that fit, then without for each remaining element.
    fn for_lanes(
        &mut self,
        n: usize,
        vectorizable: bool,
        mut body: impl FnMut(&mut Self, Value, bool) -> Res<()>,
    ) -> Res<()> {
        let grouped = if Self::vector_steps(n, vectorizable) {
            n - n % LANES
        } else {
            0
        };
        // Unrolled: pairs of vector steps, then at most one vector step alone.
        let pairs = if self.unroll_vector_steps {
            grouped - grouped % (2 * LANES)
        } else {
            0
        };
        self.for_step(pairs, 2 * LANES, |s, i| {
            body(s, i, true)?;
            let next = s.b.ins().iadd_imm_s(i, LANES as i64);
            body(s, next, true)
        })?;
        self.for_step(grouped - pairs, LANES, |s, j| {
            let i = if pairs == 0 {
                j
            } else {
                s.b.ins().iadd_imm_s(j, pairs as i64)
            };
            body(s, i, true)
        })?;
        self.for_range(n - grouped, |s, j| {
            let i = if grouped == 0 {
                j
            } else {
                s.b.ins().iadd_imm_s(j, grouped as i64)
            };
            body(s, i, false)
        })
    }

    /// Runs `body(idx, lane)` over every index of `shape`, row-major; with `vectorizable`, the
    /// innermost loop runs vector steps (see [`Self::for_lanes`]) whose lane axis is the last.
    fn for_each_index(
        &mut self,
        shape: &[usize],
        vectorizable: bool,
        prefix: &mut Vec<Value>,
        body: &mut IndexBody<'_, Self>,
    ) -> Res<()> {
        let axis = prefix.len();
        if axis == shape.len() {
            return body(self, prefix, None);
        }
        if axis + 1 == shape.len() {
            return self.for_lanes(shape[axis], vectorizable, |s, i, lanes| {
                prefix.push(i);
                let done = body(s, prefix, lanes.then_some(axis));
                prefix.pop();
                done
            });
        }
        self.for_range(shape[axis], |s, i| {
            prefix.push(i);
            let done = s.for_each_index(shape, vectorizable, prefix, body);
            prefix.pop();
            done
        })
    }

    /// Row-major element offset of `idx` in `shape` (`None` for 0); size-1 axes contribute nothing.
    fn linear(&mut self, shape: &[usize], idx: &[Value]) -> Option<Value> {
        let mut stride = 1i64;
        let mut offset: Option<Value> = None;
        for (axis, &size) in shape.iter().enumerate().rev() {
            if size != 1 {
                let term = if stride == 1 {
                    idx[axis]
                } else {
                    self.b.ins().imul_imm_s(idx[axis], stride)
                };
                offset = Some(match offset {
                    None => term,
                    Some(o) => self.b.ins().iadd(o, term),
                });
            }
            stride *= size as i64;
        }
        offset
    }

    fn address(&mut self, base: Value, offset: Option<Value>) -> Value {
        match offset {
            None => base,
            Some(o) => {
                let bytes = self.b.ins().ishl_imm_u(o, 3);
                self.b.ins().iadd(base, bytes)
            }
        }
    }

    /// Flags of an access of type `ty` to our arrays: vectors are only 8-byte aligned, so they
    /// must not claim alignment (x64 would fold them into SSE operands that require 16).
    fn mem_flags(ty: Type) -> MemFlagsData {
        if ty.is_vector() {
            MemFlagsData::new().with_notrap()
        } else {
            MemFlagsData::trusted()
        }
    }

    /// The element at `offset`, or with `lanes` the vector of elements from there.
    fn load_at(&mut self, base: Value, offset: Option<Value>, lanes: bool) -> Value {
        let ty = if lanes { VECTOR } else { F64 };
        self.load_with(ty, Self::mem_flags(ty), base, offset)
    }

    fn load_with(
        &mut self,
        ty: Type,
        flags: MemFlagsData,
        base: Value,
        offset: Option<Value>,
    ) -> Value {
        let addr = self.address(base, offset);
        self.b.ins().load(ty, flags, addr, 0)
    }

    /// Stores the scalar or vector `v` at `offset`.
    fn store_at(&mut self, base: Value, offset: Option<Value>, v: Value) {
        let addr = self.address(base, offset);
        let flags = Self::mem_flags(self.ty(v));
        self.b.ins().store(flags, v, addr, 0);
    }

    fn ty(&self, v: Value) -> Type {
        self.b.func.dfg.value_type(v)
    }

    /// `v` as a vector (a scalar is splat).
    fn widen(&mut self, v: Value) -> Value {
        if self.ty(v).is_vector() {
            v
        } else {
            self.b.ins().splat(VECTOR, v)
        }
    }

    /// `v`, splat when `lanes`: the value to store or combine at a position with or without lanes.
    fn widen_if(&mut self, lanes: bool, v: Value) -> Value {
        if lanes {
            self.widen(v)
        } else {
            v
        }
    }

    /// `a` and `c` with the same type: a scalar meeting a vector is splat.
    fn unify(&mut self, a: Value, c: Value) -> (Value, Value) {
        match (self.ty(a).is_vector(), self.ty(c).is_vector()) {
            (true, false) => (a, self.widen(c)),
            (false, true) => (self.widen(a), c),
            _ => (a, c),
        }
    }

    /// `yes` where `cond` holds, else `no`, per lane (a vector condition is an `fcmp` lane mask).
    fn choose(&mut self, cond: Value, yes: Value, no: Value) -> Value {
        let (yes, no) = self.unify(yes, no);
        if self.ty(cond).is_vector() {
            let (yes, no) = (self.widen(yes), self.widen(no));
            let flags = MemFlagsData::new().with_endianness(Endianness::Little);
            let mask = self.b.ins().bitcast(VECTOR, flags, cond);
            self.b.ins().bitselect(mask, yes, no)
        } else {
            self.select_scalar(cond, yes, no)
        }
    }

    /// `yes` if `cond`, else `no`, for scalars. Floats are selected as their bit patterns:
    /// x64 has no conditional move between XMM registers, and Cranelift lowers a float `select`
    /// to branches, which data-dependent conditions (`sign`, `abs` of mixed signs) mispredict.
    fn select_scalar(&mut self, cond: Value, yes: Value, no: Value) -> Value {
        if self.ty(yes) != F64 {
            return self.b.ins().select(cond, yes, no);
        }
        let flags = MemFlagsData::new();
        let yes = self.b.ins().bitcast(I64, flags, yes);
        let no = self.b.ins().bitcast(I64, flags, no);
        let bits = self.b.ins().select(cond, yes, no);
        self.b.ins().bitcast(F64, flags, bits)
    }

    /// Compares `a` and `c` per lane.
    fn compare(&mut self, cc: FloatCC, a: Value, c: Value) -> Value {
        let (a, c) = self.unify(a, c);
        self.b.ins().fcmp(cc, a, c)
    }

    /// Combines the lanes of vector `v` with `op` (a scalar `v` is returned as is).
    fn combine_lanes(&mut self, op: BinaryOp, v: Value) -> Res<Value> {
        if !self.ty(v).is_vector() {
            return Ok(v);
        }
        let mut acc = self.b.ins().extractlane(v, 0);
        for lane in 1..LANES {
            let x = self.b.ins().extractlane(v, lane as u8);
            acc = self.binary(op, acc, x)?;
        }
        Ok(acc)
    }

    /// Element offset of `ix` in the buffer of `id`.
    fn offset(&mut self, id: NodeId, ix: &Ix) -> Option<Value> {
        match ix {
            Ix::Flat(i, _) => (self.plan.numel(id) != 1).then_some(*i),
            Ix::Multi(idx, _) => {
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

    /// Whether the elements of buffered-or-fused `id` can be visited with one flat loop.
    fn flat_scan_ok(&self, id: NodeId) -> bool {
        let numel = self.plan.numel(id);
        self.plan.is_buffered(id) || self.flat_ok(id, numel)
    }

    /// The lane axis of argument `k` of fused node `id` computed with lane axis `lane` (in a
    /// flat loop with `flat`), or `None` when that argument's lanes would not be consecutive
    /// elements along one of its axes or one element.
    fn arg_lane(&self, id: NodeId, k: usize, lane: Lane, flat: bool) -> Option<Lane> {
        let Some(l) = lane else {
            return Some(None);
        };
        let arg = self.args(id)[k];
        if flat {
            return Some((self.plan.numel(arg) != 1).then_some(l));
        }
        // The axis `l` of `id` is `l` of its argument after removing (inserting) axis `a`.
        let removed = |a: usize| if l > a { l - 1 } else { l };
        let inserted = |a: usize| if l >= a { l + 1 } else { l };
        Some(match self.op(id) {
            Op::Unary(_) | Op::Slice { .. } => lane,
            Op::Binary(_) | Op::BroadcastTo(_) => {
                let shape = self.plan.shape(arg);
                let drop = self.plan.shape(id).len() - shape.len();
                (l >= drop && shape[l - drop] != 1).then(|| l - drop)
            }
            Op::Transpose => Some(1 - l),
            Op::Diag => (l == 0).then_some(0),
            Op::Select { axis } => (k == 0).then(|| inserted(*axis as usize)),
            Op::Expand { axis, .. } => (l != *axis as usize).then(|| removed(*axis as usize)),
            Op::Pad { axis, .. } if l != *axis as usize => lane,
            Op::Scatter { axis, .. } if l != *axis as usize => {
                (k == 0).then(|| removed(*axis as usize))
            }
            _ => return None,
        })
    }

    /// [`Self::arg_lane`] for the element `ix` of `id`, which must have been checked.
    fn lane_of_arg(&self, id: NodeId, k: usize, ix: &Ix) -> Res<Lane> {
        self.arg_lane(id, k, ix.lane(), matches!(ix, Ix::Flat(..)))
            .ok_or(CpuError::Internal("vector read across lanes"))
    }

    /// Whether the op of fused `id` has a vector form: every op but calls of runtime functions.
    fn has_vector_form(&self, id: NodeId) -> bool {
        match self.op(id) {
            Op::Unary(u) => matches!(
                u,
                UnaryOp::Neg | UnaryOp::Sqrt | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Step
            ),
            Op::Binary(BinaryOp::Pow) => self.op(self.args(id)[1]) == &Op::Const(2.0),
            _ => true,
        }
    }

    /// Whether `id`, read with lane axis `lane` (in a flat loop with `flat`), can be computed
    /// with vectors: every op whose value depends on the lanes has a vector form, and every
    /// buffer below it is read along one of its axes (gathered unless the last) or at one element
    /// for all lanes.
    fn lanes_ok(&self, id: NodeId, lane: Lane, flat: bool) -> bool {
        match lane {
            None => true,
            Some(l) if self.plan.is_buffered(id) => flat || l < self.plan.shape(id).len(),
            Some(_) => self.op_lanes_ok(id, lane, flat),
        }
    }

    /// [`Self::lanes_ok`] for the expression of pointwise `id` itself (buffered or not).
    fn op_lanes_ok(&self, id: NodeId, lane: Lane, flat: bool) -> bool {
        let args = self.args(id);
        self.has_vector_form(id)
            && (0..args.len()).all(|k| {
                self.arg_lane(id, k, lane, flat)
                    .is_some_and(|arg_lane| self.lanes_ok(args[k], arg_lane, flat))
            })
    }

    /// Whether a scan of `id` is one flat loop (else a loop nest), and whether the elements of
    /// its innermost loop can be computed with vectors.
    fn scan_kind(&self, id: NodeId, multi: bool) -> (bool, bool) {
        if !multi && self.flat_scan_ok(id) {
            return (true, self.lanes_ok(id, Some(0), true));
        }
        let rank = self.plan.shape(id).len();
        (false, rank > 0 && self.lanes_ok(id, Some(rank - 1), false))
    }

    /// Whether a scan of `id` runs vector steps.
    fn scan_has_lanes(&self, id: NodeId, multi: bool) -> bool {
        let (flat, vectorizable) = self.scan_kind(id, multi);
        let inner = if flat {
            self.plan.numel(id)
        } else {
            self.plan.shape(id).last().copied().unwrap_or(1)
        };
        Self::vector_steps(inner, vectorizable)
    }

    /// Visits every element of `id` (row-major) with its index and value; with `lanes`, `body`
    /// also takes groups of elements (an index with a lane axis, a vector or a scalar shared by
    /// the lanes), when [`Self::scan_has_lanes`].
    fn scan(
        &mut self,
        id: NodeId,
        multi: bool,
        lanes: bool,
        body: &mut dyn FnMut(&mut Self, &Ix, Value) -> Res<()>,
    ) -> Res<()> {
        let (flat, vectorizable) = self.scan_kind(id, multi);
        let vectorize = lanes && vectorizable;
        if flat {
            self.for_lanes(self.plan.numel(id), vectorize, |s, i, group| {
                let ix = Ix::Flat(i, group.then_some(0));
                let v = s.eval(id, &ix)?;
                body(s, &ix, v)
            })
        } else {
            let shape = self.plan.shape(id).to_vec();
            self.for_each_index(&shape, vectorize, &mut Vec::new(), &mut |s, idx, lane| {
                let ix = Ix::Multi(idx.to_vec(), lane);
                let v = s.eval(id, &ix)?;
                body(s, &ix, v)
            })
        }
    }

    /// Row-major flat position of `ix` within `id`'s index space.
    fn flat_index(&mut self, id: NodeId, ix: &Ix) -> Option<Value> {
        match ix {
            Ix::Flat(i, _) => Some(*i),
            Ix::Multi(idx, _) => {
                let shape = self.plan.shape(id).to_vec();
                self.linear(&shape, idx)
            }
        }
    }

    /// The value of `id` at `ix`: a load when buffered, else its fused expression; a vector
    /// when `ix` has lanes, except for values shared by the lanes.
    fn eval(&mut self, id: NodeId, ix: &Ix) -> Res<Value> {
        if !self.plan.is_buffered(id) {
            return self.eval_op(id, ix);
        }
        let base = self.base(id)?;
        let offset = self.offset(id, ix);
        let shape = self.plan.shape(id);
        // Elements between the lanes: 1 along the last axis, else a gathered (strided) read.
        let (ty, lane_stride) = match *ix {
            Ix::Multi(_, Some(l)) => (VECTOR, shape[l + 1..].iter().product::<usize>()),
            Ix::Flat(_, Some(_)) => (VECTOR, 1),
            _ => (F64, 1),
        };
        // The caller's input arrays are never written while the function runs, so their loads
        // may move (loop-invariant ones, such as scalars, leave the loop).
        let flags = |ty| match self.plan.storage(id) {
            Storage::Input(_) => Self::mem_flags(ty).with_readonly().with_can_move(),
            _ => Self::mem_flags(ty),
        };
        if ty == VECTOR && lane_stride != 1 {
            let flags = flags(F64);
            let addr = self.address(base, offset);
            let first = self.b.ins().load(F64, flags, addr, 0);
            let second = self.b.ins().load(F64, flags, addr, 8 * lane_stride as i32);
            let lanes = self.b.ins().scalar_to_vector(VECTOR, first);
            return Ok(self.b.ins().insertlane(lanes, second, 1));
        }
        let flags = flags(ty);
        Ok(self.load_with(ty, flags, base, offset))
    }

    /// The index of argument `k` of `id` (broadcast to the shape of `id`) for the element `ix`.
    fn broadcast_ix(&mut self, id: NodeId, k: usize, ix: &Ix) -> Res<Ix> {
        let lane = self.lane_of_arg(id, k, ix)?;
        Ok(match ix {
            Ix::Flat(i, _) => Ix::Flat(*i, lane),
            Ix::Multi(idx, _) => {
                let shape = self.plan.shape(self.args(id)[k]).to_vec();
                let drop = idx.len() - shape.len();
                let idx = shape
                    .iter()
                    .enumerate()
                    .map(|(j, &size)| {
                        if size == 1 {
                            self.int(0)
                        } else {
                            idx[drop + j]
                        }
                    })
                    .collect();
                Ix::Multi(idx, lane)
            }
        })
    }

    fn multi(ix: &Ix) -> Res<&[Value]> {
        match ix {
            Ix::Multi(idx, _) => Ok(idx),
            Ix::Flat(..) => Err(CpuError::Internal("flat index for an index-remapping op")),
        }
    }

    /// The value of pointwise node `id` at `ix`, computed from its arguments.
    fn eval_op(&mut self, id: NodeId, ix: &Ix) -> Res<Value> {
        let args = self.args(id);
        // Argument `k` at the index `idx` of its own index space.
        let at = |s: &Self, k: usize, idx: Vec<Value>| -> Res<Ix> {
            Ok(Ix::Multi(idx, s.lane_of_arg(id, k, ix)?))
        };
        Ok(match self.op(id) {
            Op::Const(c) => self.float(*c),
            Op::DimSize(d) => self.float(d.eval(self.dims) as f64),
            Op::Unary(u) => {
                let x = self.eval(args[0], ix)?;
                self.unary(*u, x)?
            }
            Op::Binary(o) => {
                let (ia, ib) = (self.broadcast_ix(id, 0, ix)?, self.broadcast_ix(id, 1, ix)?);
                let a = self.eval(args[0], &ia)?;
                if *o == BinaryOp::Pow && self.op(args[1]) == &Op::Const(2.0) {
                    return Ok(self.b.ins().fmul(a, a));
                }
                let c = self.eval(args[1], &ib)?;
                self.binary(*o, a, c)?
            }
            Op::BroadcastTo(_) => {
                let ia = self.broadcast_ix(id, 0, ix)?;
                self.eval(args[0], &ia)?
            }
            Op::Eye(_) => {
                let same = self.same_index(ix, 0, 1)?;
                let (one, zero) = (self.float(1.0), self.float(0.0));
                self.choose(same, one, zero)
            }
            Op::Transpose => {
                let idx = Self::multi(ix)?;
                let ia = at(self, 0, vec![idx[1], idx[0]])?;
                self.eval(args[0], &ia)?
            }
            Op::Slice { axis, start, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                let a = *axis as usize;
                idx[a] = self.b.ins().iadd_imm_s(idx[a], start.eval(self.dims));
                let ia = at(self, 0, idx)?;
                self.eval(args[0], &ia)?
            }
            Op::DiagPart => {
                let i = Self::multi(ix)?[0];
                let ia = at(self, 0, vec![i, i])?;
                self.eval(args[0], &ia)?
            }
            Op::Diag => {
                let i = Self::multi(ix)?[0];
                let ia = at(self, 0, vec![i])?;
                let v = self.eval(args[0], &ia)?;
                let same = self.same_index(ix, 0, 1)?;
                let zero = self.float(0.0);
                self.choose(same, v, zero)
            }
            Op::Select { axis } => {
                let position = self.position(id)?;
                let mut idx = Self::multi(ix)?.to_vec();
                idx.insert(*axis as usize, position);
                let ia = at(self, 0, idx)?;
                self.eval(args[0], &ia)?
            }
            Op::Expand { axis, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                idx.remove(*axis as usize);
                let ia = at(self, 0, idx)?;
                self.eval(args[0], &ia)?
            }
            Op::Pad { axis, start, .. } => {
                let a = *axis as usize;
                let len = self.size(args[0], a) as i64;
                if len == 0 {
                    return Ok(self.float(0.0));
                }
                let mut idx = Self::multi(ix)?.to_vec();
                let shifted = self.b.ins().iadd_imm_s(idx[a], -start.eval(self.dims));
                let inside = self
                    .b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedLessThan, shifted, len);
                // Padding positions read the nearest element in range, then select 0.
                let (lo, hi) = (self.int(0), self.int(len - 1));
                let clamped = self.b.ins().smax(shifted, lo);
                idx[a] = self.b.ins().smin(clamped, hi);
                let ia = at(self, 0, idx)?;
                let v = self.eval(args[0], &ia)?;
                let zero = self.float(0.0);
                self.choose(inside, v, zero)
            }
            Op::Scatter { axis, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                let here = idx.remove(*axis as usize);
                let position = self.position(id)?;
                let hit = self.b.ins().icmp(IntCC::Equal, here, position);
                let ia = at(self, 0, idx)?;
                let v = self.eval(args[0], &ia)?;
                let zero = self.float(0.0);
                self.choose(hit, v, zero)
            }
            _ => return Err(CpuError::Internal("fused a non-pointwise op")),
        })
    }

    /// The position [`Self::check_indices`] defined for `select` or `scatter` node `id`.
    fn position(&self, id: NodeId) -> Res<Value> {
        self.positions
            .get(&id)
            .copied()
            .ok_or(CpuError::Internal("an index read before its check"))
    }

    /// Checks the index of every `select` and `scatter` that the loops of `id` compute (`id`
    /// itself and its fused arguments, the inner ones first, as an index may select) once, before
    /// those loops, and records their positions. A constant index in range needs no check.
    fn check_indices(&mut self, id: NodeId) -> Res<()> {
        for &arg in self.args(id) {
            if self.plan.storage(arg) == Storage::Fused && !self.positions.contains_key(&arg) {
                self.check_indices(arg)?;
            }
        }
        let len = match self.op(id) {
            Op::Select { axis } => self.size(self.args(id)[0], *axis as usize),
            Op::Scatter { axis, .. } => self.size(id, *axis as usize),
            _ => return Ok(()),
        };
        let index_node = self.args(id)[1];
        let known = match self.op(index_node) {
            Op::Const(c) => Some(*c),
            Op::DimSize(d) => Some(d.eval(self.dims) as f64),
            _ => None,
        };
        let position = match known.map(|index| interp::position(id, index, len)) {
            Some(Ok(p)) => self.int(p as i64),
            _ => {
                let index = self.eval(index_node, &Ix::Multi(Vec::new(), None))?;
                self.checked_position(id, index, len)
            }
        };
        self.positions.insert(id, position);
        Ok(())
    }

    /// `index` as an `i64` position along an axis of length `len`, after a check that returns
    /// [`kernels::BAD_INDEX`] from the function, with the fault record of node `id`, unless the
    /// index is an integer in `0..len` (the interpreter's rule; NaN fails every comparison).
    fn checked_position(&mut self, id: NodeId, index: Value, len: usize) -> Value {
        let (zero, end) = (self.float(0.0), self.float(len as f64));
        let whole = self.b.ins().floor(index);
        let integral = self.b.ins().fcmp(FloatCC::Equal, whole, index);
        let above = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, index, zero);
        let below = self.b.ins().fcmp(FloatCC::LessThan, index, end);
        let inside = self.b.ins().band(above, below);
        let valid = self.b.ins().band(integral, inside);
        let (fail, next) = (self.b.create_block(), self.b.create_block());
        self.b.set_cold_block(fail);
        self.b.ins().brif(valid, next, &[], fail, &[]);
        self.b.switch_to_block(fail);
        let record = self
            .b
            .ins()
            .iadd_imm_s(self.scratch, (self.plan.scratch_len * 8) as i64);
        let node = self.float(id.0 as f64);
        let flags = MemFlagsData::trusted();
        for (k, v) in [node, index, end].into_iter().enumerate() {
            self.b.ins().store(flags, v, record, 8 * k as i32);
        }
        let status = self.b.ins().iconst(I32, kernels::BAD_INDEX as i64);
        self.b.ins().jump(self.ret, &[status.into()]);
        self.b.switch_to_block(next);
        self.b.ins().fcvt_to_sint_sat(I64, index)
    }

    /// Whether axes `a` and `b` of `ix` have the same index: a condition, or with lanes along
    /// one of them, a lane mask.
    fn same_index(&mut self, ix: &Ix, a: usize, b: usize) -> Res<Value> {
        let idx = Self::multi(ix)?;
        let (i, j) = (idx[a], idx[b]);
        Ok(match ix.lane() {
            Some(l) if l == a || l == b => {
                // Lane k holds `moving + k`: it equals `fixed` where `fixed − moving` is k.
                let (moving, fixed) = if l == a { (i, j) } else { (j, i) };
                let offset = self.b.ins().isub(fixed, moving);
                let offsets = self.b.ins().splat(I64X2, offset);
                let lane_numbers: Vec<u8> = (0..LANES as u64).flat_map(u64::to_le_bytes).collect();
                let lane_numbers = self.b.func.dfg.constants.insert(lane_numbers.into());
                let lane_numbers = self.b.ins().vconst(I64X2, lane_numbers);
                self.b.ins().icmp(IntCC::Equal, offsets, lane_numbers)
            }
            _ => self.b.ins().icmp(IntCC::Equal, i, j),
        })
    }

    /// 1.0 where `i == j`, else 0.0.
    fn indicator(&mut self, i: Value, j: Value) -> Value {
        let same = self.b.ins().icmp(IntCC::Equal, i, j);
        let (one, zero) = (self.float(1.0), self.float(0.0));
        self.select_scalar(same, one, zero)
    }

    /// `op` of the scalar or vector `x`.
    fn unary(&mut self, op: UnaryOp, x: Value) -> Res<Value> {
        let ins = self.b.ins();
        Ok(match op {
            UnaryOp::Neg => ins.fneg(x),
            UnaryOp::Sqrt => ins.sqrt(x),
            UnaryOp::Abs => ins.fabs(x),
            UnaryOp::Sign => {
                let zero = self.float(0.0);
                let (one, minus_one) = (self.float(1.0), self.float(-1.0));
                let negative = self.compare(FloatCC::LessThan, x, zero);
                let positive = self.compare(FloatCC::GreaterThan, x, zero);
                let s = self.choose(negative, minus_one, x);
                self.choose(positive, one, s)
            }
            UnaryOp::Step => {
                // 1 for x ≥ 0, else 0; NaN stays NaN.
                let zero = self.float(0.0);
                let one = self.float(1.0);
                let nonneg = self.compare(FloatCC::GreaterThanOrEqual, x, zero);
                let step = self.choose(nonneg, one, zero);
                let nan = self.compare(FloatCC::Unordered, x, x);
                self.choose(nan, x, step)
            }
            UnaryOp::Exp => self.call_f64("optc_exp", &[x])?,
            UnaryOp::Log => self.call_f64("optc_log", &[x])?,
            UnaryOp::Tanh => self.call_f64("optc_tanh", &[x])?,
            UnaryOp::Sigmoid => self.call_f64("optc_sigmoid", &[x])?,
            UnaryOp::Softplus => self.call_f64("optc_softplus", &[x])?,
        })
    }

    /// `op` of scalars or vectors (a scalar meeting a vector is splat).
    fn binary(&mut self, op: BinaryOp, a: Value, c: Value) -> Res<Value> {
        let (a, c) = self.unify(a, c);
        let ins = self.b.ins();
        Ok(match op {
            BinaryOp::Add => ins.fadd(a, c),
            BinaryOp::Sub => ins.fsub(a, c),
            BinaryOp::Mul => ins.fmul(a, c),
            BinaryOp::Div => ins.fdiv(a, c),
            BinaryOp::Max => ins.fmax(a, c),
            BinaryOp::Min => ins.fmin(a, c),
            BinaryOp::Pow => self.call_f64("optc_pow", &[a, c])?,
        })
    }

    /// Folds every element of `arg`, mapped by `element`, into an accumulator starting at `init`
    /// with `merge` (add or max). Vector steps fold into two vector accumulators, one per
    /// alternate step of the unrolled loop, so that consecutive steps do not wait on each other;
    /// they and the scalar accumulator (which took the remaining elements) join at the end.
    fn fold(&mut self, arg: NodeId, init: f64, merge: BinaryOp, element: Element) -> Res<Value> {
        let acc = self.b.declare_var(F64);
        let start = self.float(init);
        self.b.def_var(acc, start);
        let vector_element = !matches!(element, Element::ShiftedExp(_));
        let lanes = vector_element && self.scan_has_lanes(arg, false);
        let lane_accs = if lanes {
            let starts = self.widen(start);
            let vars = [self.b.declare_var(VECTOR), self.b.declare_var(VECTOR)];
            for var in vars {
                self.b.def_var(var, starts);
            }
            Some(vars)
        } else {
            None
        };
        // Which vector accumulator the next emitted vector step folds into.
        let mut turn = 0;
        self.unroll_vector_steps = lanes;
        let scanned = self.scan(arg, false, lanes, &mut |s, ix, x| {
            let var = match lane_accs {
                Some(vars) if ix.lane().is_some() => {
                    turn ^= 1;
                    vars[turn]
                }
                _ => acc,
            };
            let a = s.b.use_var(var);
            let e = s.element(element, x)?;
            let next = s.binary(merge, a, e)?;
            s.b.def_var(var, next);
            Ok(())
        });
        self.unroll_vector_steps = false;
        scanned?;
        let total = self.b.use_var(acc);
        match lane_accs {
            Some([first, second]) => {
                let (a, b) = (self.b.use_var(first), self.b.use_var(second));
                let both = self.binary(merge, a, b)?;
                let lanes_total = self.combine_lanes(merge, both)?;
                self.binary(merge, lanes_total, total)
            }
            None => Ok(total),
        }
    }

    /// What [`Self::fold`] merges of element `x`.
    fn element(&mut self, element: Element, x: Value) -> Res<Value> {
        Ok(match element {
            Element::Itself => x,
            Element::NonZero => {
                let zero = self.float(0.0);
                let size = self.b.ins().fabs(x);
                let nonzero = self.compare(FloatCC::GreaterThan, size, zero);
                let one = self.float(1.0);
                self.choose(nonzero, one, zero)
            }
            Element::ShiftedExp(shift) => {
                let centered = self.b.ins().fsub(x, shift);
                self.call_f64("optc_exp", &[centered])?
            }
        })
    }

    /// `m` when finite, else 0: the shift that keeps log-sum-exp from overflowing.
    fn lse_shift(&mut self, m: Value) -> Value {
        let diff = self.b.ins().fsub(m, m);
        let finite = self.b.ins().fcmp(FloatCC::Equal, diff, diff);
        let zero = self.float(0.0);
        self.b.ins().select(finite, m, zero)
    }

    fn fill(&mut self, base: Value, numel: usize, value: f64) -> Res<()> {
        self.for_lanes(numel, true, |s, i, group| {
            let v = s.float(value);
            let v = s.widen_if(group, v);
            s.store_at(base, Some(i), v);
            Ok(())
        })
    }

    /// Folds `arg` into the buffer `out` (of shape `out_shape`, already initialized) with
    /// `merge` (add or max): element `idx` of `arg` goes to `out[project(idx)]`. The lanes of a
    /// vector step go to consecutive elements of `out` when `project` keeps the lane axis, else
    /// they are merged first.
    fn fold_into(
        &mut self,
        arg: NodeId,
        out: Value,
        out_shape: &[usize],
        project: &dyn Fn(&[Value]) -> Vec<Value>,
        merge: BinaryOp,
    ) -> Res<()> {
        self.scan(arg, true, true, &mut |s, ix, x| {
            let idx = Self::multi(ix)?;
            let projected = project(idx);
            let spread = match ix.lane() {
                Some(l) => projected.last() == Some(&idx[l]) && out_shape.last() != Some(&1),
                None => false,
            };
            let x = s.widen_if(ix.lane().is_some(), x);
            let x = if spread {
                x
            } else {
                s.combine_lanes(merge, x)?
            };
            let o = s.linear(out_shape, &projected);
            let current = s.load_at(out, o, spread);
            let next = s.binary(merge, current, x)?;
            s.store_at(out, o, next);
            Ok(())
        })
    }

    fn node(&mut self, id: NodeId) -> Res<()> {
        self.check_indices(id)?;
        let op = self.op(id);
        let args = self.args(id);
        let out = self.base(id)?;
        let (add, max) = (BinaryOp::Add, BinaryOp::Max);
        if is_pointwise(op) {
            let numel = self.plan.numel(id);
            if is_elementwise(op) && args.iter().all(|&a| self.flat_ok(a, numel)) {
                let vectorizable = self.op_lanes_ok(id, Some(0), true);
                return self.for_lanes(numel, vectorizable, |s, i, group| {
                    let v = s.eval_op(id, &Ix::Flat(i, group.then_some(0)))?;
                    let v = s.widen_if(group, v);
                    s.store_at(out, Some(i), v);
                    Ok(())
                });
            }
            let shape = self.plan.shape(id).to_vec();
            let vectorizable =
                !shape.is_empty() && self.op_lanes_ok(id, Some(shape.len() - 1), false);
            return self.for_each_index(
                &shape,
                vectorizable,
                &mut Vec::new(),
                &mut |s, idx, lane| {
                    let v = s.eval_op(id, &Ix::Multi(idx.to_vec(), lane))?;
                    let v = s.widen_if(lane.is_some(), v);
                    let o = s.linear(&shape, idx);
                    s.store_at(out, o, v);
                    Ok(())
                },
            );
        }
        match op {
            Op::Sum { axis: None } | Op::Max { axis: None } | Op::Card => {
                let v = match op {
                    Op::Sum { .. } => self.fold(args[0], 0.0, add, Element::Itself)?,
                    Op::Max { .. } => {
                        self.fold(args[0], f64::NEG_INFINITY, max, Element::Itself)?
                    }
                    _ => self.fold(args[0], 0.0, add, Element::NonZero)?,
                };
                self.store_at(out, None, v);
            }
            Op::LogSumExp { axis: None } => {
                let m = self.fold(args[0], f64::NEG_INFINITY, max, Element::Itself)?;
                let shift = self.lse_shift(m);
                let sum = self.fold(args[0], 0.0, add, Element::ShiftedExp(shift))?;
                let log = self.call_f64("optc_log", &[sum])?;
                let v = self.b.ins().fadd(shift, log);
                self.store_at(out, None, v);
            }
            Op::Sum { axis: Some(axis) } | Op::Max { axis: Some(axis) } => {
                let shape = self.plan.shape(id).to_vec();
                let a = *axis as usize;
                let project = |idx: &[Value]| -> Vec<Value> {
                    idx.iter()
                        .enumerate()
                        .filter(|&(j, _)| j != a)
                        .map(|(_, &v)| v)
                        .collect()
                };
                if let Op::Sum { .. } = op {
                    self.fill(out, shape.iter().product(), 0.0)?;
                    self.fold_into(args[0], out, &shape, &project, add)?;
                } else {
                    self.fill(out, shape.iter().product(), f64::NEG_INFINITY)?;
                    self.fold_into(args[0], out, &shape, &project, max)?;
                }
            }
            Op::LogSumExp { axis: Some(axis) } => self.lse_axis(id, *axis as usize, out)?,
            Op::ArgmaxMask { axis: None } => {
                let arg = args[0];
                let (best, at) = self.argmax_start();
                self.scan(arg, false, false, &mut |s, ix, x| {
                    let i = match s.flat_index(arg, ix) {
                        Some(i) => i,
                        None => s.int(0),
                    };
                    s.argmax_step(best, at, x, i);
                    Ok(())
                })?;
                let at = self.b.use_var(at);
                self.for_range(self.plan.numel(id), |s, i| {
                    let v = s.indicator(i, at);
                    s.store_at(out, Some(i), v);
                    Ok(())
                })?;
            }
            Op::ArgmaxMask { axis: Some(axis) } => {
                self.argmax_mask_axis(id, *axis as usize, out)?
            }
            Op::SumTo(_) => {
                let shape = self.plan.shape(id).to_vec();
                let drop = self.plan.shape(args[0]).len() - shape.len();
                self.fill(out, shape.iter().product(), 0.0)?;
                self.fold_into(args[0], out, &shape, &|idx| idx[drop..].to_vec(), add)?;
            }
            Op::Trace => {
                let acc = self.b.declare_var(F64);
                let zero = self.float(0.0);
                self.b.def_var(acc, zero);
                self.for_range(self.size(args[0], 0), |s, i| {
                    let x = s.eval(args[0], &Ix::Multi(vec![i, i], None))?;
                    let a = s.b.use_var(acc);
                    let next = s.b.ins().fadd(a, x);
                    s.b.def_var(acc, next);
                    Ok(())
                })?;
                let v = self.b.use_var(acc);
                self.store_at(out, None, v);
            }
            Op::Stack => {
                let inner = self.plan.numel(args[0]) as i64;
                for (k, &arg) in args.iter().enumerate() {
                    self.scan(arg, false, true, &mut |s, ix, x| {
                        let within = s.flat_index(arg, ix);
                        let at = match within {
                            None => s.int(k as i64 * inner),
                            Some(w) => s.b.ins().iadd_imm_s(w, k as i64 * inner),
                        };
                        let x = s.widen_if(ix.lane().is_some(), x);
                        s.store_at(out, Some(at), x);
                        Ok(())
                    })?;
                }
            }
            _ => self.kernel(id, out)?,
        }
        Ok(())
    }

    /// log-sum-exp over one axis: maxima into `out`, shifted sums into the plan's extra scratch,
    /// then `out = shift + log(sum)`.
    fn lse_axis(&mut self, id: NodeId, axis: usize, out: Value) -> Res<()> {
        let arg = self.args(id)[0];
        let shape = self.plan.shape(id).to_vec();
        let numel: usize = shape.iter().product();
        let sums_at = self.plan.lse_sums[id.0 as usize]
            .ok_or(CpuError::Internal("log-sum-exp without its scratch"))?;
        let sums = self.b.ins().iadd_imm_s(self.scratch, (sums_at * 8) as i64);
        let project = |idx: &[Value]| -> Vec<Value> {
            idx.iter()
                .enumerate()
                .filter(|&(j, _)| j != axis)
                .map(|(_, &v)| v)
                .collect()
        };
        self.fill(out, numel, f64::NEG_INFINITY)?;
        self.fold_into(arg, out, &shape, &project, BinaryOp::Max)?;
        self.fill(sums, numel, 0.0)?;
        self.scan(arg, true, false, &mut |s, ix, x| {
            let o = s.linear(&shape, &project(Self::multi(ix)?));
            let m = s.load_at(out, o, false);
            let shift = s.lse_shift(m);
            let centered = s.b.ins().fsub(x, shift);
            let e = s.call_f64("optc_exp", &[centered])?;
            let current = s.load_at(sums, o, false);
            let next = s.b.ins().fadd(current, e);
            s.store_at(sums, o, next);
            Ok(())
        })?;
        self.for_range(numel, |s, i| {
            let m = s.load_at(out, Some(i), false);
            let shift = s.lse_shift(m);
            let sum = s.load_at(sums, Some(i), false);
            let log = s.call_f64("optc_log", &[sum])?;
            let v = s.b.ins().fadd(shift, log);
            s.store_at(out, Some(i), v);
            Ok(())
        })
    }

    /// Variables of a running first argmax: the best value (−∞) and its position (−1: none yet).
    fn argmax_start(&mut self) -> (Variable, Variable) {
        let (best, at) = (self.b.declare_var(F64), self.b.declare_var(I64));
        let (minus_inf, none) = (self.float(f64::NEG_INFINITY), self.int(-1));
        self.b.def_var(best, minus_inf);
        self.b.def_var(at, none);
        (best, at)
    }

    /// Takes element `x` at position `i` when it is greater than the best so far, or when it is
    /// the first element that is not NaN (the interpreter's rule: first maximum, NaN skipped).
    fn argmax_step(&mut self, best: Variable, at: Variable, x: Value, i: Value) {
        let (b, a) = (self.b.use_var(best), self.b.use_var(at));
        let greater = self.b.ins().fcmp(FloatCC::GreaterThan, x, b);
        let none_yet = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, a, 0);
        let number = self.b.ins().fcmp(FloatCC::Ordered, x, x);
        let first_number = self.b.ins().band(none_yet, number);
        let take = self.b.ins().bor(greater, first_number);
        let (b, a) = (
            self.b.ins().select(take, x, b),
            self.b.ins().select(take, i, a),
        );
        self.b.def_var(best, b);
        self.b.def_var(at, a);
    }

    /// The argmax mask along one axis: per lane, a pass finding the first maximum, then a pass
    /// writing the lane's 0/1 entries.
    fn argmax_mask_axis(&mut self, id: NodeId, axis: usize, out: Value) -> Res<()> {
        let arg = self.args(id)[0];
        let shape = self.plan.shape(id).to_vec();
        let len = shape[axis];
        let mut lanes = shape.clone();
        lanes.remove(axis);
        let at_lane = |outer: &[Value], i: Value| {
            let mut idx = outer.to_vec();
            idx.insert(axis, i);
            idx
        };
        self.for_each_index(&lanes, false, &mut Vec::new(), &mut |s, outer, _| {
            let (best, at) = s.argmax_start();
            s.for_range(len, |s, i| {
                let x = s.eval(arg, &Ix::Multi(at_lane(outer, i), None))?;
                s.argmax_step(best, at, x, i);
                Ok(())
            })?;
            let at = s.b.use_var(at);
            s.for_range(len, |s, i| {
                let v = s.indicator(i, at);
                let o = s.linear(&shape, &at_lane(outer, i));
                s.store_at(out, o, v);
                Ok(())
            })
        })
    }

    /// A matrix operand of a kernel: its buffer and whether it is stored transposed.
    fn operand(&self, id: NodeId) -> Res<(Value, bool)> {
        if self.plan.storage(id) == Storage::TransposeFlag {
            Ok((self.base(self.args(id)[0])?, true))
        } else {
            Ok((self.base(id)?, false))
        }
    }

    fn kernel(&mut self, id: NodeId, out: Value) -> Res<()> {
        let args = self.args(id);
        let square = |s: &Self| s.size(args[0], 0) as i64;
        match self.op(id) {
            Op::MatMul => {
                let (a, ta) = self.operand(args[0])?;
                let (b, tb) = self.operand(args[1])?;
                let (sa, sb) = (self.plan.shape(args[0]), self.plan.shape(args[1]));
                let (m, k) = match sa {
                    [k] => (1, *k),
                    [m, k] => (*m, *k),
                    _ => return Err(CpuError::Internal("matmul operand rank")),
                };
                let n = if sb.len() == 2 { sb[1] } else { 1 };
                let sizes = [m as i64, k as i64, n as i64, ta as i64, tb as i64];
                let mut call = vec![a, b, out];
                for (j, v) in sizes.into_iter().enumerate() {
                    call.push(if j < 3 {
                        self.int(v)
                    } else {
                        self.b.ins().iconst(I32, v)
                    });
                }
                self.call_kernel("optc_kernel_matmul", &call)
            }
            Op::LogDet | Op::Inv if self.plan.shared_lu[id.0 as usize].is_some() => {
                let partner = self.plan.shared_lu[id.0 as usize].expect("checked");
                let (logdet, inv) = if *self.op(id) == Op::LogDet {
                    (out, self.base(partner)?)
                } else {
                    (self.base(partner)?, out)
                };
                let a = self.base(args[0])?;
                let n = self.int(square(self));
                self.call_kernel("optc_kernel_logdet_inv", &[a, logdet, inv, n])
            }
            Op::LogDet | Op::Inv | Op::Expm | Op::SortDesc => {
                let name = match self.op(id) {
                    Op::LogDet => "optc_kernel_logdet",
                    Op::Inv => "optc_kernel_inv",
                    Op::Expm => "optc_kernel_expm",
                    _ => "optc_kernel_sort_desc",
                };
                let a = self.base(args[0])?;
                let n = self.int(square(self));
                self.call_kernel(name, &[a, out, n])
            }
            Op::Solve => {
                let (a, b) = (self.base(args[0])?, self.base(args[1])?);
                let shape_b = self.plan.shape(args[1]);
                let m = if shape_b.len() == 2 { shape_b[1] } else { 1 };
                let n = self.int(square(self));
                let m = self.int(m as i64);
                self.call_kernel("optc_kernel_solve", &[a, b, out, n, m])
            }
            Op::TopK(_) => {
                let x = self.base(args[0])?;
                let n = self.int(square(self));
                let k = self.int(self.plan.numel(id) as i64);
                self.call_kernel("optc_kernel_topk", &[x, out, n, k])
            }
            Op::NuclearNorm => {
                let a = self.base(args[0])?;
                let m = self.int(square(self));
                let n = self.int(self.size(args[0], 1) as i64);
                self.call_kernel("optc_kernel_nuclear_norm", &[a, out, m, n])
            }
            Op::ExpmFrechet | Op::ExpmFrechet2 => {
                let name = match self.op(id) {
                    Op::ExpmFrechet => "optc_kernel_expm_frechet",
                    _ => "optc_kernel_expm_frechet2",
                };
                let mut call = args
                    .iter()
                    .map(|&a| self.base(a))
                    .collect::<Res<Vec<_>>>()?;
                let n = self.int(square(self));
                call.extend([out, n]);
                self.call_kernel(name, &call)
            }
            Op::MatPow(k) | Op::MatPowFrechet(k) | Op::MatPowFrechet2(k) => {
                let k = k.eval(self.dims);
                if k < 0 {
                    return Err(CpuError::Plan(PlanError::NegativeSize(id)));
                }
                let name = match self.op(id) {
                    Op::MatPow(_) => "optc_kernel_matpow",
                    Op::MatPowFrechet(_) => "optc_kernel_matpow_frechet",
                    _ => "optc_kernel_matpow_frechet2",
                };
                let mut call = args
                    .iter()
                    .map(|&a| self.base(a))
                    .collect::<Res<Vec<_>>>()?;
                let n = self.int(square(self));
                let k = self.int(k);
                call.extend([out, n, k]);
                self.call_kernel(name, &call)
            }
            Op::SortScatter | Op::SortGather(_) => {
                let (name, k) = match self.op(id) {
                    Op::SortScatter => ("optc_kernel_sort_scatter", self.plan.numel(args[1])),
                    _ => ("optc_kernel_sort_gather", self.plan.numel(id)),
                };
                let (x, values) = (self.base(args[0])?, self.base(args[1])?);
                let n = self.int(square(self));
                let k = self.int(k as i64);
                self.call_kernel(name, &[x, values, out, n, k])
            }
            _ => Err(CpuError::Internal("no kernel for this op")),
        }
    }

    /// Copies the buffered node `id` into the array at `dst`.
    fn copy(&mut self, id: NodeId, dst: Value) -> Res<()> {
        let src = self.base(id)?;
        self.for_lanes(self.plan.numel(id), true, |s, i, group| {
            let v = s.load_at(src, Some(i), group);
            s.store_at(dst, Some(i), v);
            Ok(())
        })
    }
}
