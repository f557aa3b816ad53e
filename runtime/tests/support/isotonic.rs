//! The reference solution of isotonic regression, for the suites that solve it (`auglag.rs`,
//! `cli.rs` include this file by path).

/// Isotonic regression by pooling adjacent violators: the nondecreasing x nearest to `y`.
pub fn pool_adjacent_violators(y: &[f64]) -> Vec<f64> {
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for &v in y {
        blocks.push((v, 1));
        while let [.., (s0, n0), (s1, n1)] = blocks[..] {
            if s0 / n0 as f64 <= s1 / n1 as f64 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().unwrap() = (s0 + s1, n0 + n1);
        }
    }
    blocks
        .iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s / n as f64, n))
        .collect()
}
