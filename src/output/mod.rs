//! Output (being written).
