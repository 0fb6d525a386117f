//! Start-up work split over two threads (the machines fak runs on have two cores or more):
//! parsing the stdlib, building buckets and DFAs. Decisions never spawn.

/// Deals `items` out to two lists, heaviest first, each to the list with less weight so far.
pub(crate) fn deal_two<T>(mut items: Vec<T>, weight: impl Fn(&T) -> usize) -> (Vec<T>, Vec<T>) {
    items.sort_by_key(|t| std::cmp::Reverse(weight(t)));
    let (mut mine, mut theirs, mut mine_w, mut theirs_w) = (Vec::new(), Vec::new(), 0usize, 0usize);
    for t in items {
        let w = weight(&t);
        if mine_w <= theirs_w {
            mine_w += w;
            mine.push(t);
        } else {
            theirs_w += w;
            theirs.push(t);
        }
    }
    (mine, theirs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn deals_heaviest_first_to_the_lighter_side() {
        let (a, b) = super::deal_two(vec![1, 5, 2, 4, 3], |x| *x);
        assert_eq!((a, b), (vec![5, 2, 1], vec![4, 3]));
    }
}
