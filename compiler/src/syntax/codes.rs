//! Catalogue entries of the syntax errors (E0001–E0099), reported by the parser.

use crate::codes::CodeInfo;

pub const SYNTAX: &[CodeInfo] = &[
    CodeInfo {
        code: "E0001",
        title: "unexpected token",
        explanation: "The parser met a token that cannot continue the statement.

Example:
    let r = X - @ W

Here an expression was expected after `-`, but `@` came. The message lists what the parser
expected at that point (an expression, an operator, `)`, the end of the statement, ...).

Fix: complete or correct the statement, e.g. `let r = X - X @ W`.",
    },
    CodeInfo {
        code: "E0002",
        title: "unterminated string literal",
        explanation: "A string literal has no closing double quote before the end of its line.

Example:
    data X : real[n, d] = load(\"X.npy)

Strings cannot span several lines; write `\\n` for a newline inside a string.

Fix: add the closing quote: `load(\"X.npy\")`.",
    },
    CodeInfo {
        code: "E0003",
        title: "nesting too deep",
        explanation: "Brackets are nested more than 64 levels deep, an expression tree is deeper than 256
levels, or `for` constraints are nested more than 64 times. The limits keep the compiler from
running out of stack on pathological input.

Example:
    let x = ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))...

Fix: split the expression into several `let` statements; each `let` starts a new tree.",
    },
    CodeInfo {
        code: "E0004",
        title: "invalid number literal",
        explanation: "A number is malformed or does not fit its type: an integer larger than
9223372036854775807, a real that overflows a 64-bit float, a number followed directly by a letter,
an exponent without digits, or a dimension size that is not a whole number.

Examples:
    param a = 99999999999999999999
    param b = 1.5e
    let c = 2x

Fix: integers are `12`, reals `1.5`, `1e-3`, `2.5E+4` (digits are needed before the dot); write
`2 * x` for a product.",
    },
    CodeInfo {
        code: "E0005",
        title: "incomplete keyword phrase",
        explanation: "Some statements start with two keywords: `subject to` and `solve with`. The second
keyword is missing.

Example:
    subject
      x >= 0

Fix: write `subject to` (and `solve with lbfgs`).",
    },
    CodeInfo {
        code: "E0006",
        title: "reserved keyword used as a name",
        explanation: "A keyword was used where a name is expected. The reserved keywords are: dims data
param var let fn minimize maximize subject to for in solve with output argmin true false real int
bool.

Example:
    param in = 3

Fix: choose another name, such as `in_` or `inflow`.",
    },
    CodeInfo {
        code: "E0007",
        title: "unclosed delimiter",
        explanation: "An opening `(`, `[` or `{` has no matching closing bracket before the end of the file.
Inside brackets newlines do not end statements, so the rest of the file is swallowed: the error
points at the bracket that was opened.

Example:
    let x = argmin z : real[N] { 0.5 * sumsq(z - y)
    minimize sumsq(x)

Fix: add the missing `}`.",
    },
    CodeInfo {
        code: "E0008",
        title: "mismatched or unexpected closing delimiter",
        explanation: "A closing bracket does not match the innermost open bracket, or no bracket is open.

Example:
    let s = sum(X[0, :)]

Fix: close brackets in the reverse order of opening: `sum(X[0, :])`.",
    },
    CodeInfo {
        code: "E0009",
        title: "invalid escape in string",
        explanation: "A backslash in a string starts an escape; only `\\\"`, `\\\\` and `\\n` exist.

Example:
    data X : real[n] = load(\"data\\X.npy\")

Fix: use forward slashes in paths (`\"data/X.npy\"`) or double the backslash.",
    },
    CodeInfo {
        code: "E0010",
        title: "invalid character",
        explanation: "The source contains a character that is not part of the language (outside strings and
comments). Names use ASCII letters, digits and `_`; comments start with `#`.

Example:
    param λ = 0.1

Fix: rename to `lambda`, or remove the character.",
    },
    CodeInfo {
        code: "E0011",
        title: "invalid type",
        explanation: "A type was expected but is missing or malformed. A type is an element type `real`, `int`
or `bool`, optionally followed by dimensions in brackets; each dimension is a name declared with
`dims` (or a generic name in a `fn` parameter), such a name plus or minus an integer (`n - 1`),
or an integer literal.

Examples:
    data X : = load(\"X.npy\")
    var w : float[d]
    var v : real[n + 1]

Fix: `data X : real[n, d] = load(\"X.npy\")`, `var w : real[d]`; declare a new dimension for `n + 1`.",
    },
    CodeInfo {
        code: "E0012",
        title: "empty argument or element",
        explanation: "Two commas follow each other (or a list starts with a comma) in a call, an array, an
index or a declaration list, leaving an empty place.

Example:
    minimize sum(X,, axis = 0)

Fix: remove the extra comma or fill in the missing expression.",
    },
    CodeInfo {
        code: "E0013",
        title: "expected a statement",
        explanation: "Each statement starts with a keyword: dims, data, param, var, let, fn, minimize,
maximize, subject to, solve with, output. A line at the top level starts with something else.

Examples:
    r = X - X @ W        # missing `let`
    minimize sumsq(r)
      + sum(W)           # a newline ended the statement

Fix: write `let r = X - X @ W`; to continue an expression on the next line, end the line with the
operator (`sumsq(r) +`) or wrap the expression in parentheses.",
    },
    CodeInfo {
        code: "E0014",
        title: "invalid comparison",
        explanation: "Constraints compare with `==`, `<=` or `>=`, and variable bounds use `>=` or `<=`. A
single `=` is an assignment, and strict inequalities `<`, `>` and `!=` are not supported
(optimization needs closed feasible sets).

Example:
    subject to
      sum(x) = 1

    var w : real[d] > 0

Fix: `sum(x) == 1`; write `>= 0` instead of `> 0`.",
    },
    CodeInfo {
        code: "E0015",
        title: "positional argument after a named argument",
        explanation: "In a call, named arguments (`name = value`) must come after all positional ones.

Example:
    minimize sum(axis = 0, X)

Fix: `sum(X, axis = 0)`.",
    },
    CodeInfo {
        code: "E0016",
        title: "invalid pipe target",
        explanation: "The right side of `|>` must be a function name or a call: `a |> f` means `f(a)` and
`a |> f(b)` means `f(a, b)`. Since `|>` binds weakest, `a |> f(b) + 1` pipes into `f(b) + 1`,
which is not a function.

Example:
    output W |> 0.3

Fix: `output W |> threshold(0.3)`; use parentheses: `(a |> f(b)) + 1`.",
    },
];
