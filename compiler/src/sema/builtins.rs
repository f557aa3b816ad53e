//! The builtin functions of the language: names, parameters and where they may appear.

/// A builtin function (see the "Builtins" section of the language reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Exp,
    Log,
    Sqrt,
    Abs,
    Sign,
    Tanh,
    Sigmoid,
    Softplus,
    Maximum,
    Minimum,
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
    SumSq,
    Norm1,
    Norm2,
    NuclearNorm,
    Transpose,
    Eye,
    Diag,
    Trace,
    Expm,
    MatPow,
    LogDet,
    Solve,
    Inv,
    Sort,
    TopK,
    Card,
    Threshold,
    AsDag,
    Load,
}

/// How a builtin's result shape follows from its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One argument, same shape.
    Elementwise,
    /// Two arguments, broadcast.
    Elementwise2,
    /// One tensor and an optional `axis`.
    Reduction,
    /// One tensor to a scalar.
    ToScalar,
    /// Anything else (checked case by case).
    Special,
}

use Builtin::*;

const ALL: &[(Builtin, &str)] = &[
    (Exp, "exp"),
    (Log, "log"),
    (Sqrt, "sqrt"),
    (Abs, "abs"),
    (Sign, "sign"),
    (Tanh, "tanh"),
    (Sigmoid, "sigmoid"),
    (Softplus, "softplus"),
    (Maximum, "maximum"),
    (Minimum, "minimum"),
    (Sum, "sum"),
    (Mean, "mean"),
    (Max, "max"),
    (Min, "min"),
    (LogSumExp, "logsumexp"),
    (SumSq, "sumsq"),
    (Norm1, "norm1"),
    (Norm2, "norm2"),
    (NuclearNorm, "nuclear_norm"),
    (Transpose, "transpose"),
    (Eye, "eye"),
    (Diag, "diag"),
    (Trace, "trace"),
    (Expm, "expm"),
    (MatPow, "matpow"),
    (LogDet, "logdet"),
    (Solve, "solve"),
    (Inv, "inv"),
    (Sort, "sort"),
    (TopK, "topk"),
    (Card, "card"),
    (Threshold, "threshold"),
    (AsDag, "as_dag"),
    (Load, "load"),
];

impl Builtin {
    pub fn from_name(name: &str) -> Option<Builtin> {
        ALL.iter().find(|(_, n)| *n == name).map(|(b, _)| *b)
    }

    pub fn name(self) -> &'static str {
        ALL.iter().find(|(b, _)| *b == self).map_or("?", |(_, n)| n)
    }

    /// Every builtin name (for "did you mean" suggestions).
    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|(_, n)| *n)
    }

    /// Parameter names and whether each is optional.
    pub fn params(self) -> &'static [(&'static str, bool)] {
        match self {
            Maximum | Minimum => &[("a", false), ("b", false)],
            Sum | Mean | Max | Min | LogSumExp => &[("x", false), ("axis", true)],
            Eye => &[("n", false)],
            Solve => &[("A", false), ("b", false)],
            TopK => &[("x", false), ("k", false)],
            MatPow => &[("A", false), ("k", false)],
            Threshold => &[("W", false), ("t", false)],
            Load => &[("path", false)],
            Transpose | Diag | Trace | Expm | LogDet | Inv | NuclearNorm => &[("A", false)],
            _ => &[("x", false)],
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Exp | Log | Sqrt | Abs | Sign | Tanh | Sigmoid | Softplus => Kind::Elementwise,
            Maximum | Minimum => Kind::Elementwise2,
            Sum | Mean | Max | Min | LogSumExp => Kind::Reduction,
            SumSq | Norm1 | Norm2 => Kind::ToScalar,
            _ => Kind::Special,
        }
    }
}
