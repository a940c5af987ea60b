//! MQTT (DESIGN §5, S4, S5, S7): the hub's broker connection, the embedded
//! broker, and managing device access on the broker.

pub mod admin;
pub mod dynsec;
