//! Parsing of `--data NAME=PATH`, `--param NAME=VALUE` and `--dims n=..,d=..` strings.

/// Splits `NAME=VALUE`; the error says which flag was malformed.
pub fn split_assignment<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim(), value.trim()))
        }
        _ => Err(format!(
            "`{flag} {text}` is not of the form NAME=VALUE (for example `{flag} X=data/X.npy`)"
        )),
    }
}

/// Parses `n=1000,d=100` into pairs.
pub fn parse_dims(text: &str) -> Result<Vec<(String, u64)>, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (name, value) = split_assignment("--dims", part)?;
            let size = value.parse::<u64>().map_err(|_| {
                format!("`--dims {part}`: `{value}` is not a nonnegative integer size")
            })?;
            Ok((name.to_string(), size))
        })
        .collect()
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
        assert_eq!(
            parse_dims("n=1000, d=100").unwrap(),
            vec![("n".to_string(), 1000), ("d".to_string(), 100)]
        );
        assert!(parse_dims("n=-1").is_err());
        assert!(parse_dims("n").is_err());
        assert_eq!(
            split_assignment("--data", "X=a=b.npy").unwrap(),
            ("X", "a=b.npy")
        );
        assert!(split_assignment("--data", "=x").is_err());
        assert_eq!(parse_param_value("k", "3").unwrap(), 3.0);
        assert!(parse_param_value("k", "nan").is_err());
    }
}
