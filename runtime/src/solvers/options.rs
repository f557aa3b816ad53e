//! Setting solver options by name from `(name, value)` pairs (what `solve with ...` produces).

use std::fmt;

/// An option name or value that a solver does not accept.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    pub name: String,
    pub message: String,
    /// For an unknown name: the names the solver accepts.
    pub accepted: Option<Vec<String>>,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "option `{}`: {}", self.name, self.message)
    }
}

impl std::error::Error for OptionError {}

/// Options structs that can be set by name.
pub trait SetOption: Default + Sized {
    /// The names [`SetOption::set_option`] accepts.
    const NAMES: &'static [&'static str];

    /// Sets one option; errors name the accepted options or the expected kind of value.
    fn set_option(&mut self, name: &str, value: f64) -> Result<(), OptionError>;

    /// Whether option `name` is a flag (on/off, given `true` or `false`).
    fn is_flag(_name: &str) -> bool {
        false
    }

    /// Checks what no single option decides (e.g. L-BFGS's `c1 < c2`).
    fn check(&self) -> Result<(), OptionError> {
        Ok(())
    }

    /// The defaults overridden by `options`, in order, then checked together.
    fn from_options(options: &[(String, f64)]) -> Result<Self, OptionError> {
        let mut result = Self::default();
        for (name, value) in options {
            result.set_option(name, *value)?;
        }
        result.check()?;
        Ok(result)
    }
}

/// `value` if `holds`, else an error saying it should be `expected`.
fn within(name: &str, value: f64, holds: bool, expected: &str) -> Result<f64, OptionError> {
    match holds {
        true => Ok(value),
        false => Err(invalid(name, &format!("expected {expected}, got {value}"))),
    }
}

pub(crate) fn positive(name: &str, value: f64) -> Result<f64, OptionError> {
    within(name, value, value > 0.0, "a number above 0")
}

pub(crate) fn nonnegative(name: &str, value: f64) -> Result<f64, OptionError> {
    within(name, value, value >= 0.0, "a number of 0 or more")
}

/// Strictly between 0 and 1 (a ratio that shrinks: line-search constants, backtracking).
pub(crate) fn fraction(name: &str, value: f64) -> Result<f64, OptionError> {
    within(
        name,
        value,
        value > 0.0 && value < 1.0,
        "a number between 0 and 1 (both excluded)",
    )
}

/// In [0, 1): Adam's decay rates.
pub(crate) fn decay(name: &str, value: f64) -> Result<f64, OptionError> {
    within(
        name,
        value,
        (0.0..1.0).contains(&value),
        "a number from 0 to below 1",
    )
}

/// Above 1 (a factor that must grow, or a loop never ends).
pub(crate) fn growth(name: &str, value: f64) -> Result<f64, OptionError> {
    within(name, value, value > 1.0, "a number above 1")
}

/// 1 or more (a factor that may stay).
pub(crate) fn at_least_one(name: &str, value: f64) -> Result<f64, OptionError> {
    within(name, value, value >= 1.0, "a number of 1 or more")
}

/// A count of at least 1.
pub(crate) fn positive_count(name: &str, value: f64) -> Result<usize, OptionError> {
    match count(name, value)? {
        0 => Err(invalid(name, "expected a positive integer, got 0")),
        n => Ok(n),
    }
}

pub(crate) fn count(name: &str, value: f64) -> Result<usize, OptionError> {
    if value >= 0.0 && value.fract() == 0.0 && value <= usize::MAX as f64 {
        Ok(value as usize)
    } else {
        Err(invalid(
            name,
            &format!("expected a nonnegative integer, got {value}"),
        ))
    }
}

pub(crate) fn flag(name: &str, value: f64) -> Result<bool, OptionError> {
    if value == 0.0 {
        Ok(false)
    } else if value == 1.0 {
        Ok(true)
    } else {
        Err(invalid(name, &format!("expected 0 or 1, got {value}")))
    }
}

pub(crate) fn invalid(name: &str, message: &str) -> OptionError {
    OptionError {
        name: name.to_string(),
        message: message.to_string(),
        accepted: None,
    }
}

/// An unknown option name; the plan's diagnostic words it with `accepted`
/// (`plan::Plan::option_error`).
pub(crate) fn unknown(name: &str, accepted: &[&str]) -> OptionError {
    OptionError {
        accepted: Some(accepted.iter().map(|a| a.to_string()).collect()),
        ..invalid(name, "unknown option")
    }
}

/// " (did you mean `x`?)" for the accepted name closest to `name`, or nothing.
pub(crate) fn did_you_mean(name: &str, accepted: &[&str]) -> String {
    optc_compiler::diag::suggest(name, accepted.iter().copied())
        .map_or(String::new(), |g| format!(" (did you mean `{g}`?)"))
}

/// Implements [`SetOption`] for a struct whose listed fields are each parsed by one of the
/// parsing functions of this module (`count`, `positive`, `fraction`, `flag`, ...), with an
/// optional `check` of the whole struct.
macro_rules! impl_set_option {
    ($ty:ty { $($field:ident : $kind:ident),* $(,)? }) => {
        impl_set_option!($ty { $($field: $kind),* } check = |_| Ok(()));
    };
    ($ty:ty { $($field:ident : $kind:ident),* $(,)? } check = $check:expr) => {
        impl $crate::solvers::SetOption for $ty {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            fn is_flag(name: &str) -> bool {
                match name {
                    $(stringify!($field) => stringify!($kind) == "flag",)*
                    _ => false,
                }
            }

            fn check(&self) -> Result<(), $crate::solvers::OptionError> {
                let check: fn(&Self) -> Result<(), $crate::solvers::OptionError> = $check;
                check(self)
            }

            fn set_option(
                &mut self,
                name: &str,
                value: f64,
            ) -> Result<(), $crate::solvers::OptionError> {
                match name {
                    $(stringify!($field) => {
                        self.$field = $crate::solvers::options::$kind(name, value)?;
                        Ok(())
                    })*
                    _ => Err($crate::solvers::options::unknown(name, Self::NAMES)),
                }
            }
        }
    };
}
pub(crate) use impl_set_option;
