//! Saved designs: which artwork sits where on which view of a garment.
//!
//! `design_data` arrives as JSON and is parsed into [`DesignData`]; what is stored is the
//! re-serialised parsed value, so the database only ever holds designs that passed these
//! checks. Whether the artwork ids exist and may be used by this user needs the database and
//! is checked by the caller with [`DesignData::artwork_ids`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::AssetId;
use crate::quote::Location;

/// Most placements on one view.
pub const MAX_PLACEMENTS_PER_VIEW: usize = 20;

/// The printable area of a view, in inches (width, height). A placement's box must lie
/// inside it. Rotation is about the box's centre and is not used for the bounds check: the
/// storefront's editor keeps the unrotated box inside the area, and so does this rule.
pub fn print_area(location: Location) -> (f64, f64) {
    match location {
        Location::Front | Location::Back => (14.0, 16.0),
        Location::Neck => (4.0, 4.0),
    }
}

/// One piece of artwork on a view, in inches from the print area's top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignPlacement {
    pub artwork_id: AssetId,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    #[serde(default)]
    pub rotation: f64,
}

/// The per-view placements of a design. Only the three views exist: any other key is
/// refused.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub front: Vec<DesignPlacement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub back: Vec<DesignPlacement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neck: Vec<DesignPlacement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct DesignError {
    pub field: String,
    pub message: String,
}

impl DesignData {
    /// Parses and checks `design_data`. Errors name the JSON path under `design_data`.
    pub fn parse(value: serde_json::Value) -> Result<Self, DesignError> {
        let data: DesignData = serde_json::from_value(value)
            .map_err(|e| DesignError { field: "design_data".into(), message: e.to_string() })?;
        data.check()?;
        Ok(data)
    }

    fn views(&self) -> [(Location, &Vec<DesignPlacement>); 3] {
        [(Location::Front, &self.front), (Location::Back, &self.back), (Location::Neck, &self.neck)]
    }

    fn check(&self) -> Result<(), DesignError> {
        if self.views().iter().all(|(_, v)| v.is_empty()) {
            return Err(DesignError {
                field: "design_data".into(),
                message: "a design places artwork on at least one view".into(),
            });
        }
        for (location, placements) in self.views() {
            let view = location.as_str();
            if placements.len() > MAX_PLACEMENTS_PER_VIEW {
                return Err(DesignError {
                    field: format!("design_data.{view}"),
                    message: format!("at most {MAX_PLACEMENTS_PER_VIEW} placements per view"),
                });
            }
            let (area_w, area_h) = print_area(location);
            for (i, p) in placements.iter().enumerate() {
                let err = |name: &str, message: String| DesignError {
                    field: format!("design_data.{view}[{i}].{name}"),
                    message,
                };
                let finite = [p.x, p.y, p.width, p.height, p.rotation].iter().all(|v| v.is_finite());
                if !finite {
                    return Err(err("x", "numbers must be finite".into()));
                }
                if p.width <= 0.0 || p.height <= 0.0 {
                    return Err(err("width", "width and height must be positive".into()));
                }
                if p.x < 0.0 || p.x + p.width > area_w {
                    return Err(err(
                        "x",
                        format!("the artwork must lie within the {view} print area ({area_w} in wide)"),
                    ));
                }
                if p.y < 0.0 || p.y + p.height > area_h {
                    return Err(err(
                        "y",
                        format!("the artwork must lie within the {view} print area ({area_h} in high)"),
                    ));
                }
                if !(-360.0..=360.0).contains(&p.rotation) {
                    return Err(err("rotation", "rotation is between -360 and 360 degrees".into()));
                }
            }
        }
        Ok(())
    }

    /// Every artwork id used, each once, for the ownership check.
    pub fn artwork_ids(&self) -> Vec<AssetId> {
        let mut ids: Vec<AssetId> = self.views().iter().flat_map(|(_, v)| v.iter().map(|p| p.artwork_id)).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ART: &str = "7f0c1c52-3c1e-4f59-9a51-3e7f1b0c9d11";

    fn placement(x: f64, y: f64, w: f64, h: f64) -> serde_json::Value {
        json!({"artwork_id": ART, "x": x, "y": y, "width": w, "height": h, "rotation": 0})
    }

    #[test]
    fn a_design_within_the_print_areas_parses_and_lists_its_artwork_once() {
        let d = DesignData::parse(
            json!({"front": [placement(1.0, 1.0, 10.0, 12.0)], "neck": [placement(0.0, 0.0, 4.0, 4.0)]}),
        )
        .unwrap();
        assert_eq!(d.artwork_ids().len(), 1);
        assert_eq!(serde_json::to_value(&d).unwrap()["front"][0]["width"], 10.0);
    }

    #[test]
    fn unknown_views_and_fields_are_refused() {
        assert!(DesignData::parse(json!({"sleeve": [placement(0.0, 0.0, 1.0, 1.0)]})).is_err());
        let mut p = placement(0.0, 0.0, 1.0, 1.0);
        p["price"] = json!(1);
        assert!(DesignData::parse(json!({"front": [p]})).is_err());
        assert!(
            DesignData::parse(json!({"front": [{"artwork_id": "nope", "x": 0, "y": 0, "width": 1, "height": 1}]}))
                .is_err()
        );
        assert!(DesignData::parse(json!({})).is_err(), "an empty design");
        assert!(DesignData::parse(json!([])).is_err());
    }

    #[test]
    fn placements_must_lie_within_the_print_area() {
        let field = |v: serde_json::Value| DesignData::parse(v).unwrap_err().field;
        assert_eq!(field(json!({"front": [placement(5.0, 0.0, 10.0, 1.0)]})), "design_data.front[0].x");
        assert_eq!(field(json!({"back": [placement(0.0, -1.0, 1.0, 1.0)]})), "design_data.back[0].y");
        assert_eq!(field(json!({"neck": [placement(0.0, 0.0, 5.0, 1.0)]})), "design_data.neck[0].x");
        assert_eq!(field(json!({"front": [placement(0.0, 0.0, 0.0, 1.0)]})), "design_data.front[0].width");
        let too_many: Vec<_> = (0..=MAX_PLACEMENTS_PER_VIEW).map(|_| placement(0.0, 0.0, 1.0, 1.0)).collect();
        assert_eq!(field(json!({"front": too_many})), "design_data.front");
        let mut spun = placement(0.0, 0.0, 1.0, 1.0);
        spun["rotation"] = json!(720);
        assert_eq!(field(json!({"front": [spun]})), "design_data.front[0].rotation");
    }
}
