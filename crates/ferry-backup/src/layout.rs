//! Where every object of a repository lives. The layout is part of the format: a
//! repository written by one Ferry is read by every later one, so paths change only
//! with [`FORMAT`].
//!
//! ```text
//! <root>/ferry-repository.json                       format marker, cipher key check
//! <root>/clusters/<cluster>/sets/<set>/manifest.json  written last: the set is complete
//! <root>/clusters/<cluster>/sets/<set>/progress.json  while running: files stored and checked
//! <root>/clusters/<cluster>/sets/<set>/data/<t>/<n>-<p>.fzr full: table t's chunk n, part p
//! <root>/clusters/<cluster>/sets/<set>/changes/<t>/<n>.fzr  incremental: table t's piece n
//! ```
//! `<t>` is the table's index in the manifest (names may hold any character), `<n>`
//! six digits, `<p>` three. Set ids sort by start time.

/// The repository format this Ferry writes (and the newest it reads).
pub const FORMAT: u32 = 1;

/// The repository's marker object.
pub const MARKER: &str = "ferry-repository.json";

/// The directory of `cluster`'s sets.
pub fn sets_dir(cluster: &str) -> String {
    format!("clusters/{cluster}/sets")
}

/// The directory of one set.
pub fn set_dir(cluster: &str, set: &str) -> String {
    format!("{}/{set}", sets_dir(cluster))
}

/// A set's manifest.
pub fn manifest(cluster: &str, set: &str) -> String {
    format!("{}/manifest.json", set_dir(cluster, set))
}

/// A running set's progress record.
pub fn progress(cluster: &str, set: &str) -> String {
    format!("{}/progress.json", set_dir(cluster, set))
}

/// A data file's path relative to its set's directory: part `part` of chunk
/// `chunk` of table `table` (a chunk is cut into parts of bounded size, so a file
/// is always small enough to hold in memory, seal and upload in one piece).
pub fn data_file(table: usize, chunk: u32, part: u32) -> String {
    format!("data/{table}/{chunk:06}-{part:03}.fzr")
}

/// A changes file's path relative to its set's directory.
pub fn changes_file(table: usize, piece: u32) -> String {
    format!("changes/{table}/{piece:06}.fzr")
}

/// A new set id: UTC start time (sorts by it), kind letter, 4 random hex digits.
pub fn new_set_id(kind: crate::manifest::SetKind, now_unix: i64, random: u16) -> String {
    let k = match kind {
        crate::manifest::SetKind::Full => 'F',
        crate::manifest::SetKind::Incremental => 'I',
    };
    let t = chrono::DateTime::from_timestamp(now_unix, 0).unwrap_or_default();
    format!("{}-{k}{random:04x}", t.format("%Y%m%dT%H%M%SZ"))
}

/// Whether `s` can be a cluster name (it is a path segment): `[a-z0-9_-]+`, at
/// most 63 characters.
pub fn valid_cluster(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` can be a set id (what [`new_set_id`] makes).
pub fn valid_set_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// RFC 3339 UTC text of a Unix time.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SetKind;

    #[test]
    fn set_ids_sort_by_time_and_name_their_kind() {
        let a = new_set_id(SetKind::Full, 1_764_659_700, 0x3f2a);
        assert_eq!(a, "20251202T071500Z-F3f2a");
        let b = new_set_id(SetKind::Incremental, 1_764_659_701, 0);
        assert!(a < b && valid_set_id(&a) && valid_set_id(&b));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert!(!valid_set_id("../x") && !valid_cluster("Shop") && valid_cluster("shop-1"));
    }
}
