//! From an experiment's grid points to the runs it needs, before anything is stored: each point's
//! run; the shared stage-1 run of decoupled methods (cRT, LWS, tau-norm), which their stage-2 runs
//! depend on; with `[report] relative_accuracy`, the balanced references of every point; and no
//! run twice: a run whose config hash is already planned, or already stored and not failed, is
//! reused instead of trained again. Pure: the caller supplies the stored runs to reuse.

use std::collections::HashMap;

use cauda_plugins::registry::Registry;
use cauda_plugins::spec::Coordinate;

use crate::model::RunId;
use crate::run_config::RunConfig;

/// A run the plan refers to: one already stored, or the plan's `new[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanRef {
    Stored(RunId),
    New(usize),
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub name: String,
    /// The grid coordinates of the point that first needed it (its stage 1 and balanced
    /// references carry their point's).
    pub coordinates: Vec<Coordinate>,
    pub run: RunConfig,
    pub config_hash: String,
    /// The run whose final checkpoint it starts from (its stage 1).
    pub depends_on: Option<PlanRef>,
}

/// One grid point: its run and, for relative accuracy, its balanced references.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPoint {
    pub name: String,
    pub coordinates: Vec<Coordinate>,
    pub run: PlanRef,
    /// (plain CE on the balanced variant, the method on the balanced variant).
    pub references: Option<(PlanRef, PlanRef)>,
}

/// What a submission creates and reuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub new: Vec<NewRun>,
    pub points: Vec<PlannedPoint>,
    /// Stored runs the experiment uses, in the order first needed.
    pub reused: Vec<RunId>,
}

/// A run with its config hash, computed once where the run is resolved: the hash (the run's
/// canonical JSON and its sha256) was most of the cost of planning, and planning runs under
/// the daemon's write lock, so a burst of submissions queued behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hashed {
    pub run: RunConfig,
    pub hash: String,
}

impl From<RunConfig> for Hashed {
    fn from(run: RunConfig) -> Self {
        let hash = run.config_hash();
        Self { run, hash }
    }
}

/// A grid point as resolved, with its balanced variants when relative accuracy is asked for.
#[derive(Debug, Clone)]
pub struct PointInput {
    pub name: String,
    /// Its coordinates in the spec's grid (empty without `[sweep]`).
    pub coordinates: Vec<Coordinate>,
    pub run: Hashed,
    /// (plain CE on the balanced variant, the method on the balanced variant).
    pub references: Option<(Hashed, Hashed)>,
}

/// Builds a plan; `stored` maps config hashes to stored runs that may be reused (queued, running
/// or succeeded).
pub fn plan(points: Vec<PointInput>, stored: &HashMap<String, RunId>, registry: &Registry) -> Plan {
    let mut planner = Planner {
        plan: Plan::default(),
        by_hash: HashMap::new(),
        stored,
        registry,
    };
    // Plain runs first, so a decoupled method's stage 1 reuses an identical point (`ce`) rather
    // than the other way round; the points keep grid order.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| points[i].run.run.is_stage2());
    let mut refs = vec![None; points.len()];
    for i in order {
        let point = &points[i];
        refs[i] = Some(planner.add(&point.name, &point.coordinates, &point.run));
    }
    for (point, run) in points.into_iter().zip(refs) {
        let references = point.references.as_ref().map(|(ce, own)| {
            (
                planner.add(
                    &format!("{}/ce-balanced", point.name),
                    &point.coordinates,
                    ce,
                ),
                planner.add(&format!("{}/balanced", point.name), &point.coordinates, own),
            )
        });
        if let Some(run) = run {
            planner.plan.points.push(PlannedPoint {
                name: point.name,
                coordinates: point.coordinates,
                run,
                references,
            });
        }
    }
    planner.plan
}

struct Planner<'a> {
    plan: Plan,
    by_hash: HashMap<String, PlanRef>,
    stored: &'a HashMap<String, RunId>,
    registry: &'a Registry,
}

impl Planner<'_> {
    /// The run for `run`: planned or stored already, else a new one (after its stage 1).
    fn add(&mut self, name: &str, coordinates: &[Coordinate], hashed: &Hashed) -> PlanRef {
        let Hashed { run, hash } = hashed;
        if let Some(found) = self.by_hash.get(hash) {
            return *found;
        }
        if let Some(&id) = self.stored.get(hash) {
            let found = PlanRef::Stored(id);
            self.by_hash.insert(hash.clone(), found);
            if !self.plan.reused.contains(&id) {
                self.plan.reused.push(id);
            }
            return found;
        }
        let depends_on = run
            .stage1(self.registry)
            .map(|first| self.add(&format!("{name}/stage1"), coordinates, &first.into()));
        let mut named = run.clone();
        named.set_name(name);
        let index = self.plan.new.len();
        self.plan.new.push(NewRun {
            name: name.to_string(),
            coordinates: coordinates.to_vec(),
            run: named,
            config_hash: hash.clone(),
            depends_on,
        });
        self.by_hash.insert(hash.clone(), PlanRef::New(index));
        PlanRef::New(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauda_plugins::registry::builtin_registry;
    use cauda_plugins::spec::{ExperimentSpec, PresetBook};

    fn resolved(method: &str, seed: u64, balanced: bool) -> Hashed {
        let text = format!(
            "name = \"p\"\nmethod = \"{method}\"\n[data]\nformat = \"digits\"\nbalanced_variant = {balanced}\n[model]\nbackbone = \"mlp\"\n[train]\nepochs = 2\nseed = {seed}\n"
        );
        let spec = ExperimentSpec::parse("p.toml", &text).unwrap();
        RunConfig::from(
            spec.resolve("p.toml", &PresetBook::builtin(), &builtin_registry())
                .unwrap(),
        )
        .into()
    }

    fn point(method: &str, seed: u64, references: bool) -> PointInput {
        PointInput {
            name: format!("p/method={method},train.seed={seed}"),
            coordinates: vec![
                Coordinate {
                    key: "method".into(),
                    value: method.into(),
                },
                Coordinate {
                    key: "train.seed".into(),
                    value: seed.to_string(),
                },
            ],
            run: resolved(method, seed, false),
            references: references
                .then(|| (resolved("ce", seed, true), resolved(method, seed, true))),
        }
    }

    #[test]
    fn decoupled_methods_share_a_stage_1_and_identical_runs_are_planned_once() {
        let points = vec![
            point("crt", 1, false),
            point("ce", 1, false),
            point("lws", 1, false),
        ];
        let plan = plan(points, &HashMap::new(), &builtin_registry());
        // ce, then crt and lws on ce as their stage 1.
        assert_eq!(
            plan.new.len(),
            3,
            "{:#?}",
            plan.new.iter().map(|n| &n.name).collect::<Vec<_>>()
        );
        assert_eq!(plan.new[0].name, "p/method=ce,train.seed=1");
        for stage2 in &plan.new[1..] {
            assert_eq!(stage2.depends_on, Some(PlanRef::New(0)));
        }
        assert_eq!(plan.points.len(), 3);
        assert_eq!(
            plan.points[1].run,
            PlanRef::New(0),
            "points keep grid order"
        );
        assert!(plan.reused.is_empty());
    }

    #[test]
    fn stored_runs_are_reused_and_references_are_shared() {
        let ce = resolved("ce", 1, false);
        let stored = HashMap::from([(ce.hash.clone(), RunId(7))]);
        let plan = plan(
            vec![point("ce", 1, true), point("focal", 1, true)],
            &stored,
            &builtin_registry(),
        );
        assert_eq!(plan.points[0].run, PlanRef::Stored(RunId(7)));
        assert_eq!(plan.reused, [RunId(7)]);
        // New: focal, the balanced CE (shared; it is also ce's own balanced run), balanced focal.
        let names: Vec<&str> = plan.new.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "p/method=focal,train.seed=1",
                "p/method=ce,train.seed=1/ce-balanced",
                "p/method=focal,train.seed=1/balanced"
            ]
        );
        let (v0, b0) = plan.points[0].references.unwrap();
        let (v1, _) = plan.points[1].references.unwrap();
        assert_eq!((v0, b0), (PlanRef::New(1), PlanRef::New(1)));
        assert_eq!(v1, PlanRef::New(1));
    }
}
