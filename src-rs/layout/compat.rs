//! The `sqlite-s3vfs` layout: the Python library's exact format. A file is stored as
//! `{prefix}/{block:010}` objects of `blockSize` bytes (the last may be shorter) and its size is
//! the sum of the object sizes; the rollback journal of `{prefix}` is the file `{prefix}-journal`.

/// Names the block objects of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockKeys {
    file_prefix: String,
}

impl BlockKeys {
    pub fn new(file_prefix: impl Into<String>) -> Self {
        BlockKeys {
            file_prefix: file_prefix.into(),
        }
    }

    pub fn key(&self, block: u64) -> String {
        format!("{}/{block:010}", self.file_prefix)
    }

    /// The LIST prefix that finds every block of the file.
    pub fn list_prefix(&self) -> String {
        format!("{}/", self.file_prefix)
    }

    /// The block index of a key of this file, if it is one.
    pub fn parse(&self, key: &str) -> Option<u64> {
        let rest = key.strip_prefix(&self.list_prefix())?;
        (rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()))
            .then(|| rest.parse().ok())
            .flatten()
    }
}

pub fn journal_prefix(prefix: &str) -> String {
    format!("{prefix}-journal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_python_library() {
        let keys = BlockKeys::new("dir/cool.sqlite");
        assert_eq!(keys.key(0), "dir/cool.sqlite/0000000000");
        assert_eq!(keys.key(262144), "dir/cool.sqlite/0000262144");
        assert_eq!(keys.parse("dir/cool.sqlite/0000000042"), Some(42));
        assert_eq!(keys.parse("dir/cool.sqlite/42"), None);
        assert_eq!(keys.parse("dir/cool.sqlite-journal/0000000000"), None);
        assert_eq!(journal_prefix("a/b"), "a/b-journal");
    }
}
