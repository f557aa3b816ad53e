//! The catalogue of semantic-analysis codes (E0100–E0299): titles and long explanations.

use crate::codes::CodeInfo;

/// Every code the checker and the lowering emit.
pub const SEMA: &[CodeInfo] = &[
    CodeInfo {
        code: "E0100",
        title: "undefined name",
        explanation: "A name is used before it is declared, or it is misspelled.

Bad:
    var w : real[n]
    minimize sumsq(X @ ww)

Fix: declare the name first, or correct the spelling (`w`). The message suggests the closest declared name. A called name that is no function (`nrom1(w)`) gets the closest function: the builtins (spec/builtins.md), the standard library's (spec/stdlib.md) and the model's `fn`s.",
    },
    CodeInfo {
        code: "E0101",
        title: "duplicate declaration",
        explanation: "Two top-level declarations (or two parameters of one fn) have the same name.

Bad:
    var W : real[d, d]
    var W : real[d]

Fix: give each declaration its own name.",
    },
    CodeInfo {
        code: "E0102",
        title: "name shadows a builtin or a top-level declaration",
        explanation: "A declaration, `let`, fn parameter, argmin variable or loop index reuses the name of a builtin function or of a top-level declaration.

Bad:
    let sum = X @ w

Fix: rename it (`let total = X @ w`).",
    },
    CodeInfo {
        code: "E0103",
        title: "name not visible in a fn body",
        explanation: "A fn body sees only its parameters, the dims of its signature, other fns and builtins; data, params, variables and lets are not visible.

Bad:
    data X : real[n, d]
    fn loss(w : real[d]) = sumsq(X @ w)

Fix: pass the value as a parameter: `fn loss(X : real[n, d], w : real[d]) = sumsq(X @ w)`.",
    },
    CodeInfo {
        code: "E0104",
        title: "recursive fn",
        explanation: "fns are inlined where they are called, so a fn cannot call itself.

Bad:
    fn f(x : real) = f(x) + 1

Fix: write the expression out without recursion.",
    },
    CodeInfo {
        code: "E0105",
        title: "not a value",
        explanation: "A fn, builtin function or non-dimension is used where a value (or a dimension) is expected.

Bad:
    minimize sumsq

Fix: call the function: `minimize sumsq(w)`; use names declared with `dims` in types.",
    },
    CodeInfo {
        code: "E0106",
        title: "not a function",
        explanation: "Something that is not a fn or builtin is called.

Bad:
    minimize sum(w(0))

Fix: index tensors with brackets: `w[0]`.",
    },
    CodeInfo {
        code: "E0110",
        title: "element type mismatch",
        explanation: "A value of one element type is used where another is required (int and bool promote to real, real never becomes int).

Bad:
    param k : int = 2.5

Fix: use a value of the declared element type (`param k : int = 2`) or change the declared type.",
    },
    CodeInfo {
        code: "E0111",
        title: "index is not an int scalar",
        explanation: "Indices select one position and must be int scalars: int literals, dims, `for` indices, or arithmetic on them.

Bad:
    x[0.5]

Fix: use an int (`x[0]`) or a range (`x[0:2]`).",
    },
    CodeInfo {
        code: "E0112",
        title: "card bound is not an int",
        explanation: "The bound of `card(x) <= k` must be an int literal or an int param.

Bad:
    card(w) <= 2.5

Fix: `card(w) <= 2` or `param k : int = 2` and `card(w) <= k`.",
    },
    CodeInfo {
        code: "E0113",
        title: "variable is not real",
        explanation: "Decision variables (`var`, and the variable of an `argmin`) are real: optc's solvers move them continuously and do not do integer programming, so an `int` or `bool` variable would silently be solved as a real one.

Bad:
    var x : int[3]

Fix: `var x : real[3]`, rounding the result afterwards if that is what is meant, or state the problem over real numbers (a relaxation: `var x : real[3] >= 0 <= 1` for a 0/1 choice).",
    },
    CodeInfo {
        code: "E0120",
        title: "shapes cannot be broadcast",
        explanation: "Elementwise operations, constraints and initial values use numpy broadcasting: trailing dimensions must be equal or 1.

Bad:
    var a : real[n]
    var b : real[d]
    minimize sum(a - b)

Fix: combine values whose shapes agree, or transpose / multiply with `@` first.",
    },
    CodeInfo {
        code: "E0121",
        title: "matrix product dimensions differ",
        explanation: "In `A @ B` the last dimension of A must equal the first of B (likewise for `solve(A, b)` rows).

Bad:
    data X : real[n, d]
    var W : real[n, d]
    minimize sumsq(X @ W)

Fix: use matching shapes (`var W : real[d, d]`) or transpose an operand.",
    },
    CodeInfo {
        code: "E0122",
        title: "`*` between two tensors",
        explanation: "`*` multiplies a scalar by anything. Between two tensors it is ambiguous.

Bad:
    W * W

Fix: use `.*` for the elementwise product or `@` for the matrix product.",
    },
    CodeInfo {
        code: "E0123",
        title: "wrong rank",
        explanation: "An operation needs a vector or a matrix and got something of another rank (`@`, `transpose`, `sort`, `topk`, `nuclear_norm`, `simplex`).

Bad:
    transpose(w)    # w : real[n]

Fix: pass a value of the required rank.",
    },
    CodeInfo {
        code: "E0124",
        title: "square matrix required",
        explanation: "`trace`, `expm`, `matpow`, `logdet`, `inv`, `solve` and `diag` of a matrix, and the output step `as_dag` (a weighted adjacency matrix), need a square matrix.

Bad:
    data X : real[n, d]
    minimize trace(X)

Fix: apply it to a square matrix, e.g. `trace(transpose(X) @ X)`.",
    },
    CodeInfo {
        code: "E0125",
        title: "axis out of range",
        explanation: "Reductions take an optional 0-based `axis` that must be an int literal smaller than the rank.

Bad:
    sum(w, axis = 1)    # w : real[n]

Fix: `sum(w, axis = 0)` or `sum(w)`.",
    },
    CodeInfo {
        code: "E0126",
        title: "fn argument shape mismatch",
        explanation: "A fn's parameter types name generic dims; each call binds them from the arguments, and arguments sharing a dim must agree. Ranks and literal sizes must match exactly.

Bad:
    fn f(a : real[k], b : real[k]) = sum(a .* b)
    minimize f(x, y)    # x : real[n], y : real[d]

Fix: pass arguments whose sizes agree.",
    },
    CodeInfo {
        code: "E0127",
        title: "index out of range",
        explanation: "More indices than axes, or an index or range that reaches past the end of its axis. Indices known before solving are checked: sizes (`3`, `n - 1`) and `for` indices plus or minus literals, over their whole range.

Bad:
    w[0, 1]     # w : real[n]
    w[0:n + 1]
    w[n]
    for i in 0..n: w[i + 1] >= w[i]

Fix: one index or range per axis, within the axis size.",
    },
    CodeInfo {
        code: "E0128",
        title: "size not known before solving",
        explanation: "Range bounds, `eye(n)`, `topk(x, k)` and `for` ranges need sizes: int literals, dims, or a dim plus or minus a literal; both ends of a range must use the same dim.

Bad:
    x[0:k]    # k a real param

Fix: `x[0:n - 1]`, `eye(d)`.",
    },
    CodeInfo {
        code: "E0129",
        title: "array elements differ in shape",
        explanation: "All elements of `[e1, e2, ...]` must have the same shape.

Bad:
    [w, 1]    # w : real[n]

Fix: make the elements equally shaped.",
    },
    CodeInfo {
        code: "E0130",
        title: "objective is not a scalar",
        explanation: "The objective must be a scalar.

Bad:
    minimize X @ w - y

Fix: reduce it: `minimize sumsq(X @ w - y)`.",
    },
    CodeInfo {
        code: "E0131",
        title: "no objective",
        explanation: "A model needs exactly one `minimize` or `maximize`.

Bad:
    var w : real[n]

Fix: add `minimize sumsq(w)`.",
    },
    CodeInfo {
        code: "E0132",
        title: "several objectives",
        explanation: "A model has exactly one objective.

Bad:
    minimize f
    minimize g

Fix: combine them: `minimize f + lambda * g`.",
    },
    CodeInfo {
        code: "E0133",
        title: "nothing to solve",
        explanation: "The file has no statements (it is empty or holds only comments).

Fix: declare variables and an objective, e.g.
    dims n = 3
    var x : real[n]
    minimize sumsq(x - 1)",
    },
    CodeInfo {
        code: "E0134",
        title: "argmin body is not a scalar",
        explanation: "The body of `argmin z : T { body }` is the lower-level objective and must be a scalar.

Bad:
    argmin z : real[n] { z - y }

Fix: `argmin z : real[n] { sumsq(z - y) }`.",
    },
    CodeInfo {
        code: "E0135",
        title: "argmin body ignores its variable (warning)",
        explanation: "The body of an `argmin` does not mention its variable, so every point minimizes it.

Bad:
    argmin z : real[n] { sumsq(y) }

Fix: use the variable in the body.",
    },
    CodeInfo {
        code: "E0136",
        title: "constraint reads no variable (warning)",
        explanation: "A constraint depends only on data, parameters and constants, so it holds or fails whatever the solution; a solver cannot change it (a violated one ends the solve unconverged). Usually it names a data array or a `let` where a variable was meant.

Bad:
    var x : real[n]
    subject to
      sum(y) == 1     # y is data

Fix: constrain the variable (`sum(x) == 1`), or check the data before solving.",
    },
    CodeInfo {
        code: "E0137",
        title: "topk count out of range",
        explanation: "`topk(x, k)` keeps the k largest entries of a vector, so k must be at least 1 and at most its length. A k and a length both known before solving (literals, or the same dim plus or minus literals) are checked here; others when the data bind the dims (E0404).

Bad:
    var x : real[3]
    minimize sum(topk(x, 5))

Fix: a k within 1..3, e.g. `topk(x, 2)`.",
    },
    CodeInfo {
        code: "E0138",
        title: "empty `for` range (warning)",
        explanation: "A `for` range `a..b` runs over a ≤ i < b; one whose end is at or before its start has no index, so the constraint it wraps constrains nothing (it is kept, with violation 0). The checker warns about a range empty at every size (`3..0`); `run` and `eval` warn about one the bound sizes make empty (`0..n - 5` at n = 3). Usually the bounds are swapped or off by one.

Bad:
    for i in 3..0: x[i] >= 1

Fix: `for i in 0..3: x[i] >= 1`.",
    },
    CodeInfo {
        code: "E0139",
        title: "nested argmin",
        explanation: "The objective of an `argmin` reads another `argmin` (directly or through a `let`). `maid` solves the lower levels of a model side by side, each from the outer variables, and differentiates through each once; a lower level inside another has no such solve.

Bad:
    let a = argmin u : real[3] { sumsq(u - theta) }
    let b = argmin z : real[3] { sumsq(z - a) }

Fix: give each `argmin` an objective of the outer variables, data and parameters; here `b` is `a`'s minimizer moved once more, so write it from `theta` directly.",
    },
    CodeInfo {
        code: "E0140",
        title: "threshold/as_dag outside output",
        explanation: "`threshold` and `as_dag` post-process reported results; they are not differentiable model operations.

Bad:
    minimize sum(threshold(W, 0.3))

Fix: `output W |> threshold(0.3) |> as_dag`.",
    },
    CodeInfo {
        code: "E0141",
        title: "card outside a constraint",
        explanation: "`card(x)` counts nonzeros and is only allowed as a constraint `card(x) <= k`.

Bad:
    minimize card(w)

Fix: put it under `subject to`: `card(w) <= 5`, or use an `norm1(w)` penalty.",
    },
    CodeInfo {
        code: "E0142",
        title: "load outside a data declaration",
        explanation: "`load(path)` is only the value of a `data` declaration.

Bad:
    minimize sumsq(load(\"X.npy\") @ w)

Fix: `data X : real[n, d] = load(\"X.npy\")` and use `X`.",
    },
    CodeInfo {
        code: "E0143",
        title: "data value is not a load",
        explanation: "A data declaration's value must be `load(\"path\")` with a string path.

Bad:
    data X : real[n] = 3

Fix: `data X : real[n] = load(\"X.npy\")`, or use `param` for constants.",
    },
    CodeInfo {
        code: "E0144",
        title: "param value is not constant",
        explanation: "A param's value may use only literals, dims and other params.

Bad:
    param s = sum(X)

Fix: compute it with `let s = sum(X)`.",
    },
    CodeInfo {
        code: "E0145",
        title: "variable start value or bound reads a variable",
        explanation: "Initial values and bounds of variables may use only literals, dims, data and params.

Bad:
    var a : real[n]
    var b : real[n] >= a

Fix: express relations between variables as constraints: `b >= a` under `subject to`.",
    },
    CodeInfo {
        code: "E0146",
        title: "string used as a value",
        explanation: "Strings are only used in `load(\"path\")` and `solve with` options.

Bad:
    minimize \"w\"

Fix: remove the quotes to refer to a name.",
    },
    CodeInfo {
        code: "E0147",
        title: "empty array",
        explanation: "An array literal takes its length and element shape from its elements, so it needs at least one.

Bad:
    minimize sumsq(x) + sum([])

Fix: drop the empty term (a sum over nothing is `0`), or write the elements.",
    },
    CodeInfo {
        code: "E0150",
        title: "unknown solve method",
        explanation: "`solve with` names one of the known methods: lbfgs, fista, prox_grad, adam, auglag, path, colide, maid, dual.

Bad:
    solve with bfgs

Fix: `solve with lbfgs`.",
    },
    CodeInfo {
        code: "E0151",
        title: "several solve statements",
        explanation: "At most one `solve with` per file.

Bad:
    solve with lbfgs
    solve with adam

Fix: keep one; options go inside it.",
    },
    CodeInfo {
        code: "E0152",
        title: "solve option is not a literal",
        explanation: "Solve options are numbers, strings, names, lists or nested calls.

Bad:
    solve with lbfgs(tol = 1 / n)

Fix: `solve with lbfgs(tol = 1e-6)`.",
    },
    CodeInfo {
        code: "E0160",
        title: "wrong number of arguments",
        explanation: "A call passes more positional arguments than the function takes.

Bad:
    exp(x, y)

Fix: pass exactly the parameters listed in the message.",
    },
    CodeInfo {
        code: "E0161",
        title: "unknown keyword argument",
        explanation: "A call names a parameter that the function does not have.

Bad:
    sum(W, axs = 0)

Fix: `sum(W, axis = 0)`.",
    },
    CodeInfo {
        code: "E0165",
        title: "fn parameter without a default after one with a default",
        explanation: "Parameters with defaults come after those without: a call fills the parameters in order, and could not leave out an earlier one.

Bad:
    fn f(a : real = 1, x : real[k]) = a * sumsq(x)

Fix: `fn f(x : real[k], a : real = 1) = a * sumsq(x)`.",
    },
    CodeInfo {
        code: "E0162",
        title: "argument given twice",
        explanation: "A parameter (or solve option) receives two values, positionally and by name or twice by name.

Bad:
    dagma_logdet(W, W = V)

Fix: pass each argument once.",
    },
    CodeInfo {
        code: "E0163",
        title: "missing argument",
        explanation: "A required parameter has no argument and no default.

Bad:
    maximum(x)

Fix: `maximum(x, 0)`.",
    },
    CodeInfo {
        code: "E0164",
        title: "positional argument after keyword argument",
        explanation: "Positional arguments must come before keyword arguments.

Bad:
    sum(axis = 0, W)

Fix: `sum(W, axis = 0)`.",
    },
    CodeInfo {
        code: "E0170",
        title: "unknown set",
        explanation: "`x in S` accepts the sets `nonneg`, `simplex` and `box(lo, hi)`.

Bad:
    w in positive

Fix: `w in nonneg`.",
    },
    CodeInfo {
        code: "E0172",
        title: "`==` as a variable bound",
        explanation: "Variable bounds are `>= lo` and `<= hi`.

Bad:
    var x : real[n] == 0

Fix: declare a `param`, or write an `==` constraint under `subject to`.",
    },
    CodeInfo {
        code: "E0180",
        title: "tensor too large",
        explanation: "A declared tensor whose sizes are all known (literals or dim defaults) has more than 2^34 elements, or its element count overflows 64 bits. It is rejected before any allocation.

Bad:
    var W : real[100000000000, 100000000000]

Fix: use smaller sizes.",
    },
    CodeInfo {
        code: "E0190",
        title: "bad threshold cutoff",
        explanation: "`threshold(W, t)` in an output needs a cutoff `t` of 0 or more: a number, or the name of a scalar `param` (its value at the solve, so `--param` can sweep it). An expression, an array parameter or a negative number (which zeroes nothing) is refused; so is a negative parameter value at run time.

Bad:
    output W |> threshold(2 * tau)

Fix: `param cut = 0.3` and `output W |> threshold(cut)`, or `output W |> threshold(0.3)`.",
    },
    CodeInfo {
        code: "E0191",
        title: "two outputs with one name",
        explanation: "Each output is written under its name: `NAME.npy` with `--out`, the key `NAME` of `outputs` in result.json. An output without `name =` is named after its leading identifier (`output x` is `x`, `output sum(w)` is `sum`) or, for other expressions, `output` and its position. Two outputs with one name would overwrite each other.

Bad:
    output sum(w), sum(X)
    output x, x = 2 * x

Fix: name them: `output w_total = sum(w), X_total = sum(X)`.",
    },
    CodeInfo {
        code: "E0192",
        title: "two constraints with one name",
        explanation: "Constraints are reported by name (the `constraints` of result.json, their multipliers): a label `name:` or, without one, `c` and the constraint's position (`c0` for the first). Two labels alike, or a label that is another constraint's automatic name, would make two results with one name.

Bad:
    subject to
      c1: sum(x) <= 1
      x[0] >= 0.5        # the second constraint, named c1 too

Fix: label both, or choose labels that are not `c` and a number: `budget: sum(x) <= 1`.",
    },
    CodeInfo {
        code: "E0199",
        title: "internal checker or lowering error",
        explanation: "An expression failed to check without a diagnostic, or the checked model could not be lowered to the IR. This is a compiler bug; please report it with the model file.

Fix: none on the user side; simplify the expression named in the message to work around it.",
    },
];

#[cfg(test)]
mod tests {
    use super::SEMA;
    use std::collections::BTreeSet;

    /// Every `"E0xxx"` literal in a source text.
    fn codes_in(source: &str) -> BTreeSet<String> {
        source
            .match_indices("\"E0")
            .map(|(i, _)| source[i + 1..].chars().take(5).collect::<String>())
            .filter(|c| c.len() == 5 && c[1..].chars().all(|ch| ch.is_ascii_digit()))
            .collect()
    }

    #[test]
    fn every_emitted_code_is_catalogued_and_every_catalogued_code_is_emitted() {
        let mut emitted = codes_in(include_str!("check.rs"));
        emitted.extend(codes_in(include_str!("../lower.rs")));
        let catalogued: BTreeSet<String> = SEMA.iter().map(|c| c.code.to_string()).collect();
        assert_eq!(emitted, catalogued);
        assert!(catalogued
            .iter()
            .all(|c| ("E0100".."E0300").contains(&c.as_str())));
    }
}
