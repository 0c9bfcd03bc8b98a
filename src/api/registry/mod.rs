//! Per-type knowledge: the resource table, defaulting, validation,
//! selectable fields and typed decoding.

pub mod defaults;
pub mod fields;
pub mod names;
pub mod resources;
pub mod typed;
pub mod validation;
