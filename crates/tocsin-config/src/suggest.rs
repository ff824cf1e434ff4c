//! "Did you mean ...?" for misspelled names.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of neighbouring
/// characters (optimal string alignment), so `jsno` is one edit from `json`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between the first i characters of a and the first j of b.
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// `did you mean `x`? ` followed by `rest`, or just `rest`.
pub(crate) fn help_with_suggestion<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    rest: &str,
) -> String {
    match closest(word, candidates) {
        Some(suggestion) => format!("did you mean `{suggestion}`? {rest}"),
        None => rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("escalation_polcy", "escalation_policy"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("jsno", "json"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn suggests_only_close_names() {
        let fields = ["id", "name", "team", "escalation_policy"];
        assert_eq!(
            closest("escalation_polcy", fields),
            Some("escalation_policy")
        );
        assert_eq!(closest("nmae", fields), Some("name"));
        assert_eq!(closest("completely_different", fields), None);
    }
}
