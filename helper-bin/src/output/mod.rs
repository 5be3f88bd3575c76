//! How cgroupctl prints: customer-chosen text made safe for a terminal, aligned tables,
//! doctor's findings, and the Prometheus textfile written for node_exporter.

pub mod clock;
pub mod escape;
pub mod findings;
pub mod table;
pub mod textfile;
