//! The change stream's pieces that are not the phase's orchestration
//! ([`crate::incremental`]): the loop that hands the log's events to the applier.

pub(crate) mod apply_loop;
