//! Finding the one bad item in a batch by halving. Used for module calls that fail (a trap, a
//! deadline, the memory cap) and for commits PostgreSQL refuses: the items that are fine go
//! through, and only the item that fails on its own is handed to `alone`, which decides what
//! becomes of it (a `module_failed` or `sink_refused` rejection).

/// How one attempt at a slice went.
pub(crate) enum Attempt<R, W, E> {
    Done(R),
    /// The slice failed as a whole, maybe through one item's fault: try its halves. `W` says
    /// why (for `alone`).
    Bisect(W),
    /// Stop: no part can succeed now (an outage, a broken module, a fatal error).
    Stop(E),
}

/// Results of halves are merged back in order.
pub(crate) trait Merge: Default {
    fn merge(&mut self, other: Self);
}

impl<T> Merge for Vec<T> {
    fn merge(&mut self, other: Self) {
        self.extend(other);
    }
}

/// Runs `attempt` on `items`; when it asks to bisect, runs it on each half, down to single
/// items, whose failure goes to `alone`. `state` is what both need mutably (an instance, a sink).
pub(crate) fn bisect<'a, S, T, R: Merge, W, E>(
    state: &mut S,
    items: &'a [T],
    attempt: &mut impl FnMut(&mut S, &'a [T]) -> Attempt<R, W, E>,
    alone: &mut impl FnMut(&mut S, &'a T, W) -> Result<R, E>,
) -> Result<R, E> {
    match attempt(state, items) {
        Attempt::Done(result) => Ok(result),
        Attempt::Stop(e) => Err(e),
        Attempt::Bisect(why) => match items {
            [] => Ok(R::default()),
            [item] => alone(state, item, why),
            _ => {
                let (left, right) = items.split_at(items.len() / 2);
                let mut result = bisect(state, left, attempt, alone)?;
                result.merge(bisect(state, right, attempt, alone)?);
                Ok(result)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items fail a slice if it contains a negative number; `alone` marks them.
    fn run(items: &[i32], calls: &mut usize) -> Result<Vec<String>, ()> {
        bisect(
            calls,
            items,
            &mut |calls, slice: &[i32]| {
                *calls += 1;
                match slice.iter().any(|&i| i < 0) {
                    true => Attempt::Bisect("negative"),
                    false => Attempt::Done(slice.iter().map(i32::to_string).collect()),
                }
            },
            &mut |_, item, why| Ok(vec![format!("{item} rejected: {why}")]),
        )
    }

    #[test]
    fn one_bad_item_is_isolated_in_order_and_the_rest_go_through() {
        let mut calls = 0;
        let out = run(&[1, 2, 3, -4, 5, 6, 7, 8], &mut calls).unwrap();
        assert_eq!(out, ["1", "2", "3", "-4 rejected: negative", "5", "6", "7", "8"]);
        // 8 -> 4+4 -> 2+2 -> 1+1: seven attempts, not one per item.
        assert_eq!(calls, 7);
    }

    #[test]
    fn a_clean_batch_is_one_attempt_and_every_bad_item_is_found() {
        let mut calls = 0;
        assert_eq!(run(&[1, 2, 3], &mut calls).unwrap().len(), 3);
        assert_eq!(calls, 1);
        let out = run(&[-1, -2, -3], &mut 0).unwrap();
        assert!(out.iter().all(|o| o.contains("rejected")), "{out:?}");
    }

    #[test]
    fn stop_ends_the_search() {
        let result: Result<Vec<()>, &str> = bisect(
            &mut (),
            &[1, 2, 3, 4],
            &mut |_, _| Attempt::<_, (), _>::Stop("down"),
            &mut |_, _, _| Ok(vec![]),
        );
        assert_eq!(result, Err("down"));
    }
}
