//! Slots of vectors where the first-order solvers (L-BFGS, proximal gradient) keep their
//! iterates: host memory ([`HostVectors`]) or a device's memory, behind one interface, so that
//! each algorithm is written once and a device solve moves only scalars per iteration.

use super::{dot, norm_inf, Problem, Regularizer};

/// One vector of the problem's dimension held by [`Vectors`], by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(pub usize);

/// Where a solver keeps its vectors and evaluates the smooth objective: host memory, or a
/// device's, so that a solve there moves only scalars per iteration (the start point in, the
/// result out). The solvers touch their vectors through these calls only.
pub trait Vectors {
    /// Number of variables.
    fn dim(&self) -> usize;
    /// Makes slots `0..count` of `dim` values each; called once, before any other call.
    fn allocate(&mut self, count: usize);
    fn write(&mut self, slot: Slot, values: &[f64]);
    fn read(&mut self, slot: Slot, out: &mut [f64]);
    /// f at `x` (NaN where it is undefined), its gradient written to `g`.
    fn value_grad(&mut self, x: Slot, g: Slot) -> f64;
    fn dot(&mut self, a: Slot, b: Slot) -> f64;
    fn norm_inf(&mut self, a: Slot) -> f64;
    /// `y ← y + alpha·x` (`x` ≠ `y`).
    fn axpy(&mut self, alpha: f64, x: Slot, y: Slot);
    /// `x ← alpha·x`.
    fn scale(&mut self, alpha: f64, x: Slot);
    /// `to ← from`.
    fn copy(&mut self, from: Slot, to: Slot);
}

/// [`Vectors`] with the nonsmooth part r of a composite objective f + r (proximal gradient).
pub trait ProxVectors: Vectors {
    /// Writes prox_{step·r}(v) to `out` and returns r(out).
    fn prox(&mut self, v: Slot, step: f64, out: Slot) -> f64;
}

/// A [`Problem`]'s vectors in host memory, with a [`Regularizer`] (none: r = 0).
pub struct HostVectors<'a> {
    problem: &'a mut dyn Problem,
    regularizer: Option<&'a mut dyn Regularizer>,
    slots: Vec<Vec<f64>>,
}

impl<'a> HostVectors<'a> {
    pub fn new(problem: &'a mut dyn Problem, regularizer: Option<&'a mut dyn Regularizer>) -> Self {
        HostVectors {
            problem,
            regularizer,
            slots: Vec::new(),
        }
    }
}

/// Slot `from` to read and slot `to` to write (distinct).
fn pair(slots: &mut [Vec<f64>], from: Slot, to: Slot) -> (&[f64], &mut [f64]) {
    assert_ne!(from, to, "a solver reads and writes one slot at once");
    if from.0 < to.0 {
        let (low, high) = slots.split_at_mut(to.0);
        (&low[from.0], &mut high[0])
    } else {
        let (low, high) = slots.split_at_mut(from.0);
        (&high[0], &mut low[to.0])
    }
}

impl Vectors for HostVectors<'_> {
    fn dim(&self) -> usize {
        self.problem.dim()
    }
    fn allocate(&mut self, count: usize) {
        self.slots = vec![vec![0.0; self.problem.dim()]; count];
    }
    fn write(&mut self, slot: Slot, values: &[f64]) {
        self.slots[slot.0].copy_from_slice(values);
    }
    fn read(&mut self, slot: Slot, out: &mut [f64]) {
        out.copy_from_slice(&self.slots[slot.0]);
    }
    fn value_grad(&mut self, x: Slot, g: Slot) -> f64 {
        let (x, g) = pair(&mut self.slots, x, g);
        self.problem.value_grad(x, g)
    }
    fn dot(&mut self, a: Slot, b: Slot) -> f64 {
        dot(&self.slots[a.0], &self.slots[b.0])
    }
    fn norm_inf(&mut self, a: Slot) -> f64 {
        norm_inf(&self.slots[a.0])
    }
    fn axpy(&mut self, alpha: f64, x: Slot, y: Slot) {
        let (x, y) = pair(&mut self.slots, x, y);
        y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
    }
    fn scale(&mut self, alpha: f64, x: Slot) {
        self.slots[x.0].iter_mut().for_each(|v| *v *= alpha);
    }
    fn copy(&mut self, from: Slot, to: Slot) {
        let (from, to) = pair(&mut self.slots, from, to);
        to.copy_from_slice(from);
    }
}

impl ProxVectors for HostVectors<'_> {
    fn prox(&mut self, v: Slot, step: f64, out: Slot) -> f64 {
        let (v, out) = pair(&mut self.slots, v, out);
        match &mut self.regularizer {
            Some(r) => {
                r.prox(v, step, out);
                r.value(out)
            }
            None => {
                out.copy_from_slice(v);
                0.0
            }
        }
    }
}
