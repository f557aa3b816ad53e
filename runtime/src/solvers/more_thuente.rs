//! The Moré–Thuente line search (Moré & Thuente 1994, "Line search algorithms with guaranteed
//! sufficient decrease"), as L-BFGS-B uses it.
//!
//! It looks for a step α > 0 along a descent direction with φ(α) = f(x + α d) satisfying the
//! strong Wolfe conditions φ(α) ≤ φ(0) + ftol·α·φ'(0) and |φ'(α)| ≤ gtol·|φ'(0)|. An interval of
//! uncertainty [stx, sty] (stx: the best step so far) is narrowed by safeguarded cubic and
//! quadratic interpolation; while φ has not yet increased past the sufficient-decrease line
//! ("stage 1"), the interpolation works on the auxiliary ψ(α) = φ(α) − φ(0) − ftol·α·φ'(0).
//! The search also ends, accepting the last trial, when the interval is narrower than
//! xtol·(its right end), when rounding errors stop progress, or at the step limits.
//!
//! Non-finite trial values (a domain guard returning NaN, an overflow) are not interpolated: the
//! next trial bisects between the best step and the failed one, and later trials stay below the
//! smallest failed step.

/// A step with φ and φ' there.
#[derive(Clone, Copy, Debug)]
struct Probe {
    step: f64,
    value: f64,
    slope: f64,
}

/// What the caller does next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Next {
    /// Evaluate φ and φ' at this step and call [`LineSearch::update`].
    Evaluate(f64),
    /// Accept the step last evaluated.
    Accept,
}

/// Constants of the search: sufficient decrease, curvature, and relative interval width.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tolerances {
    pub ftol: f64,
    pub gtol: f64,
    pub xtol: f64,
}

/// Extrapolation factors bounding the next trial before a minimiser is bracketed.
const EXTRAPOLATE_MIN: f64 = 1.1;
const EXTRAPOLATE_MAX: f64 = 4.0;

/// The state of one line search.
pub(crate) struct LineSearch {
    tol: Tolerances,
    step_min: f64,
    step_max: f64,
    value0: f64,
    slope0: f64,
    /// ftol·φ'(0), the slope of the sufficient-decrease line.
    decrease_slope: f64,
    bracketed: bool,
    stage_one: bool,
    width: f64,
    previous_width: f64,
    best: Probe,
    other: Probe,
    interval_min: f64,
    interval_max: f64,
    step: f64,
    /// The smallest step where φ or φ' was not finite.
    failed_step: f64,
}

impl LineSearch {
    /// Starts a search from φ(0) = `value0`, φ'(0) = `slope0` < 0 with the first trial `step`
    /// (clamped into [`step_min`, `step_max`]).
    pub(crate) fn new(
        value0: f64,
        slope0: f64,
        step: f64,
        step_min: f64,
        step_max: f64,
        tol: Tolerances,
    ) -> Self {
        let step = step.min(step_max).max(step_min);
        let origin = Probe {
            step: 0.0,
            value: value0,
            slope: slope0,
        };
        LineSearch {
            tol,
            step_min,
            step_max,
            value0,
            slope0,
            decrease_slope: tol.ftol * slope0,
            bracketed: false,
            stage_one: true,
            width: step_max - step_min,
            previous_width: 2.0 * (step_max - step_min),
            best: origin,
            other: origin,
            interval_min: 0.0,
            interval_max: step + EXTRAPOLATE_MAX * step,
            step,
            failed_step: f64::INFINITY,
        }
    }

    /// The first trial step.
    pub(crate) fn first_step(&self) -> f64 {
        self.step
    }

    /// Takes φ(α) = `value`, φ'(α) = `slope` at the last requested step α.
    pub(crate) fn update(&mut self, value: f64, slope: f64) -> Next {
        if !value.is_finite() || !slope.is_finite() {
            self.failed_step = self.failed_step.min(self.step);
            self.step = self.best.step + 0.5 * (self.step - self.best.step);
            return Next::Evaluate(self.step);
        }
        let step = self.step;
        let sufficient_line = self.value0 + step * self.decrease_slope;
        if self.stage_one && value <= sufficient_line && slope >= 0.0 {
            self.stage_one = false;
        }
        let stalled = self.bracketed
            && (step <= self.interval_min
                || step >= self.interval_max
                || self.interval_max - self.interval_min <= self.tol.xtol * self.interval_max);
        let at_max =
            step == self.step_max && value <= sufficient_line && slope <= self.decrease_slope;
        let at_min =
            step == self.step_min && (value > sufficient_line || slope >= self.decrease_slope);
        let wolfe = value <= sufficient_line && slope.abs() <= self.tol.gtol * (-self.slope0);
        if stalled || at_max || at_min || wolfe {
            return Next::Accept;
        }
        let trial = Probe { step, value, slope };
        let (lo, hi) = (self.interval_min, self.interval_max);
        let mut next = if self.stage_one && value <= self.best.value && value > sufficient_line {
            // Interpolate ψ(α) = φ(α) − α·ftol·φ'(0) (the φ(0) shift cancels in differences).
            let shift = |p: Probe| Probe {
                value: p.value - p.step * self.decrease_slope,
                slope: p.slope - self.decrease_slope,
                ..p
            };
            let unshift = |p: Probe| Probe {
                value: p.value + p.step * self.decrease_slope,
                slope: p.slope + self.decrease_slope,
                ..p
            };
            let (mut best, mut other) = (shift(self.best), shift(self.other));
            let next = safeguarded_step(
                &mut best,
                &mut other,
                shift(trial),
                &mut self.bracketed,
                lo,
                hi,
            );
            self.best = unshift(best);
            self.other = unshift(other);
            next
        } else {
            safeguarded_step(
                &mut self.best,
                &mut self.other,
                trial,
                &mut self.bracketed,
                lo,
                hi,
            )
        };
        let (stx, sty) = (self.best.step, self.other.step);
        if self.bracketed {
            // Force a sufficient shrink of the interval: bisect if two steps did not halve it.
            if (sty - stx).abs() >= 0.66 * self.previous_width {
                next = stx + 0.5 * (sty - stx);
            }
            self.previous_width = self.width;
            self.width = (sty - stx).abs();
            self.interval_min = stx.min(sty);
            self.interval_max = stx.max(sty);
        } else {
            self.interval_min = next + EXTRAPOLATE_MIN * (next - stx);
            self.interval_max = next + EXTRAPOLATE_MAX * (next - stx);
        }
        next = next.min(self.step_max).max(self.step_min);
        if self.bracketed
            && (next <= self.interval_min
                || next >= self.interval_max
                || self.interval_max - self.interval_min <= self.tol.xtol * self.interval_max)
        {
            next = stx;
        }
        if next >= self.failed_step {
            next = stx + 0.5 * (self.failed_step - stx);
        }
        self.step = next;
        Next::Evaluate(next)
    }
}

/// One safeguarded step of Moré & Thuente (their Section 4): from the best step `best`, the
/// other end `other` of the interval and the new `trial`, returns the next trial step inside
/// [`lo`, `hi`] and updates the interval (and whether it brackets a minimiser).
fn safeguarded_step(
    best: &mut Probe,
    other: &mut Probe,
    trial: Probe,
    bracketed: &mut bool,
    lo: f64,
    hi: f64,
) -> f64 {
    let (stx, fx, dx) = (best.step, best.value, best.slope);
    let (stp, fp, dp) = (trial.step, trial.value, trial.slope);
    let opposite_slopes = dx != 0.0 && dp * dx.signum() < 0.0;
    // The minimiser of the cubic interpolating (stx, fx, dx) and (stp, fp, dp), written with
    // γ = ±√(θ² − dx·dp) so that it needs no division by the cubic's leading coefficient.
    let cubic = |towards_trial: bool, clamp_negative: bool| {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let scale = theta.abs().max(dx.abs()).max(dp.abs());
        let radicand = (theta / scale).powi(2) - (dx / scale) * (dp / scale);
        let mut gamma = scale
            * if clamp_negative {
                radicand.max(0.0)
            } else {
                radicand
            }
            .sqrt();
        if (stp < stx) == towards_trial {
            gamma = -gamma;
        }
        (theta, gamma)
    };
    // The minimiser of the quadratic through the two slopes (secant step).
    let secant = stp + dp / (dp - dx) * (stx - stp);
    let next = if fp > fx {
        // Case 1: higher value; the minimiser is bracketed, and lies closer to stx.
        let (theta, gamma) = cubic(true, false);
        let r = (gamma - dx + theta) / ((gamma - dx) + gamma + dp);
        let stpc = stx + r * (stp - stx);
        let stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2.0 * (stp - stx);
        *bracketed = true;
        if (stpc - stx).abs() < (stpq - stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        }
    } else if opposite_slopes {
        // Case 2: lower value, slopes of opposite sign; the minimiser is bracketed.
        let (theta, gamma) = cubic(false, false);
        let r = (gamma - dp + theta) / ((gamma - dp) + gamma + dx);
        let stpc = stp + r * (stx - stp);
        *bracketed = true;
        if (stpc - stp).abs() > (secant - stp).abs() {
            stpc
        } else {
            secant
        }
    } else if dp.abs() < dx.abs() {
        // Case 3: lower value, same slope sign, the slope decreases in magnitude.
        let (theta, gamma) = cubic(false, true);
        let r = (gamma - dp + theta) / (gamma + (dx - dp) + gamma);
        let stpc = if r < 0.0 && gamma != 0.0 {
            stp + r * (stx - stp)
        } else if stp > stx {
            hi
        } else {
            lo
        };
        if *bracketed {
            let pick = if (stpc - stp).abs() < (secant - stp).abs() {
                stpc
            } else {
                secant
            };
            let limit = stp + 0.66 * (other.step - stp);
            if stp > stx {
                pick.min(limit)
            } else {
                pick.max(limit)
            }
        } else {
            let pick = if (stpc - stp).abs() > (secant - stp).abs() {
                stpc
            } else {
                secant
            };
            pick.min(hi).max(lo)
        }
    } else if *bracketed {
        // Case 4: lower value, same slope sign, the slope does not decrease: the cubic through
        // the trial and the other end of the interval.
        let (sty, fy, dy) = (other.step, other.value, other.slope);
        let theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp;
        let scale = theta.abs().max(dy.abs()).max(dp.abs());
        let mut gamma = scale * ((theta / scale).powi(2) - (dy / scale) * (dp / scale)).sqrt();
        if stp > sty {
            gamma = -gamma;
        }
        let r = (gamma - dp + theta) / ((gamma - dp) + gamma + dy);
        stp + r * (sty - stp)
    } else if stp > stx {
        hi
    } else {
        lo
    };
    if fp > fx {
        *other = trial;
    } else {
        if opposite_slopes {
            *other = *best;
        }
        *best = trial;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerances = Tolerances {
        ftol: 1e-3,
        gtol: 0.9,
        xtol: 0.1,
    };

    /// Runs the search on φ and returns the accepted step and the number of evaluations.
    fn search(phi: impl Fn(f64) -> (f64, f64), step: f64, step_max: f64) -> (f64, usize) {
        let (v0, s0) = phi(0.0);
        let mut ls = LineSearch::new(v0, s0, step, 0.0, step_max, TOL);
        let mut step = ls.first_step();
        for evals in 1..=40 {
            let (v, s) = phi(step);
            match ls.update(v, s) {
                Next::Accept => return (step, evals),
                Next::Evaluate(next) => step = next,
            }
        }
        panic!("no step accepted");
    }

    #[test]
    fn accepts_the_unit_step_on_a_quadratic_with_minimiser_at_one() {
        // φ(α) = (α − 1)²: α = 1 has φ' = 0.
        let (step, evals) = search(|a| ((a - 1.0).powi(2), 2.0 * (a - 1.0)), 1.0, 1e10);
        assert_eq!((step, evals), (1.0, 1));
    }

    #[test]
    fn extrapolates_from_a_short_first_step() {
        // φ(α) = (α − 10)²: α = 0.1 fails the curvature test, so the search extrapolates until
        // |φ'(α)| ≤ 0.9·20, i.e. α ≥ 1.
        let (step, _) = search(|a| ((a - 10.0).powi(2), 2.0 * (a - 10.0)), 0.1, 1e10);
        let slope = 2.0 * (step - 10.0);
        assert!(slope.abs() <= 0.9 * 20.0, "step {step}");
        assert!((step - 10.0).powi(2) <= 100.0 + 1e-3 * step * -20.0);
    }

    #[test]
    fn interpolates_back_from_a_long_step() {
        // φ(α) = α⁴ − α: minimiser 4^(−1/3) ≈ 0.63; α = 10 is far past it.
        let phi = |a: f64| (a.powi(4) - a, 4.0 * a.powi(3) - 1.0);
        let (step, evals) = search(phi, 10.0, 1e10);
        let (v, s) = phi(step);
        assert!(v <= -1e-3 * step && s.abs() <= 0.9, "step {step}");
        assert!(evals <= 10, "{evals} evaluations");
    }

    #[test]
    fn backs_off_from_non_finite_values() {
        // φ is NaN beyond α = 0.5; the first trial 1 must bisect back into the domain.
        let phi = |a: f64| {
            if a > 0.5 {
                (f64::NAN, f64::NAN)
            } else {
                ((a - 2.0).powi(2), 2.0 * (a - 2.0))
            }
        };
        let (step, _) = search(phi, 1.0, 1e10);
        assert!(step > 0.0 && step <= 0.5, "step {step}");
    }

    #[test]
    fn stops_at_the_step_limit() {
        // φ(α) = −α decreases forever; the search ends at the largest allowed step.
        let (step, _) = search(|a| (-a, -1.0), 1.0, 3.0);
        assert_eq!(step, 3.0);
    }
}
