//! rvs benchmarks (being written).
