//! Stage: config. The lists a command line gives (sizes, rates, knob
//! values): each value once, and the request/response combinations.

use std::collections::HashSet;

use crate::error::{Error, Result};

/// `--request-size` and `--response-size`, each without repeats.
pub(super) fn request_response(req: &[usize], resp: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
    let show = |s: &usize| s.to_string();
    Ok((
        unique("--request-size", req.iter().copied(), show)?,
        unique("--response-size", resp.iter().copied(), show)?,
    ))
}

/// Every (request, response) combination, request-major.
pub(super) fn product(req: &[usize], resp: &[usize]) -> Vec<(usize, usize)> {
    req.iter()
        .flat_map(|&q| resp.iter().map(move |&r| (q, r)))
        .collect()
}

/// Keep order; a value given twice is an error (it would be measured twice
/// and reported as two cases with the same name).
pub(super) fn unique<T: Copy + Eq + std::hash::Hash>(
    flag: &'static str,
    items: impl Iterator<Item = T>,
    show: impl Fn(&T) -> String,
) -> Result<Vec<T>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for it in items {
        if !seen.insert(it) {
            return Err(Error::config(
                flag,
                show(&it),
                "given twice; list each value once",
            ));
        }
        out.push(it);
    }
    Ok(out)
}
