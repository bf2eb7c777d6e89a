//! [`ServerError`]: why a gateway could not start.

/// A failure to start the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Certificates could not be loaded or made.
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    /// The log could not be recovered or opened.
    #[error(transparent)]
    Log(#[from] crate::store::log::LogError),
    /// The cluster could not be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::nats::ClusterError),
    /// Another I/O failure (binding the socket, the secret file...).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Maps an I/O error to [`ServerError::Io`] saying what was being done.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}
