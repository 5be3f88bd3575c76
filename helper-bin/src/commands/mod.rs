//! One module per verb.

pub mod check;
