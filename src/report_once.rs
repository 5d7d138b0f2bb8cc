//! [`ReportOnce`]: which problems were logged already, so a stream that repeats the same
//! fault thousands of times a second logs it once — and a stream of ever-new faults cannot
//! grow the set without bound.
//!
//! Pure: it decides whether to log; the caller logs.

use std::collections::HashSet;

/// Longest problem text remembered, in bytes (cut at a character boundary): problems that
/// differ only past it count as one. Keeps the set at most `limit` × 256 bytes whatever
/// texts a stream makes us build.
pub const MAX_PROBLEM_BYTES: usize = 256;

/// The distinct problem texts seen so far, up to a limit.
#[derive(Debug, Clone)]
pub struct ReportOnce {
    seen: HashSet<String>,
    limit: usize,
    /// A new problem came after the limit was reached.
    overflowed: bool,
}

/// What to do with a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Seen for the first time: report it.
    First,
    /// New, but the limit is reached: report it, saying that further new ones will not be
    /// (given once).
    FirstOverLimit,
    /// Reported before, or over the limit already said: stay quiet.
    Quiet,
}

impl ReportOnce {
    /// Remembers at most `limit` distinct problems; past that, nothing new is reported.
    pub fn new(limit: usize) -> Self {
        Self {
            seen: HashSet::new(),
            limit,
            overflowed: false,
        }
    }

    /// What to do with `problem` (see [`Verdict`]).
    pub fn verdict(&mut self, problem: &str) -> Verdict {
        let mut end = problem.len().min(MAX_PROBLEM_BYTES);
        while !problem.is_char_boundary(end) {
            end -= 1;
        }
        let problem = problem.get(..end).unwrap_or_default();
        if self.seen.contains(problem) {
            Verdict::Quiet
        } else if self.seen.len() < self.limit {
            self.seen.insert(problem.to_string());
            Verdict::First
        } else if !self.overflowed {
            self.overflowed = true;
            Verdict::FirstOverLimit
        } else {
            Verdict::Quiet
        }
    }

    /// The sentence to report for `key` (`what`, or `what` with a note that further kinds
    /// go unreported when the limit is reached), or `None` to stay quiet.
    pub fn report(&mut self, key: &str, what: &str) -> Option<String> {
        match self.verdict(key) {
            Verdict::First => Some(what.to_string()),
            Verdict::FirstOverLimit => Some(format!(
                "{what} (from now on, further kinds of ignored messages go unreported)"
            )),
            Verdict::Quiet => None,
        }
    }

    /// True the first time `problem` is seen (while fewer than the limit were remembered):
    /// log it then, and only then.
    pub fn first_time(&mut self, problem: &str) -> bool {
        self.verdict(problem) == Verdict::First
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

    #[test]
    fn past_the_limit_the_first_new_problem_says_so_once() {
        let mut r = ReportOnce::new(1);
        assert_eq!(r.verdict("a"), Verdict::First);
        assert_eq!(r.verdict("b"), Verdict::FirstOverLimit);
        assert_eq!(r.verdict("c"), Verdict::Quiet);
        assert_eq!(r.verdict("a"), Verdict::Quiet);
    }

    #[test]
    fn long_problems_are_remembered_by_their_start() {
        let mut r = ReportOnce::new(4);
        let long = "é".repeat(MAX_PROBLEM_BYTES);
        assert!(r.first_time(&format!("{long}a")));
        assert!(!r.first_time(&format!("{long}b")));
        assert!(r.seen.iter().all(|p| p.len() <= MAX_PROBLEM_BYTES));
    }
}
