//! Lab test helpers (being written).
