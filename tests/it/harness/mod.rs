//! The integration-test harness: real Redis servers, a real S3-protocol server, the binary.

pub mod api;
pub mod archiver;
pub mod daemon;
pub mod groups;
pub mod http;
pub mod redis;
pub mod replay;
pub mod s3;
pub mod stream;
