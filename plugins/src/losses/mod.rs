//! losses (filled in by its owner)
