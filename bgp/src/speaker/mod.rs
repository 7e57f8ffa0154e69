//! The tokio side of the speaker. For now only the framer that puts the [`crate::wire`]
//! codec on a byte stream exists; the session tasks and the `Speaker` handle come with the
//! speaker issue.

pub mod codec;
