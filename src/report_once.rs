//! [`ReportOnce`]: which problems were logged already, so a stream that repeats the same
//! fault thousands of times a second logs it once — and a stream of ever-new faults cannot
//! grow the set without bound.
//!
//! Pure: it decides whether to log; the caller logs.

use std::collections::HashSet;

/// The distinct problem texts seen so far, up to a limit.
#[derive(Debug, Clone)]
pub struct ReportOnce {
    seen: HashSet<String>,
    limit: usize,
}

impl ReportOnce {
    /// Remembers at most `limit` distinct problems; past that, nothing new is reported.
    pub fn new(limit: usize) -> Self {
        Self {
            seen: HashSet::new(),
            limit,
        }
    }

    /// True the first time `problem` is seen (while fewer than the limit were remembered):
    /// log it then, and only then.
    pub fn first_time(&mut self, problem: &str) -> bool {
        self.seen.len() < self.limit
            && !self.seen.contains(problem)
            && self.seen.insert(problem.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_once_and_no_more_than_the_limit() {
        let mut r = ReportOnce::new(2);
        assert!(r.first_time("a"));
        assert!(!r.first_time("a"));
        assert!(r.first_time("b"));
        assert!(!r.first_time("c"), "past the limit");
        assert!(!r.first_time("b"));
    }
}
