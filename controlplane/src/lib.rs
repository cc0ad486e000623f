//! rvs control plane (being written).
