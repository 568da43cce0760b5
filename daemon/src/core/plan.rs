//! From an experiment's grid points to the runs it needs, before anything is stored: each point's
//! run; the shared stage-1 run of decoupled methods (cRT, LWS, tau-norm), which their stage-2 runs
//! depend on; with `[report] relative_accuracy`, the balanced references of every point; and no
//! run twice: a run whose config hash is already planned, or already stored and not failed, is
//! reused instead of trained again. Pure: the caller supplies the stored runs to reuse.

use std::collections::HashMap;

use cauda_plugins::spec::ResolvedRun;
use cauda_plugins::train::{config_hash, stage1_run};

use crate::model::RunId;

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
    pub run: ResolvedRun,
    pub config_hash: String,
    /// The run whose final checkpoint it starts from (its stage 1).
    pub depends_on: Option<PlanRef>,
}

/// One grid point: its run and, for relative accuracy, its balanced references.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPoint {
    pub name: String,
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

/// A grid point as resolved, with its balanced variants when relative accuracy is asked for.
#[derive(Debug, Clone)]
pub struct PointInput {
    pub name: String,
    pub run: ResolvedRun,
    /// (plain CE on the balanced variant, the method on the balanced variant).
    pub references: Option<(ResolvedRun, ResolvedRun)>,
}

/// Builds a plan; `stored` maps config hashes to stored runs that may be reused (queued, running
/// or succeeded).
pub fn plan(points: Vec<PointInput>, stored: &HashMap<String, RunId>) -> Plan {
    let mut planner = Planner {
        plan: Plan::default(),
        by_hash: HashMap::new(),
        stored,
    };
    // Plain runs first, so a decoupled method's stage 1 reuses an identical point (`ce`) rather
    // than the other way round; the points keep grid order.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| points[i].run.stage2.is_some());
    let mut refs = vec![None; points.len()];
    for i in order {
        refs[i] = Some(planner.add(&points[i].name, &points[i].run));
    }
    for (point, run) in points.into_iter().zip(refs) {
        let references = point.references.as_ref().map(|(ce, own)| {
            (
                planner.add(&format!("{}/ce-balanced", point.name), ce),
                planner.add(&format!("{}/balanced", point.name), own),
            )
        });
        if let Some(run) = run {
            planner.plan.points.push(PlannedPoint {
                name: point.name,
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
}

impl Planner<'_> {
    /// The run for `run`: planned or stored already, else a new one (after its stage 1).
    fn add(&mut self, name: &str, run: &ResolvedRun) -> PlanRef {
        let hash = config_hash(run);
        if let Some(found) = self.by_hash.get(&hash) {
            return *found;
        }
        if let Some(&id) = self.stored.get(&hash) {
            let found = PlanRef::Stored(id);
            self.by_hash.insert(hash, found);
            if !self.plan.reused.contains(&id) {
                self.plan.reused.push(id);
            }
            return found;
        }
        let depends_on = stage1_run(run).map(|first| self.add(&format!("{name}/stage1"), &first));
        let mut named = run.clone();
        named.name = name.to_string();
        let index = self.plan.new.len();
        self.plan.new.push(NewRun {
            name: name.to_string(),
            run: named,
            config_hash: hash.clone(),
            depends_on,
        });
        self.by_hash.insert(hash, PlanRef::New(index));
        PlanRef::New(index)
    }
}
