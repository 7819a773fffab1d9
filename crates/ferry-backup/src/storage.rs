//! The object store a repository lives in. (Being built: see the issue-13 rules.)
