//! Weighted percentiles, with the rule Analytics Engine's `quantileExactWeighted` uses: sort by
//! value, accumulate weights, and take the first value whose cumulative weight reaches
//! `q × total`. Zero weights never count.

/// The `q`-quantile (0 ≤ q ≤ 1) of `(value, weight)` pairs; `None` when the weights sum to 0 or
/// `q` is not a number.
pub fn weighted_quantile(pairs: &[(f64, u64)], q: f64) -> Option<f64> {
    if !q.is_finite() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let mut sorted: Vec<(f64, u64)> = pairs
        .iter()
        .copied()
        .filter(|(v, w)| *w > 0 && v.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u128 = sorted.iter().map(|(_, w)| u128::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let threshold = q * total as f64;
    let mut cumulative: u128 = 0;
    for (value, weight) in &sorted {
        cumulative += u128::from(*weight);
        if cumulative as f64 >= threshold {
            return Some(*value);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

/// The weighted mean of `(value, weight)` pairs; `None` when the weights sum to 0.
pub fn weighted_mean(pairs: &[(f64, u64)]) -> Option<f64> {
    let total: f64 = pairs.iter().map(|(_, w)| *w as f64).sum();
    if total <= 0.0 {
        return None;
    }
    Some(pairs.iter().map(|(v, w)| v * *w as f64).sum::<f64>() / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_cumulative_weight_rule() {
        let pairs = [(10.0, 1), (20.0, 1), (30.0, 1), (40.0, 1)];
        assert_eq!(weighted_quantile(&pairs, 0.5), Some(20.0));
        assert_eq!(weighted_quantile(&pairs, 0.95), Some(40.0));
        assert_eq!(weighted_quantile(&pairs, 0.0), Some(10.0));
        assert_eq!(weighted_quantile(&pairs, 1.0), Some(40.0));
        // A weight of 3 counts like three rows.
        let weighted = [(10.0, 3), (100.0, 1)];
        assert_eq!(weighted_quantile(&weighted, 0.5), Some(10.0));
        assert_eq!(weighted_quantile(&weighted, 0.95), Some(100.0));
        // Order of input does not matter; zero weights never count.
        let shuffled = [(40.0, 1), (0.0, 0), (10.0, 1), (30.0, 1), (20.0, 1)];
        assert_eq!(weighted_quantile(&shuffled, 0.5), Some(20.0));
        assert_eq!(weighted_quantile(&[(5.0, 0)], 0.5), None);
        assert_eq!(weighted_quantile(&[], 0.5), None);
        assert_eq!(weighted_quantile(&pairs, f64::NAN), None);
        assert_eq!(weighted_mean(&weighted), Some(32.5));
        assert_eq!(weighted_mean(&[]), None);
    }

    proptest::proptest! {
        #[test]
        fn the_quantile_is_one_of_the_values(
            pairs in proptest::collection::vec((-1e6f64..1e6, 0u64..1000), 0..50),
            q in 0f64..=1.0,
        ) {
            match weighted_quantile(&pairs, q) {
                Some(v) => proptest::prop_assert!(pairs.iter().any(|(x, w)| *x == v && *w > 0)),
                None => proptest::prop_assert!(pairs.iter().all(|(_, w)| *w == 0)),
            }
        }
    }
}
