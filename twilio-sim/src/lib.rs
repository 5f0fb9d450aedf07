//! Twilio simulator.
pub mod spec;
