//! Which lines of the input `send` sends (`--from-line`, `--lines`), and how what was sent is
//! told back: a send that stops part-way names the lines sent and the flag that sends exactly
//! the rest, so a rerun duplicates nothing.

use std::collections::BTreeSet;

/// A set of 1-based line numbers: `3`, `5-9`, `12-` (to the end), comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineSet {
    ranges: Vec<(usize, Option<usize>)>,
}

impl LineSet {
    /// Every line from `first` on.
    pub(crate) fn from_line(first: usize) -> Self {
        LineSet { ranges: vec![(first, None)] }
    }

    pub(crate) fn contains(&self, line: usize) -> bool {
        self.ranges.iter().any(|&(a, b)| line >= a && b.is_none_or(|b| line <= b))
    }
}

impl std::str::FromStr for LineSet {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("`{s}` is not a line number (1 or more)")),
        };
        let ranges = text
            .split(',')
            .map(|part| match part.split_once('-') {
                None => number(part).map(|n| (n, Some(n))),
                Some((a, "")) => number(a).map(|a| (a, None)),
                Some((a, b)) => match (number(a)?, number(b)?) {
                    (a, b) if a <= b => Ok((a, Some(b))),
                    _ => Err(format!("`{part}`: a range goes up (`5-9`)")),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LineSet { ranges })
    }
}

/// `1-3,5,7-` style text of `lines`, a subset of `all` (the line numbers of every body): a
/// run goes on over lines that hold no body (blank ones), and one reaching the last body is
/// written open (`7-`) when `open_end`.
pub(crate) fn ranges(lines: &BTreeSet<usize>, all: &BTreeSet<usize>, open_end: bool) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut in_run = false;
    for &n in all {
        match (lines.contains(&n), in_run, runs.last_mut()) {
            (true, true, Some((_, end))) => *end = n,
            (true, _, _) => runs.push((n, n)),
            (false, _, _) => {}
        }
        in_run = lines.contains(&n);
    }
    let last = all.last().copied();
    runs.iter()
        .map(|&(a, b)| match (a == b, open_end && Some(b) == last) {
            (_, true) => format!("{a}-"),
            (true, false) => a.to_string(),
            (false, false) => format!("{a}-{b}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What to tell after a send that stopped: the lines sent, and the flag sending exactly the
/// lines of `unsent` (`all`: the line numbers of every body of the input).
pub(crate) fn report(
    sent: &BTreeSet<usize>,
    unsent: &BTreeSet<usize>,
    all: &BTreeSet<usize>,
) -> String {
    let sent_text = match sent.is_empty() {
        true => "none".to_owned(),
        false => ranges(sent, all, false),
    };
    let Some(&first) = unsent.first() else {
        return format!("every line was sent ({} messages)", sent.len());
    };
    // `--from-line` only when it names exactly the rest: every body from `first` on.
    let rerun = match all.range(first..).all(|n| unsent.contains(n)) {
        true => format!("--from-line {first}"),
        false => format!("--lines {}", ranges(unsent, all, true)),
    };
    format!(
        "lines sent: {sent_text} ({} messages); not sent: {} ({} messages). To send exactly \
         the rest, rerun with {rerun}",
        sent.len(),
        ranges(unsent, all, false),
        unsent.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_sets_parse_and_match() {
        let set: LineSet = "2,4-6,9-".parse().unwrap();
        let picked: Vec<usize> = (1..=12).filter(|&n| set.contains(n)).collect();
        assert_eq!(picked, [2, 4, 5, 6, 9, 10, 11, 12]);
        for bad in ["0", "3-1", "x", "", "1-2-3"] {
            assert!(bad.parse::<LineSet>().is_err(), "{bad}");
        }
        assert!(LineSet::from_line(3).contains(1000) && !LineSet::from_line(3).contains(2));
    }

    #[test]
    fn reports_name_the_lines_sent_and_the_exact_rerun() {
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<_>>();
        let all = set(&[1, 2, 3, 4, 5, 6]);
        let text = report(&set(&[1, 2, 3]), &set(&[4, 5, 6]), &all);
        assert!(text.contains("lines sent: 1-3 (3 messages)") && text.ends_with("--from-line 4"));
        let all = set(&(1..=10).collect::<Vec<_>>());
        let text = report(&set(&[1, 3, 5, 7]), &set(&[2, 4, 6, 8, 9, 10]), &all);
        assert!(text.contains("lines sent: 1,3,5,7 (4"), "{text}");
        assert!(text.ends_with("--lines 2,4,6,8-"), "{text}");
        // Line 5 blank: runs go over it, and `--from-line` still names exactly the rest.
        let all = set(&[1, 2, 3, 4, 6, 7]);
        assert!(report(&set(&[]), &set(&[1, 2, 3, 4, 6, 7]), &all).ends_with("--from-line 1"));
        let text = report(&set(&[1, 2]), &set(&[3, 4, 6]), &set(&[1, 2, 3, 4, 6, 7, 8]));
        assert!(text.contains("not sent: 3-6 (3") && text.ends_with("--lines 3-6"), "{text}");
        // The rest of a selection that was not the whole file: never `--from-line`.
        let text = report(&set(&[5]), &set(&[6, 8]), &set(&[5, 6, 7, 8]));
        assert!(text.ends_with("--lines 6,8-"), "{text}");
        assert!(report(&set(&[]), &set(&[1, 2]), &set(&[1, 2])).contains("lines sent: none"));
    }
}
