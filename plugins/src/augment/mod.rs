//! augment (filled in by its owner)
