//! The wire convention of `EvalMetrics.per_class`: a class without test images has no accuracy,
//! which the engine holds as `None` and the proto carries as NaN. These two functions are the only
//! place that convention is spelled out in code.

/// Engine form to wire form: `None` becomes NaN.
pub fn per_class_to_wire(per_class: &[Option<f32>]) -> Vec<f32> {
    per_class.iter().map(|a| a.unwrap_or(f32::NAN)).collect()
}

/// Wire form to engine form: NaN becomes `None`.
pub fn per_class_from_wire(per_class: &[f32]) -> Vec<Option<f32>> {
    per_class
        .iter()
        .map(|&a| if a.is_nan() { None } else { Some(a) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_classes_travel_as_nan_and_come_back_as_none() {
        let engine = vec![Some(0.5), None, Some(1.0), Some(0.0)];
        let wire = per_class_to_wire(&engine);
        assert_eq!(wire.len(), 4);
        assert!(wire[1].is_nan());
        assert_eq!((wire[0], wire[2], wire[3]), (0.5, 1.0, 0.0));
        assert_eq!(per_class_from_wire(&wire), engine);
    }
}
