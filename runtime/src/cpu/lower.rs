//! CLIF construction: the scheduled nodes of a [`Plan`] become loops and kernel calls of one
//! function `(inputs, outputs, scratch) -> status` (see the ABI in [`super`]).
//!
//! A buffered node is computed by loops over its own index space; the expression of each element
//! is built by [`Lower::eval`], which recurses through fused arguments (remapping indices for
//! broadcasting, transposes, slices, diagonals, expand, pad and scatter) and loads buffered ones.
//! When the whole fused expression is elementwise and every buffer it reads has the loop's size or
//! one element, a single flat loop replaces the loop nest.

use super::kernels::{self, Param};
use super::plan::{is_elementwise, is_pointwise, Plan, Storage};
use super::CpuError;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F64, I32, I64};
use cranelift_codegen::ir::{AbiParam, Block, FuncRef, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{Linkage, Module};
use optc_compiler::ir::{BinaryOp, NodeId, Op, Program, UnaryOp};
use std::collections::HashMap;

type Res<T> = Result<T, CpuError>;

/// The position of an element: one flat index (elementwise loops) or one index per axis.
enum Ix {
    Flat(Value),
    Multi(Vec<Value>),
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
    fn for_range(
        &mut self,
        n: usize,
        mut body: impl FnMut(&mut Self, Value) -> Res<()>,
    ) -> Res<()> {
        if n == 0 {
            return Ok(());
        }
        if n == 1 {
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
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// Runs `body(idx)` over every index of `shape`, row-major.
    fn for_each_index(
        &mut self,
        shape: &[usize],
        prefix: &mut Vec<Value>,
        body: &mut dyn FnMut(&mut Self, &[Value]) -> Res<()>,
    ) -> Res<()> {
        if prefix.len() == shape.len() {
            return body(self, prefix);
        }
        self.for_range(shape[prefix.len()], |s, i| {
            prefix.push(i);
            let done = s.for_each_index(shape, prefix, body);
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

    fn load_at(&mut self, base: Value, offset: Option<Value>) -> Value {
        self.load_with(MemFlagsData::trusted(), base, offset)
    }

    fn load_with(&mut self, flags: MemFlagsData, base: Value, offset: Option<Value>) -> Value {
        let addr = self.address(base, offset);
        self.b.ins().load(F64, flags, addr, 0)
    }

    fn store_at(&mut self, base: Value, offset: Option<Value>, v: Value) {
        let addr = self.address(base, offset);
        self.b.ins().store(MemFlagsData::trusted(), v, addr, 0);
    }

    /// Element offset of `ix` in the buffer of `id`.
    fn offset(&mut self, id: NodeId, ix: &Ix) -> Option<Value> {
        match ix {
            Ix::Flat(i) => (self.plan.numel(id) != 1).then_some(*i),
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

    /// Whether the elements of buffered-or-fused `id` can be visited with one flat loop.
    fn flat_scan_ok(&self, id: NodeId) -> bool {
        let numel = self.plan.numel(id);
        self.plan.is_buffered(id) || self.flat_ok(id, numel)
    }

    /// Visits every element of `id` (row-major) with its index and value.
    fn scan(
        &mut self,
        id: NodeId,
        multi: bool,
        body: &mut dyn FnMut(&mut Self, &Ix, Value) -> Res<()>,
    ) -> Res<()> {
        if !multi && self.flat_scan_ok(id) {
            let numel = self.plan.numel(id);
            self.for_range(numel, |s, i| {
                let ix = Ix::Flat(i);
                let v = s.eval(id, &ix)?;
                body(s, &ix, v)
            })
        } else {
            let shape = self.plan.shape(id).to_vec();
            self.for_each_index(&shape, &mut Vec::new(), &mut |s, idx| {
                let ix = Ix::Multi(idx.to_vec());
                let v = s.eval(id, &ix)?;
                body(s, &ix, v)
            })
        }
    }

    /// Row-major flat position of `ix` within `id`'s index space.
    fn flat_index(&mut self, id: NodeId, ix: &Ix) -> Option<Value> {
        match ix {
            Ix::Flat(i) => Some(*i),
            Ix::Multi(idx) => {
                let shape = self.plan.shape(id).to_vec();
                self.linear(&shape, idx)
            }
        }
    }

    /// The value of `id` at `ix`: a load when buffered, else its fused expression.
    fn eval(&mut self, id: NodeId, ix: &Ix) -> Res<Value> {
        if self.plan.is_buffered(id) {
            let base = self.base(id)?;
            let offset = self.offset(id, ix);
            // The caller's input arrays are never written while the function runs, so their
            // loads may move (loop-invariant ones, such as scalars, leave the loop).
            let flags = match self.plan.storage(id) {
                Storage::Input(_) => MemFlagsData::trusted().with_readonly().with_can_move(),
                _ => MemFlagsData::trusted(),
            };
            Ok(self.load_with(flags, base, offset))
        } else {
            self.eval_op(id, ix)
        }
    }

    /// The index of broadcast argument `arg` for the element `ix` of its consumer.
    fn broadcast_ix(&mut self, arg: NodeId, ix: &Ix) -> Ix {
        match ix {
            Ix::Flat(i) => Ix::Flat(*i),
            Ix::Multi(idx) => {
                let shape = self.plan.shape(arg).to_vec();
                let drop = idx.len() - shape.len();
                Ix::Multi(
                    shape
                        .iter()
                        .enumerate()
                        .map(|(j, &size)| {
                            if size == 1 {
                                self.int(0)
                            } else {
                                idx[drop + j]
                            }
                        })
                        .collect(),
                )
            }
        }
    }

    fn multi(ix: &Ix) -> Res<&[Value]> {
        match ix {
            Ix::Multi(idx) => Ok(idx),
            Ix::Flat(_) => Err(CpuError::Internal("flat index for an index-remapping op")),
        }
    }

    /// The value of pointwise node `id` at `ix`, computed from its arguments.
    fn eval_op(&mut self, id: NodeId, ix: &Ix) -> Res<Value> {
        let args = self.args(id);
        Ok(match self.op(id) {
            Op::Const(c) => self.float(*c),
            Op::DimSize(d) => self.float(d.eval(self.dims) as f64),
            Op::Unary(u) => {
                let x = self.eval(args[0], ix)?;
                self.unary(*u, x)?
            }
            Op::Binary(o) => {
                let (ia, ib) = (
                    self.broadcast_ix(args[0], ix),
                    self.broadcast_ix(args[1], ix),
                );
                let a = self.eval(args[0], &ia)?;
                if *o == BinaryOp::Pow && self.op(args[1]) == &Op::Const(2.0) {
                    return Ok(self.b.ins().fmul(a, a));
                }
                let c = self.eval(args[1], &ib)?;
                self.binary(*o, a, c)?
            }
            Op::BroadcastTo(_) => {
                let ia = self.broadcast_ix(args[0], ix);
                self.eval(args[0], &ia)?
            }
            Op::Eye(_) => {
                let idx = Self::multi(ix)?;
                self.indicator(idx[0], idx[1])
            }
            Op::Transpose => {
                let idx = Self::multi(ix)?;
                self.eval(args[0], &Ix::Multi(vec![idx[1], idx[0]]))?
            }
            Op::Slice { axis, start, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                let a = *axis as usize;
                idx[a] = self.b.ins().iadd_imm_s(idx[a], start.eval(self.dims));
                self.eval(args[0], &Ix::Multi(idx))?
            }
            Op::DiagPart => {
                let i = Self::multi(ix)?[0];
                self.eval(args[0], &Ix::Multi(vec![i, i]))?
            }
            Op::Diag => {
                let idx = Self::multi(ix)?;
                let (i, j) = (idx[0], idx[1]);
                let v = self.eval(args[0], &Ix::Multi(vec![i]))?;
                let same = self.b.ins().icmp(IntCC::Equal, i, j);
                let zero = self.float(0.0);
                self.b.ins().select(same, v, zero)
            }
            Op::Select { axis } => {
                let a = *axis as usize;
                let len = self.size(args[0], a) as i64;
                if len == 0 {
                    return Ok(self.float(f64::NAN));
                }
                let at = self.eval(args[1], &Ix::Multi(Vec::new()))?;
                let at = self.b.ins().fcvt_to_sint_sat(I64, at);
                let (lo, hi) = (self.int(0), self.int(len - 1));
                let at = self.b.ins().smax(at, lo);
                let at = self.b.ins().smin(at, hi);
                let mut idx = Self::multi(ix)?.to_vec();
                idx.insert(a, at);
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
                let shifted = self.b.ins().iadd_imm_s(idx[a], -start.eval(self.dims));
                let inside = self
                    .b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedLessThan, shifted, len);
                // Padding positions read the nearest element in range, then select 0.
                let (lo, hi) = (self.int(0), self.int(len - 1));
                let clamped = self.b.ins().smax(shifted, lo);
                idx[a] = self.b.ins().smin(clamped, hi);
                let v = self.eval(args[0], &Ix::Multi(idx))?;
                let zero = self.float(0.0);
                self.b.ins().select(inside, v, zero)
            }
            Op::Scatter { axis, .. } => {
                let mut idx = Self::multi(ix)?.to_vec();
                let here = idx.remove(*axis as usize);
                let at = self.eval(args[1], &Ix::Multi(Vec::new()))?;
                let at = self.b.ins().fcvt_to_sint_sat(I64, at);
                let hit = self.b.ins().icmp(IntCC::Equal, here, at);
                let v = self.eval(args[0], &Ix::Multi(idx))?;
                let zero = self.float(0.0);
                self.b.ins().select(hit, v, zero)
            }
            _ => return Err(CpuError::Internal("fused a non-pointwise op")),
        })
    }

    /// 1.0 where `i == j`, else 0.0.
    fn indicator(&mut self, i: Value, j: Value) -> Value {
        let same = self.b.ins().icmp(IntCC::Equal, i, j);
        let (one, zero) = (self.float(1.0), self.float(0.0));
        self.b.ins().select(same, one, zero)
    }

    fn unary(&mut self, op: UnaryOp, x: Value) -> Res<Value> {
        let ins = self.b.ins();
        Ok(match op {
            UnaryOp::Neg => ins.fneg(x),
            UnaryOp::Sqrt => ins.sqrt(x),
            UnaryOp::Abs => ins.fabs(x),
            UnaryOp::Sign => {
                let zero = self.float(0.0);
                let (one, minus_one) = (self.float(1.0), self.float(-1.0));
                let negative = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                let s = self.b.ins().select(negative, minus_one, x);
                self.b.ins().select(positive, one, s)
            }
            UnaryOp::Step => {
                // 1 for x ≥ 0, else 0; NaN stays NaN.
                let zero = self.float(0.0);
                let one = self.float(1.0);
                let nonneg = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, zero);
                let step = self.b.ins().select(nonneg, one, zero);
                let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                self.b.ins().select(nan, x, step)
            }
            UnaryOp::Exp => self.call_f64("optc_exp", &[x])?,
            UnaryOp::Log => self.call_f64("optc_log", &[x])?,
            UnaryOp::Tanh => self.call_f64("optc_tanh", &[x])?,
            UnaryOp::Sigmoid => self.call_f64("optc_sigmoid", &[x])?,
            UnaryOp::Softplus => self.call_f64("optc_softplus", &[x])?,
        })
    }

    fn binary(&mut self, op: BinaryOp, a: Value, c: Value) -> Res<Value> {
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

    /// Folds every element of `arg` into an accumulator starting at `init`.
    fn fold(
        &mut self,
        arg: NodeId,
        init: f64,
        combine: &dyn Fn(&mut Self, Value, Value) -> Res<Value>,
    ) -> Res<Value> {
        let acc = self.b.declare_var(F64);
        let start = self.float(init);
        self.b.def_var(acc, start);
        self.scan(arg, false, &mut |s, _, x| {
            let a = s.b.use_var(acc);
            let next = combine(s, a, x)?;
            s.b.def_var(acc, next);
            Ok(())
        })?;
        Ok(self.b.use_var(acc))
    }

    /// `m` when finite, else 0: the shift that keeps log-sum-exp from overflowing.
    fn lse_shift(&mut self, m: Value) -> Value {
        let diff = self.b.ins().fsub(m, m);
        let finite = self.b.ins().fcmp(FloatCC::Equal, diff, diff);
        let zero = self.float(0.0);
        self.b.ins().select(finite, m, zero)
    }

    fn fill(&mut self, base: Value, numel: usize, value: f64) -> Res<()> {
        self.for_range(numel, |s, i| {
            let v = s.float(value);
            s.store_at(base, Some(i), v);
            Ok(())
        })
    }

    /// Folds `arg` into the buffer `out` (of shape `out_shape`, already initialized): element
    /// `idx` of `arg` goes to `out[project(idx)]`.
    fn fold_into(
        &mut self,
        arg: NodeId,
        out: Value,
        out_shape: &[usize],
        project: &dyn Fn(&[Value]) -> Vec<Value>,
        combine: &dyn Fn(&mut Self, Value, Value) -> Res<Value>,
    ) -> Res<()> {
        self.scan(arg, true, &mut |s, ix, x| {
            let o = s.linear(out_shape, &project(Self::multi(ix)?));
            let current = s.load_at(out, o);
            let next = combine(s, current, x)?;
            s.store_at(out, o, next);
            Ok(())
        })
    }

    fn node(&mut self, id: NodeId) -> Res<()> {
        let op = self.op(id);
        let args = self.args(id);
        let out = self.base(id)?;
        let add = |s: &mut Self, a: Value, x: Value| -> Res<Value> { Ok(s.b.ins().fadd(a, x)) };
        let max = |s: &mut Self, a: Value, x: Value| -> Res<Value> { Ok(s.b.ins().fmax(a, x)) };
        if is_pointwise(op) {
            if is_elementwise(op) && args.iter().all(|&a| self.flat_ok(a, self.plan.numel(id))) {
                return self.for_range(self.plan.numel(id), |s, i| {
                    let v = s.eval_op(id, &Ix::Flat(i))?;
                    s.store_at(out, Some(i), v);
                    Ok(())
                });
            }
            let shape = self.plan.shape(id).to_vec();
            return self.for_each_index(&shape, &mut Vec::new(), &mut |s, idx| {
                let v = s.eval_op(id, &Ix::Multi(idx.to_vec()))?;
                let o = s.linear(&shape, idx);
                s.store_at(out, o, v);
                Ok(())
            });
        }
        match op {
            Op::Sum { axis: None } | Op::Max { axis: None } | Op::Card => {
                let v = match op {
                    Op::Sum { .. } => self.fold(args[0], 0.0, &add)?,
                    Op::Max { .. } => self.fold(args[0], f64::NEG_INFINITY, &max)?,
                    _ => self.fold(args[0], 0.0, &|s, a, x| {
                        let zero = s.float(0.0);
                        let nonzero = s.b.ins().fcmp(FloatCC::NotEqual, x, zero);
                        let one = s.float(1.0);
                        let inc = s.b.ins().select(nonzero, one, zero);
                        Ok(s.b.ins().fadd(a, inc))
                    })?,
                };
                self.store_at(out, None, v);
            }
            Op::LogSumExp { axis: None } => {
                let m = self.fold(args[0], f64::NEG_INFINITY, &max)?;
                let shift = self.lse_shift(m);
                let sum = self.fold(args[0], 0.0, &|s, a, x| {
                    let centered = s.b.ins().fsub(x, shift);
                    let e = s.call_f64("optc_exp", &[centered])?;
                    Ok(s.b.ins().fadd(a, e))
                })?;
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
                    self.fold_into(args[0], out, &shape, &project, &add)?;
                } else {
                    self.fill(out, shape.iter().product(), f64::NEG_INFINITY)?;
                    self.fold_into(args[0], out, &shape, &project, &max)?;
                }
            }
            Op::LogSumExp { axis: Some(axis) } => self.lse_axis(id, *axis as usize, out)?,
            Op::ArgmaxMask { axis: None } => {
                let arg = args[0];
                let (best, at) = self.argmax_start();
                self.scan(arg, false, &mut |s, ix, x| {
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
                self.fold_into(args[0], out, &shape, &|idx| idx[drop..].to_vec(), &add)?;
            }
            Op::Trace => {
                let acc = self.b.declare_var(F64);
                let zero = self.float(0.0);
                self.b.def_var(acc, zero);
                self.for_range(self.size(args[0], 0), |s, i| {
                    let x = s.eval(args[0], &Ix::Multi(vec![i, i]))?;
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
                    self.scan(arg, false, &mut |s, ix, x| {
                        let within = s.flat_index(arg, ix);
                        let at = match within {
                            None => s.int(k as i64 * inner),
                            Some(w) => s.b.ins().iadd_imm_s(w, k as i64 * inner),
                        };
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
        self.fold_into(arg, out, &shape, &project, &|s, c, x| {
            Ok(s.b.ins().fmax(c, x))
        })?;
        self.fill(sums, numel, 0.0)?;
        self.scan(arg, true, &mut |s, ix, x| {
            let o = s.linear(&shape, &project(Self::multi(ix)?));
            let m = s.load_at(out, o);
            let shift = s.lse_shift(m);
            let centered = s.b.ins().fsub(x, shift);
            let e = s.call_f64("optc_exp", &[centered])?;
            let current = s.load_at(sums, o);
            let next = s.b.ins().fadd(current, e);
            s.store_at(sums, o, next);
            Ok(())
        })?;
        self.for_range(numel, |s, i| {
            let m = s.load_at(out, Some(i));
            let shift = s.lse_shift(m);
            let sum = s.load_at(sums, Some(i));
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
        self.for_each_index(&lanes, &mut Vec::new(), &mut |s, outer| {
            let (best, at) = s.argmax_start();
            s.for_range(len, |s, i| {
                let x = s.eval(arg, &Ix::Multi(at_lane(outer, i)))?;
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
                    return Err(CpuError::NegativeSize(id));
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
        self.for_range(self.plan.numel(id), |s, i| {
            let v = s.load_at(src, Some(i));
            s.store_at(dst, Some(i), v);
            Ok(())
        })
    }
}
