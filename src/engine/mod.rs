//! The decision engine.

pub mod decision;
