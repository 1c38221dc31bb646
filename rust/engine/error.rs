//! One error type for the engine; the bindings turn each kind into the matching Python exception.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    /// A bad argument value (becomes ValueError).
    #[error("{0}")]
    Value(String),
    /// A file that cannot be read or is malformed (becomes OSError / ValueError naming the file).
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, EngineError>;
