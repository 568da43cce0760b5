//! Reports of an experiment beyond the terminal table: the self-contained HTML page.

pub mod html;
