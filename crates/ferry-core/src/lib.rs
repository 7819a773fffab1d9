//! Ferry's engine-neutral vocabulary: values, schema model, log positions, the task
//! file and the error taxonomy. No I/O lives here, so every connector and the engine
//! agree on one meaning for each of these words.

pub mod canonical;
pub mod change;
pub mod check;
pub mod chunk;
pub mod connect;
pub mod error;
pub mod lifecycle;
pub mod position;
pub mod redact;
pub mod schema;
pub mod select;
pub mod spec;
pub mod tls;
pub mod value;

pub use error::{Error, ErrorClass, ErrorKind, Result};
pub use position::Position;
pub use schema::{
    Check, Column, DdlPlan, ForeignKey, Index, LogicalType, PgTypes, Sequence, Table, TableId,
};
pub use spec::{Endpoint, Engine, ExistingData, Mode, TaskSpec};
pub use value::Value;
