//! Parsing of `--data NAME=PATH`, `--param NAME=VALUE` and `--dims n=..,d=..` strings.

/// Splits `NAME=VALUE`; the error says which flag was malformed, with an example of it.
pub fn split_assignment<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim(), value.trim()))
        }
        _ => {
            let example = match flag {
                "--data" => "X=data/X.npy",
                "--param" => "lambda=0.1",
                _ => "n=100",
            };
            Err(format!(
                "`{flag} {text}` is not of the form NAME=VALUE (for example `{flag} {example}`)"
            ))
        }
    }
}

/// Parses the `--dims` flags (each `n=1000,d=100`) into pairs; a name given twice or an empty
/// entry (`n=1,,d=2`) is an error, an empty flag gives nothing.
pub fn parse_dims(flags: &[String]) -> Result<Vec<(String, u64)>, String> {
    let mut dims: Vec<(String, u64)> = Vec::new();
    // `--dims ""` gives no sizes (scripts pass the sizes of models that have none).
    let given = flags.iter().filter(|f| !f.trim().is_empty());
    for (flag, part) in given.flat_map(|f| f.split(',').map(move |p| (f, p))) {
        if part.trim().is_empty() {
            return Err(format!(
                "`--dims {flag}` has an empty entry (write `--dims n=100,d=10`)"
            ));
        }
        let (name, value) = split_assignment("--dims", part)?;
        let size = match value.parse::<u64>() {
            Ok(size) => size,
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                return Err(format!(
                    "`--dims {part}`: `{value}` is too large for a size"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "`--dims {part}`: `{value}` is not a nonnegative integer size"
                ))
            }
        };
        if let Some((_, first)) = dims.iter().find(|(n, _)| n == name) {
            return Err(twice("--dims", name, first, size));
        }
        dims.push((name.to_string(), size));
    }
    Ok(dims)
}

/// The error for a name that `flag` gives twice (with the values `first` and `second`): one
/// would silently override the other.
pub fn twice(
    flag: &str,
    name: &str,
    first: impl std::fmt::Display,
    second: impl std::fmt::Display,
) -> String {
    format!("`{flag}` gives `{name}` twice ({first} and {second})")
}

/// Parses a `--param` value: a number.
pub fn parse_param_value(name: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "`--param {name}={value}`: `{value}` is not a finite number"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_and_assignments() {
        let dims =
            |flags: &[&str]| parse_dims(&flags.iter().map(|f| f.to_string()).collect::<Vec<_>>());
        assert_eq!(
            dims(&["n=1000, d=100"]).unwrap(),
            vec![("n".to_string(), 1000), ("d".to_string(), 100)]
        );
        assert_eq!(dims(&["n=3", "m=2"]).unwrap().len(), 2);
        assert!(dims(&["n=-1"]).unwrap_err().contains("nonnegative"));
        assert!(dims(&["n=99999999999999999999"])
            .unwrap_err()
            .contains("too large"));
        assert!(dims(&["n"]).unwrap_err().contains("`--dims n=100`"));
        assert!(dims(&["n=200,n=201"]).unwrap_err().contains("twice"));
        assert!(dims(&["n=2", "n=2"]).unwrap_err().contains("twice"));
        assert!(dims(&[",n=2"]).unwrap_err().contains("empty entry"));
        assert!(dims(&["n=2,,d=3"]).unwrap_err().contains("empty entry"));
        assert!(dims(&[""]).unwrap().is_empty());
        assert!(split_assignment("--param", "lambda")
            .unwrap_err()
            .contains("`--param lambda=0.1`"));
        assert_eq!(
            split_assignment("--data", "X=a=b.npy").unwrap(),
            ("X", "a=b.npy")
        );
        assert!(split_assignment("--data", "=x").is_err());
        assert_eq!(parse_param_value("k", "3").unwrap(), 3.0);
        assert!(parse_param_value("k", "nan").is_err());
    }
}
