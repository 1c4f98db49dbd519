//! How a decision is told, outside admission: the gate and `check` JSON
//! API ([`json`]), and the decision log every answer is written to
//! ([`decision_log`]). The admission answer, which the API server reads, is
//! [`crate::admission`]'s; the wording of each denial and warning line is
//! [`wording`]'s, so all of them say the same thing.

pub mod decision_log;
pub mod json;
pub mod wording;
