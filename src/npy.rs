//! The `.npy` reader and writer live in `ossify-formats` (byte layouts belong there); re-exported here for the
//! commands and tests that spell `ossify::npy`.

pub use ossify_formats::npy::*;
