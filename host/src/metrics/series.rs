//! How a set of series is declared once: the field's name is the served name, its doc comment
//! the help text, its type the metric type (see `mod.rs`).

use prometheus_client::registry::{Metric, Registry, Unit};

/// Declares a set of series, `Struct;` then for each: `/// help` then `name: Type = initial
/// value`, and `; unit Seconds` (or `Bytes`) when the name ends with that unit.
macro_rules! series {
    ($struct:ident; $( $(#[doc = $help:literal])+ $name:ident: $ty:ty = $init:expr $(; unit $unit:ident)? ,)*) => {
        pub(crate) struct $struct {
            $( $(#[doc = $help])+ pub(crate) $name: $ty, )*
        }

        impl $struct {
            fn new() -> Self {
                $struct { $( $name: $init, )* }
            }

            fn register(&self, registry: &mut Registry) {
                $(
                    let unit: Option<Unit> = None $( .or(Some(Unit::$unit)) )?;
                    register(registry, stringify!($name), concat!($($help),+), self.$name.clone(), unit);
                )*
            }
        }
    };
}

pub(super) use series;

/// Registers `metric` as `name` (without the unit suffix, which prometheus-client appends).
pub(super) fn register(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: impl Metric,
    unit: Option<Unit>,
) {
    let help = help.trim();
    match unit {
        None => registry.register(name, help, metric),
        Some(unit) => {
            let suffix = format!("_{}", unit.as_str());
            let base = name.strip_suffix(&suffix).expect("a series with a unit ends with it");
            registry.register_with_unit(base, help, unit, metric)
        }
    }
}
