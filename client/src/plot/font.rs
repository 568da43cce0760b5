//! The one font every plot uses, embedded in the binary: CI machines and servers have no
//! system fonts, and plotters' `ab_glyph` text needs the font bytes to lay out labels even in
//! SVG. DejaVu Sans (Bitstream Vera license, see `client/assets/DejaVuSans-LICENSE.txt`).

use std::sync::OnceLock;

use plotters::style::FontStyle;

use super::PlotError;

/// DejaVu Sans, as shipped in `client/assets/`.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name plots ask for; the embedded font is registered under it.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters, once per process.
pub fn ensure_registered() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_registers_and_registering_twice_is_fine() {
        assert!(ensure_registered().is_ok());
        assert!(ensure_registered().is_ok());
    }
}
