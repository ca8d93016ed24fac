//! The figures a page can mount and the settings each one takes (kind, range, default): the one
//! description that the figures build their controls from, that the JS API exports (`figures()`),
//! and that `<fm-figure>`'s list in www/embed.js and the README's table are generated from.

use crate::flow::Dataset;
use serde::Serialize;

/// A figure: the name `<fm-figure name>` and `mountFigure` take, and its settings in the order
/// of its controls.
#[derive(Debug)]
pub struct FigureSpec {
    pub name: &'static str,
    pub settings: &'static [Setting],
}

/// One setting: a control in the figure, an attribute of `<fm-figure>`, a key in a shared link.
#[derive(Debug)]
pub struct Setting {
    pub key: &'static str,
    /// The control's label.
    pub label: &'static str,
    pub kind: Kind,
}

/// One option of a drop-down: its value (attribute, link) and its label.
pub type Choice = (&'static str, &'static str);

#[derive(Debug)]
pub enum Kind {
    /// A slider over min..=max by `step`, its value shown with `digits` decimals.
    Number {
        min: f64,
        max: f64,
        step: f64,
        default: f64,
        digits: usize,
    },
    /// A drop-down: `before`, then every dataset preset, then `after`.
    Choice {
        before: &'static [Choice],
        after: &'static [Choice],
        default: &'static str,
    },
}

impl Setting {
    /// The default of a number setting (NaN for a choice).
    pub const fn number(&self) -> f64 {
        match self.kind {
            Kind::Number { default, .. } => default,
            Kind::Choice { .. } => f64::NAN,
        }
    }

    /// The default of a choice setting ("" for a number).
    pub const fn choice(&self) -> &'static str {
        match self.kind {
            Kind::Choice { default, .. } => default,
            Kind::Number { .. } => "",
        }
    }

    /// A choice's options in the order of its drop-down (empty for a number).
    pub fn options(&self) -> Vec<Choice> {
        match self.kind {
            Kind::Choice { before, after, .. } => before
                .iter()
                .copied()
                .chain(Dataset::ALL.iter().map(|d| (d.id(), d.label())))
                .chain(after.iter().copied())
                .collect(),
            Kind::Number { .. } => Vec::new(),
        }
    }

    /// The values a number setting takes ((max - min) / step + 1), or a choice's options.
    pub fn steps(&self) -> usize {
        match self.kind {
            Kind::Number { min, max, step, .. } => ((max - min) / step).round() as usize + 1,
            Kind::Choice { .. } => self.options().len(),
        }
    }
}

impl Setting {
    /// The setting as the figure handles describe it: "t: a number in [0, 0.999] (step 0.001)",
    /// "dataset: one of moons, ...".
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Number { min, max, step, .. } => {
                format!("{}: a number in [{min}, {max}] (step {step})", self.key)
            }
            Kind::Choice { .. } => format!("{}: one of {}", self.key, self.values().join(", ")),
        }
    }

    /// A choice's values in the order of its drop-down (empty for a number).
    fn values(&self) -> Vec<&'static str> {
        self.options().into_iter().map(|(value, _)| value).collect()
    }

    /// `value`, as a page hands it in (an attribute, a link, `FigureHandle.set`), checked against
    /// the setting: the value for its control, or why it is refused (saying what is valid).
    pub fn check(&self, value: &str) -> Result<String, String> {
        match self.kind {
            Kind::Number { min, max, .. } => {
                match value.trim().parse::<f64>().ok().filter(|v| v.is_finite()) {
                    Some(v) if v >= min && v <= max => Ok(v.to_string()),
                    _ => Err(format!(
                        "{} must be {}, got \"{value}\"",
                        self.key,
                        &self.describe()[self.key.len() + 2..]
                    )),
                }
            }
            Kind::Choice { .. } => match self.values().contains(&value) {
                true => Ok(value.to_string()),
                false => Err(format!(
                    "{} must be one of {}, got \"{value}\"",
                    self.key,
                    self.values().join(", ")
                )),
            },
        }
    }
}

impl FigureSpec {
    /// Setting `key` checked with `Setting::check`; an unknown key is refused with the figure's
    /// settings.
    pub fn check(&self, key: &str, value: &str) -> Result<(&'static Setting, String), String> {
        let Some(setting) = self.settings.iter().find(|s| s.key == key) else {
            return Err(match self.settings.is_empty() {
                true => format!("this figure has no setting \"{key}\" (it has none)"),
                false => format!(
                    "this figure has no setting \"{key}\"; its settings: {}",
                    self.settings
                        .iter()
                        .map(Setting::describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        };
        Ok((setting, setting.check(value)?))
    }
}

/// What the JS API exports for a figure (`figures()`): `{ name, settings }`.
#[derive(Serialize)]
pub struct FigureView {
    name: &'static str,
    settings: Vec<SettingView>,
}

/// A setting as the JS API exports it, tagged by `kind`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum SettingView {
    Number {
        key: &'static str,
        label: &'static str,
        min: f64,
        max: f64,
        step: f64,
        default: f64,
    },
    Choice {
        key: &'static str,
        label: &'static str,
        options: Vec<OptionView>,
        default: &'static str,
    },
}

#[derive(Serialize)]
struct OptionView {
    value: &'static str,
    label: &'static str,
}

impl FigureSpec {
    /// The figure as the JS API exports it.
    pub fn view(&self) -> FigureView {
        let settings = self
            .settings
            .iter()
            .map(|s| match s.kind {
                Kind::Number {
                    min,
                    max,
                    step,
                    default,
                    ..
                } => SettingView::Number {
                    key: s.key,
                    label: s.label,
                    min,
                    max,
                    step,
                    default,
                },
                Kind::Choice { default, .. } => SettingView::Choice {
                    key: s.key,
                    label: s.label,
                    options: s
                        .options()
                        .into_iter()
                        .map(|(value, label)| OptionView { value, label })
                        .collect(),
                    default,
                },
            })
            .collect();
        FigureView {
            name: self.name,
            settings,
        }
    }
}

const fn number(
    key: &'static str,
    label: &'static str,
    (min, max, step): (f64, f64, f64),
    default: f64,
    digits: usize,
) -> Setting {
    Setting {
        key,
        label,
        kind: Kind::Number {
            min,
            max,
            step,
            default,
            digits,
        },
    }
}

const fn datasets(
    key: &'static str,
    label: &'static str,
    before: &'static [Choice],
    after: &'static [Choice],
    default: &'static str,
) -> Setting {
    Setting {
        key,
        label,
        kind: Kind::Choice {
            before,
            after,
            default,
        },
    }
}

pub mod noise_to_data {
    use super::*;
    pub const SPEC: FigureSpec = FigureSpec {
        name: "noise-to-data",
        settings: &[],
    };
}

pub mod conditional_paths {
    use super::*;
    pub const GAUSSIAN: &str = "gaussian";
    pub const SOURCE: Setting = datasets(
        "source",
        "Source",
        &[(GAUSSIAN, "Gaussian N(0, I)")],
        &[],
        GAUSSIAN,
    );
    pub const TARGET: Setting = datasets("target", "Target", &[], &[], "moons");
    pub const T: Setting = number("t", "t", (0.0, 1.0, 0.01), 0.5, 2);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "conditional-paths",
        settings: &[SOURCE, TARGET, T],
    };
}

pub mod velocity_field {
    use super::*;
    /// The reader's own points, placed by clicking.
    pub const CUSTOM: &str = "custom";
    pub const DATASET: Setting = datasets(
        "dataset",
        "Dataset",
        &[],
        &[(CUSTOM, "Your points (click)")],
        "moons",
    );
    pub const N: Setting = number("n", "n", (2.0, 2000.0, 1.0), 200.0, 0);
    pub const T: Setting = number("t", "t", (0.0, 0.999, 0.001), 0.5, 3);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "velocity-field",
        settings: &[DATASET, N, T],
    };
}

pub mod memorization {
    use super::*;
    pub const DATASET: Setting = datasets("dataset", "Dataset", &[], &[], "moons");
    pub const N: Setting = number("n", "n", (2.0, 500.0, 1.0), 50.0, 0);
    pub const T: Setting = number("t", "t", (0.0, 1.0, 0.01), 0.0, 2);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "memorization",
        settings: &[DATASET, N, T],
    };
}

pub mod stochastic_target {
    use super::*;
    pub const THREE: &str = "three";
    pub const DATASET: Setting = datasets(
        "dataset",
        "Training points",
        &[(THREE, "Three points")],
        &[],
        THREE,
    );
    pub const N: Setting = number("n", "n (presets)", (3.0, 1000.0, 1.0), 100.0, 0);
    pub const T: Setting = number("t", "t", (0.0, 0.99, 0.01), 0.3, 2);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "stochastic-target",
        settings: &[DATASET, N, T],
    };
}

pub mod target_alignment {
    use super::*;
    pub const SPEC: FigureSpec = FigureSpec {
        name: "target-alignment",
        settings: &[],
    };
}

pub mod objective_gap {
    use super::*;
    pub const SPEC: FigureSpec = FigureSpec {
        name: "objective-gap",
        settings: &[],
    };
}

pub mod alignment_dimensions {
    use super::*;
    pub const SPEC: FigureSpec = FigureSpec {
        name: "alignment-by-dimension",
        settings: &[],
    };
}

pub mod digit_memorization {
    use super::*;
    pub const SPEC: FigureSpec = FigureSpec {
        name: "digit-memorization",
        settings: &[],
    };
}

pub mod cfm_efm {
    use super::*;
    pub const DATASET: Setting = datasets("dataset", "Data", &[], &[], "8gaussians");
    pub const SPEC: FigureSpec = FigureSpec {
        name: "cfm-vs-efm",
        settings: &[DATASET],
    };
}

pub mod model_capacity {
    use super::*;
    pub const LOG2WIDTH: Setting = number("log2width", "log₂ width", (4.0, 8.0, 1.0), 6.0, 0);
    pub const N: Setting = number("n", "n", (10.0, 500.0, 10.0), 100.0, 0);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "model-capacity",
        settings: &[LOG2WIDTH, N],
    };
}

pub mod hybrid_tau {
    use super::*;
    pub const TAU: Setting = number("tau", "τ", (0.0, 1.0, 0.05), 0.0, 2);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "hybrid-tau",
        settings: &[TAU],
    };
}

pub mod new_digits {
    use super::*;
    pub const TAU: Setting = number("tau", "τ", (0.0, 1.0, 0.1), 0.0, 1);
    /// The batch of the reader's own training ("Train from scratch"); it may change mid-run.
    pub const BATCH: Setting = number("batch", "batch", (4.0, 64.0, 4.0), 64.0, 0);
    pub const SPEC: FigureSpec = FigureSpec {
        name: "new-digits",
        settings: &[TAU, BATCH],
    };
}

/// Every figure, in the article's order. The catalogue lives outside `web` (and each figure's
/// file refers to its `SPEC` here) because native code reads it too: `cargo xtask` writes the
/// README's table and the TypeScript types from it, and native tests check pages against it.
pub const FIGURES: [&FigureSpec; 13] = [
    &noise_to_data::SPEC,
    &conditional_paths::SPEC,
    &velocity_field::SPEC,
    &memorization::SPEC,
    &stochastic_target::SPEC,
    &target_alignment::SPEC,
    &objective_gap::SPEC,
    &alignment_dimensions::SPEC,
    &digit_memorization::SPEC,
    &cfm_efm::SPEC,
    &model_capacity::SPEC,
    &hybrid_tau::SPEC,
    &new_digits::SPEC,
];

/// The figure called `name`. The list goes through `black_box` so that the search stays a loop:
/// unrolled over the thirteen names it cost the article's module 3.6 KB of code.
pub fn figure(name: &str) -> Option<&'static FigureSpec> {
    let figures: &'static [&'static FigureSpec] = std::hint::black_box(&FIGURES);
    figures.iter().copied().find(|f| f.name == name)
}

/// The README's table of `<fm-figure>` names and attributes (Markdown rows, header included).
pub fn readme_table() -> String {
    let mut out = String::from(
        "| `name` | attributes (also properties: `el.t = 0.5`; changes apply at once) |\n| --- | --- |\n",
    );
    for figure in &FIGURES {
        let settings: Vec<String> = figure.settings.iter().map(describe).collect();
        let settings = if settings.is_empty() {
            "—".to_string()
        } else {
            settings.join(", ")
        };
        out += &format!("| `{}` | {settings} |\n", figure.name);
    }
    out
}

/// "`t` (0..0.999, default 0.5)", "`dataset` (moons, …; default moons)".
fn describe(setting: &Setting) -> String {
    match setting.kind {
        Kind::Number {
            min,
            max,
            step,
            default,
            ..
        } => {
            let step = if step == 1.0 {
                String::new()
            } else {
                format!(" by {step}")
            };
            format!("`{}` ({min}..{max}{step}, default {default})", setting.key)
        }
        Kind::Choice { default, .. } => {
            let options: Vec<&str> = setting.options().iter().map(|o| o.0).collect();
            format!(
                "`{}` ({}; default {default})",
                setting.key,
                options.join(", ")
            )
        }
    }
}

/// www/embed.js's `FIGURES` (the attributes each figure observes), as JavaScript.
pub fn embed_list() -> String {
    let mut out = String::from("export const FIGURES = {\n");
    for figure in &FIGURES {
        let keys: Vec<String> = figure
            .settings
            .iter()
            .map(|s| format!("'{}'", s.key))
            .collect();
        out += &format!("  '{}': [{}],\n", figure.name, keys.join(", "));
    }
    out + "};\n"
}

/// The TypeScript union of the figure names, for the declarations the package ships.
pub fn typescript_names() -> String {
    let names: Vec<String> = FIGURES
        .iter()
        .map(|f| format!("    | \"{}\"", f.name))
        .collect();
    format!("export type FigureName =\n{};\n", names.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_unique_and_defaults_lie_in_range() {
        let mut names: Vec<_> = FIGURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIGURES.len(), "a figure name repeats");
        for figure in &FIGURES {
            let mut keys: Vec<_> = figure.settings.iter().map(|s| s.key).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), figure.settings.len(), "{}", figure.name);
            for s in figure.settings {
                match s.kind {
                    Kind::Number {
                        min,
                        max,
                        step,
                        default,
                        ..
                    } => {
                        assert!(min < max && step > 0.0, "{}.{}", figure.name, s.key);
                        assert!((min..=max).contains(&default), "{}.{}", figure.name, s.key);
                        let k = (default - min) / step;
                        assert!(
                            (k - k.round()).abs() < 1e-9,
                            "{}.{} off its steps",
                            figure.name,
                            s.key
                        );
                        let k = (max - min) / step;
                        assert!(
                            (k - k.round()).abs() < 1e-9,
                            "{}.{} max off its steps",
                            figure.name,
                            s.key
                        );
                    }
                    Kind::Choice { default, .. } => {
                        let options = s.options();
                        assert!(
                            options.iter().any(|o| o.0 == default),
                            "{}.{}: default {default} not an option",
                            figure.name,
                            s.key
                        );
                        let mut values: Vec<_> = options.iter().map(|o| o.0).collect();
                        values.sort();
                        values.dedup();
                        assert_eq!(values.len(), options.len(), "{}.{}", figure.name, s.key);
                    }
                }
            }
        }
    }

    #[test]
    fn descriptions_read_as_the_readme_shows_them() {
        assert_eq!(
            describe(&velocity_field::T),
            "`t` (0..0.999 by 0.001, default 0.5)"
        );
        assert_eq!(
            describe(&velocity_field::DATASET),
            "`dataset` (moons, 8gaussians, checkerboard, rings, spirals, custom; default moons)"
        );
        assert_eq!(model_capacity::N.steps(), 50);
        assert!(embed_list().contains("  'hybrid-tau': ['tau'],\n"));
    }

    #[test]
    fn settings_from_a_page_are_checked_against_the_catalogue() {
        let field = figure("velocity-field").unwrap();
        assert_eq!(field.check("t", " 0.25 ").unwrap().1, "0.25");
        assert_eq!(field.check("t", "0").unwrap().1, "0");
        assert_eq!(field.check("dataset", "rings").unwrap().1, "rings");
        for bad in ["1", "-0.1", "NaN", "Infinity", "", "0.5x"] {
            assert_eq!(
                field.check("t", bad).unwrap_err(),
                format!("t must be a number in [0, 0.999] (step 0.001), got \"{bad}\"")
            );
        }
        assert!(field
            .check("dataset", "Moons")
            .unwrap_err()
            .starts_with("dataset must be one of moons, 8gaussians,"));
        let unknown = field.check("tau", "0.5").unwrap_err();
        assert!(
            unknown.starts_with(
                "this figure has no setting \"tau\"; its settings: dataset: one of moons,"
            ),
            "{unknown}"
        );
        assert!(
            unknown.contains("; t: a number in [0, 0.999] (step 0.001)"),
            "{unknown}"
        );
        assert_eq!(
            figure("noise-to-data")
                .unwrap()
                .check("t", "0")
                .unwrap_err(),
            "this figure has no setting \"t\" (it has none)"
        );
    }
}
