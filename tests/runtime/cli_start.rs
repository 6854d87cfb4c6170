//! `perago start` as a child process.
