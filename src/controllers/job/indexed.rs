//! Indexed Jobs: completion indexes on pods and the compressed interval lists of
//! `status.completedIndexes` (upstream `indexed_job_utils.go`).
//!
//! Intervals are kept sorted and merged, so membership is a binary search and the string
//! form (`"1,3-5,7"`) is canonical. Corrupt strings are parsed leniently like upstream
//! (bad pieces are skipped), because they come from status written by earlier versions.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// The annotation (and label) holding a pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable exposing the index to containers.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The pod's completion index, if it has a valid one.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse::<i32>()
        .ok()
        .filter(|i| *i >= 0)
}

/// Sorted, non-overlapping, non-adjacent closed intervals of indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(i32, i32)>);

impl Intervals {
    /// Parses `status.completedIndexes`, dropping indexes `>= completions`.
    pub fn parse(text: &str, completions: i32) -> Self {
        let mut out: Vec<(i32, i32)> = Vec::new();
        if text.is_empty() {
            return Intervals(out);
        }
        for piece in text.split(',') {
            let mut limits = piece.splitn(2, '-');
            let Some(Ok(first)) = limits.next().map(str::parse::<i32>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i32>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.1 == first - 1 => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// These intervals plus the given indexes.
    pub fn with_indexes(&self, indexes: impl IntoIterator<Item = i32>) -> Self {
        let set: BTreeSet<i32> = indexes.into_iter().collect();
        let singles = Intervals(set.into_iter().map(|i| (i, i)).collect());
        self.merge(&singles)
    }

    /// The union of two interval lists.
    pub fn merge(&self, other: &Intervals) -> Self {
        let mut all: Vec<(i32, i32)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(i32, i32)> = Vec::with_capacity(all.len());
        for (first, last) in all {
            match out.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// How many indexes the intervals hold.
    pub fn total(&self) -> i32 {
        self.0.iter().map(|(f, l)| l - f + 1).sum()
    }

    /// Whether `ix` is covered.
    pub fn has(&self, ix: i32) -> bool {
        let pos = self.0.partition_point(|(_, last)| *last < ix);
        self.0.get(pos).is_some_and(|(first, _)| *first <= ix)
    }

    /// The first `count` indexes below `completions` not covered.
    pub fn first_missing(&self, count: usize, completions: i32) -> Vec<i32> {
        let mut out = Vec::with_capacity(count);
        let mut candidate = 0;
        for (first, last) in &self.0 {
            while candidate < completions && out.len() < count && candidate < *first {
                out.push(candidate);
                candidate += 1;
            }
            candidate = candidate.max(last + 1);
        }
        while candidate < completions && out.len() < count {
            out.push(candidate);
            candidate += 1;
        }
        out
    }
}

impl std::fmt::Display for Intervals {
    /// Upstream's format: ranges of three or more as `a-b`, pairs as `a,b`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                let sep = if *last == first + 1 { "," } else { "-" };
                write!(f, "{sep}{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip_in_canonical_form() {
        let iv = Intervals::parse("1,3-5,7", 10);
        assert_eq!(iv.to_string(), "1,3-5,7");
        assert_eq!(iv.total(), 5);
        assert_eq!(Intervals::parse("0,1,2", 10).to_string(), "0-2");
        assert_eq!(Intervals::parse("3,4", 10).to_string(), "3,4");
    }

    #[test]
    fn parsing_drops_indexes_beyond_completions_and_junk() {
        assert_eq!(Intervals::parse("1-8", 5).to_string(), "1-4");
        assert_eq!(Intervals::parse("x,2,7", 5).to_string(), "2");
    }

    #[test]
    fn merging_coalesces_adjacent_indexes() {
        let iv = Intervals::parse("0,4", 10).with_indexes([1, 2, 3, 9]);
        assert_eq!(iv.to_string(), "0-4,9");
        assert!(iv.has(3) && iv.has(9) && !iv.has(5));
    }

    #[test]
    fn first_missing_skips_covered_indexes() {
        let iv = Intervals::parse("0,2-3", 10);
        assert_eq!(iv.first_missing(3, 10), vec![1, 4, 5]);
        assert_eq!(iv.first_missing(3, 5), vec![1, 4]);
    }
}
