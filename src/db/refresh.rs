//! Refreshing a database copied earlier, the part that needs no server: per-row hashes of a
//! table read on each side, compared by key; the key ranges to copy again (merged, and bounded in
//! number so a dump's command stays short); and a table's figures computed from its row hashes
//! exactly as the SQL checksum computes them (row count, decimal sum of the rows' 64-bit hashes),
//! so a table refreshed row by row is verified as strictly as a table copied whole.
//!
//! The server-side part (which tables, which queries, applying the changes) is in `mysql.rs`.

use super::Figures;
use std::collections::BTreeMap;

/// One row: its integer primary key and the 64-bit hash of all its columns.
pub(crate) type RowHash = (i128, u64);

/// What a side's content query printed, by table: `#<TAB>table` starts a table's rows, then one
/// `key<TAB>hash` line a row. Other lines (the table definitions) are left to the caller. Rows
/// come back sorted by key; a key seen twice in one table is an error (it is a primary key).
pub(crate) fn parse_hashes(out: &str) -> Result<BTreeMap<String, Vec<RowHash>>, String> {
    let mut res: BTreeMap<String, Vec<RowHash>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let mut f = line.splitn(2, '\t');
        let (a, b) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if a == "#" {
            let t = super::mysql::unescape_batch(b);
            res.entry(t.clone()).or_default();
            current = Some(t);
            continue;
        }
        let (Ok(k), Ok(h)) = (a.parse::<i128>(), b.parse::<u64>()) else {
            continue;
        };
        match &current {
            Some(t) => res.get_mut(t).expect("entry made above").push((k, h)),
            None => return Err(format!("a row hash before any table: {line:?}")),
        }
    }
    for (t, rows) in res.iter_mut() {
        rows.sort_unstable();
        if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("table {t}: key {} seen twice", w[0].0));
        }
    }
    Ok(res)
}

/// The keys whose rows differ: on one side only, or with another hash. Both inputs sorted.
pub(crate) fn dirty_keys(src: &[RowHash], tgt: &[RowHash]) -> Vec<i128> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < src.len() || j < tgt.len() {
        match (src.get(i), tgt.get(j)) {
            (Some(s), Some(t)) if s.0 == t.0 => {
                if s.1 != t.1 {
                    out.push(s.0);
                }
                i += 1;
                j += 1;
            }
            (Some(s), Some(t)) if s.0 < t.0 => {
                out.push(s.0);
                i += 1;
            }
            (Some(_), Some(t)) => {
                out.push(t.0);
                j += 1;
            }
            (Some(s), None) => {
                out.push(s.0);
                i += 1;
            }
            (None, Some(t)) => {
                out.push(t.0);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Sorted keys as inclusive ranges: neighbours merged, then the ranges closest to each other
/// merged until at most `max` are left (a merged range also covers unchanged rows between: they
/// are deleted and copied again, which is correct, only more work).
pub(crate) fn ranges(keys: &[i128], max: usize) -> Vec<(i128, i128)> {
    let mut out: Vec<(i128, i128)> = Vec::new();
    for &k in keys {
        match out.last_mut() {
            Some(r) if k <= r.1 + 1 => r.1 = r.1.max(k),
            _ => out.push((k, k)),
        }
    }
    let max = max.max(1);
    if out.len() <= max {
        return out;
    }
    // The gaps between neighbouring ranges; close the smallest ones.
    let mut gaps: Vec<i128> = out.windows(2).map(|w| w[1].0 - w[0].1).collect();
    gaps.sort_unstable();
    let limit = gaps[out.len() - max - 1];
    let mut merged: Vec<(i128, i128)> = Vec::with_capacity(max);
    for r in out {
        match merged.last_mut() {
            Some(m) if r.0 - m.1 <= limit => m.1 = r.1,
            _ => merged.push(r),
        }
    }
    merged
}

/// True when `k` lies in one of the sorted, disjoint `ranges`.
pub(crate) fn in_ranges(ranges: &[(i128, i128)], k: i128) -> bool {
    let i = ranges.partition_point(|r| r.1 < k);
    ranges.get(i).is_some_and(|r| r.0 <= k)
}

/// A table's figures from its row hashes: the row count and the decimal sum of the hashes, as
/// the SQL checksum prints them.
pub(crate) fn figures<'a>(rows: impl IntoIterator<Item = &'a RowHash>) -> Figures {
    let (mut n, mut sum) = (0u64, 0u128);
    for r in rows {
        n += 1;
        sum += u128::from(r.1);
    }
    Figures {
        rows: n,
        checksum: sum.to_string(),
    }
}

/// The target's rows after a refresh: those read before it outside the re-copied `ranges`, and
/// those read again inside them (all sorted).
pub(crate) fn after(
    before: &[RowHash],
    ranges: &[(i128, i128)],
    reread: &[RowHash],
) -> Vec<RowHash> {
    let mut out: Vec<RowHash> = before
        .iter()
        .filter(|r| !in_ranges(ranges, r.0))
        .chain(reread.iter().filter(|r| in_ranges(ranges, r.0)))
        .copied()
        .collect();
    out.sort_unstable();
    out
}

/// How many of `rows` lie in `ranges` (the rows a refresh copies again).
pub(crate) fn count_in(rows: &[RowHash], ranges: &[(i128, i128)]) -> u64 {
    rows.iter().filter(|r| in_ranges(ranges, r.0)).count() as u64
}

/// `SHOW CREATE TABLE`'s text without the table's `AUTO_INCREMENT=n` option (the counter is
/// compared and set apart).
pub(crate) fn without_auto_increment(create: &str) -> String {
    const OPT: &str = " AUTO_INCREMENT=";
    let mut out = String::with_capacity(create.len());
    let mut rest = create;
    while let Some(i) = rest.find(OPT) {
        out.push_str(&rest[..i]);
        let tail = &rest[i + OPT.len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push_str(OPT);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// `CHECKSUM TABLE`'s answers in `out` (`db.table<TAB>sum`, the sum `NULL` for a table that
/// is not there), in order. Other lines of a batch (definitions, row hashes) are left out.
pub(crate) fn parse_checksums(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (a, b) = l.split_once('\t')?;
            let sum = b == "NULL" || (!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()));
            (a.contains('.') && sum).then(|| (super::mysql::unescape_batch(a), b.to_string()))
        })
        .collect()
}

/// The target's tables as the copy ahead left them (`db-target-rows.txt` in the state folder):
/// each table's `CHECKSUM TABLE` and the content query's answer (definitions, row hashes, other
/// tables' figures). The window's refresh takes it instead of hashing the target's rows again
/// when `CHECKSUM TABLE` and the definitions still give the same answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedRows {
    pub sums: Vec<(String, String)>,
    pub content: String,
}

const SAVED_MAGIC: &str = "ocmigrate target rows 1\n";

impl SavedRows {
    /// From one batch: `CHECKSUM TABLE` of the `tables` tables, the content query, then
    /// `CHECKSUM TABLE` again. `None` when the two checksums differ (something wrote meanwhile)
    /// or a table is missing from them.
    pub fn from_batch(out: &str, tables: usize) -> Option<SavedRows> {
        let sums = parse_checksums(out);
        if tables == 0 || sums.len() != 2 * tables || sums[..tables] != sums[tables..] {
            return None;
        }
        if sums[..tables].iter().any(|(_, s)| s == "NULL") {
            return None;
        }
        Some(SavedRows {
            sums: sums[..tables].to_vec(),
            content: out.to_string(),
        })
    }

    pub fn to_text(&self) -> String {
        let mut t = String::from(SAVED_MAGIC);
        for (table, sum) in &self.sums {
            t.push_str(&format!("~\t{table}\t{sum}\n"));
        }
        t.push_str("---\n");
        t.push_str(&self.content);
        t
    }

    pub fn from_text(t: &str) -> Option<SavedRows> {
        let rest = t.strip_prefix(SAVED_MAGIC)?;
        let (head, content) = rest.split_once("---\n")?;
        let mut sums = Vec::new();
        for l in head.lines() {
            let mut f = l.split('\t');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some("~"), Some(table), Some(sum), None) => {
                    sums.push((table.to_string(), sum.to_string()))
                }
                _ => return None,
            }
        }
        (!sums.is_empty()).then(|| SavedRows {
            sums,
            content: content.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The saved rows: taken only from a batch whose two checksums agree; written and read back
    /// whole; a damaged file is refused.
    #[test]
    fn saved_target_rows_round_trip_and_refuse_a_moving_table() {
        let out = "oc.oc_a\t11\noc.oc_b\t22\noc_a\tCREATE TABLE `oc_a` (x)\n#\toc_a\n1\t10\n=\toc_b\t2\t99\noc.oc_a\t11\noc.oc_b\t22\n";
        let s = SavedRows::from_batch(out, 2).unwrap();
        assert_eq!(
            s.sums,
            vec![
                ("oc.oc_a".into(), "11".into()),
                ("oc.oc_b".into(), "22".into())
            ]
        );
        assert_eq!(SavedRows::from_text(&s.to_text()), Some(s.clone()));
        assert_eq!(parse_hashes(&s.content).unwrap()["oc_a"], vec![(1, 10)]);
        let moved = out.replacen("oc.oc_b\t22\n", "oc.oc_b\t23\n", 1);
        assert!(
            SavedRows::from_batch(&moved, 2).is_none(),
            "written meanwhile"
        );
        assert!(
            SavedRows::from_batch(out, 3).is_none(),
            "a table without its checksum"
        );
        let gone = out.replace("oc.oc_b\t22", "oc.oc_b\tNULL");
        assert!(SavedRows::from_batch(&gone, 2).is_none());
        assert!(SavedRows::from_text("ocmigrate target rows 1\n~\tx\n---\n").is_none());
        assert!(SavedRows::from_text("something else").is_none());
    }

    #[test]
    fn hashes_parsed_by_table_and_sorted() {
        let out = "oc_a\tCREATE TABLE `oc_a` (...)\n#\toc_a\n3\t30\n1\t10\n#\toc_b\n#\toc_c\n7\t18446744073709551615\n";
        let h = parse_hashes(out).unwrap();
        assert_eq!(h["oc_a"], vec![(1, 10), (3, 30)]);
        assert!(h["oc_b"].is_empty());
        assert_eq!(h["oc_c"], vec![(7, u64::MAX)]);
        assert!(parse_hashes("1\t2\n").is_err());
        assert!(parse_hashes("#\tt\n1\t2\n1\t3\n").is_err());
    }

    #[test]
    fn dirty_keys_are_changed_added_and_removed_rows() {
        let s = [(1, 1), (2, 2), (3, 3), (5, 5)];
        let t = [(1, 1), (2, 9), (4, 4), (5, 5), (6, 6)];
        assert_eq!(dirty_keys(&s, &t), vec![2, 3, 4, 6]);
        assert_eq!(dirty_keys(&s, &s), Vec::<i128>::new());
        assert_eq!(dirty_keys(&s, &[]), vec![1, 2, 3, 5]);
    }

    #[test]
    fn ranges_merge_neighbours_and_stay_within_the_bound() {
        let keys = [1, 2, 3, 7, 8, 20, 22, 100];
        assert_eq!(
            ranges(&keys, 10),
            vec![(1, 3), (7, 8), (20, 20), (22, 22), (100, 100)]
        );
        // Bounded: the smallest gaps close first; every key stays covered.
        let r = ranges(&keys, 3);
        assert!(r.len() <= 3, "{r:?}");
        assert!(keys.iter().all(|k| in_ranges(&r, *k)), "{r:?}");
        assert_eq!(r.last(), Some(&(100, 100)));
        let r = ranges(&keys, 1);
        assert_eq!(r, vec![(1, 100)]);
        let many: Vec<i128> = (0..10_000).map(|i| i * 3).collect();
        let r = ranges(&many, 1500);
        assert!(r.len() <= 1500 && !r.is_empty());
        assert!(many.iter().all(|k| in_ranges(&r, *k)));
        assert!(ranges(&[], 5).is_empty());
    }

    #[test]
    fn figures_as_the_sql_sum_prints_them() {
        let rows = [(1, u64::MAX), (2, u64::MAX), (3, 5)];
        let f = figures(&rows);
        assert_eq!(f.rows, 3);
        assert_eq!(f.checksum, (2 * u128::from(u64::MAX) + 5).to_string());
        assert_eq!(figures(&[]).checksum, "0");
    }

    #[test]
    fn target_after_a_refresh() {
        let before = [(1, 1), (2, 9), (4, 4), (6, 6), (9, 9)];
        let ranges = [(2, 4), (6, 6)];
        let reread = [(2, 2), (3, 3)];
        assert_eq!(
            after(&before, &ranges, &reread),
            vec![(1, 1), (2, 2), (3, 3), (9, 9)]
        );
        assert_eq!(count_in(&before, &ranges), 3);
    }

    #[test]
    fn auto_increment_option_removed() {
        let c = "CREATE TABLE `t` (\n  `id` bigint NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=4711 DEFAULT CHARSET=utf8mb4";
        assert_eq!(
            without_auto_increment(c),
            "CREATE TABLE `t` (\n  `id` bigint NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }
}
