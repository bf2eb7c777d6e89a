//! Offline tools run from the CLI.
