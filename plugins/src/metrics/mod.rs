//! metrics (filled in by its owner)
