//! Parallel apply: source transactions that touch disjoint rows are applied on
//! several target connections at once, and still commit on the target in source
//! commit order, each with its position.
//!
//! (The design is written up here by the code that implements it: the dispatcher,
//! its workers, and how a restart after kill -9 neither loses nor repeats a change.)

pub mod keys;
