//! Setting solver options by name from `(name, value)` pairs (what `solve with ...` produces).

use std::fmt;

/// An option name or value that a solver does not accept.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    pub name: String,
    pub message: String,
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

    /// The defaults overridden by `options`, in order.
    fn from_options(options: &[(String, f64)]) -> Result<Self, OptionError> {
        let mut result = Self::default();
        for (name, value) in options {
            result.set_option(name, *value)?;
        }
        Ok(result)
    }
}

pub(crate) fn float(name: &str, value: f64) -> Result<f64, OptionError> {
    if value.is_nan() {
        return Err(invalid(name, "expected a number, got NaN"));
    }
    Ok(value)
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
    }
}

pub(crate) fn unknown(name: &str, accepted: &[&str]) -> OptionError {
    invalid(
        name,
        &format!(
            "unknown option{}; accepted: {}",
            did_you_mean(name, accepted),
            accepted.join(", ")
        ),
    )
}

/// " (did you mean `x`?)" for the accepted name closest to `name`, or nothing.
pub(crate) fn did_you_mean(name: &str, accepted: &[&str]) -> String {
    optc_compiler::diag::suggest(name, accepted.iter().copied())
        .map_or(String::new(), |g| format!(" (did you mean `{g}`?)"))
}

/// Implements [`SetOption`] for a struct whose listed fields are each parsed by one of the
/// functions `float`, `count` or `flag` of this module.
macro_rules! impl_set_option {
    ($ty:ty { $($field:ident : $kind:ident),* $(,)? }) => {
        impl $crate::solvers::SetOption for $ty {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

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
