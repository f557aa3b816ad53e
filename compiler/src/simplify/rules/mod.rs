//! Rewrite rules, grouped by topic, and the machinery they share.
//!
//! Every rule's right side goes through `Checked`: it is instantiated only when its optional
//! guard holds and every node it would add has a valid shape equal to the matched class's shape.
//! Guards state the semantic side conditions (scalars, matrices, equal shapes); the shape check
//! makes it impossible for a rule to add an ill-shaped node.

mod arith;
mod explog;
mod linalg;
mod matfn;
mod reduce;
mod trace;

use super::analysis::{TensorAnalysis, TensorEGraph};
use super::lang::{TensorNode, TensorOp};
use crate::ir::{infer_shape, Dim, Shape};
use egg::{Applier, ENodeOrVar, Id, Language, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

pub type TensorRewrite = Rewrite<TensorNode, TensorAnalysis>;

/// A side condition on a match: the e-graph, the matched class, the substitution.
pub type Guard = Box<dyn Fn(&TensorEGraph, Id, &Subst) -> bool + Send + Sync>;

/// Builds the replacement of a match by hand (for nodes with attributes taken from shapes).
pub type Builder = Box<dyn Fn(&mut TensorEGraph, Id, &Subst) -> Option<Id> + Send + Sync>;

/// All rules, in a fixed order.
pub fn all_rules() -> Vec<TensorRewrite> {
    let mut rules = Vec::new();
    rules.extend(arith::rules());
    rules.extend(linalg::rules());
    rules.extend(matfn::rules());
    rules.extend(trace::rules());
    rules.extend(reduce::rules());
    rules.extend(explog::rules());
    rules
}

/// A right side that checks its guard and the shapes of what it would add before adding it.
struct Checked {
    rhs: Pattern<TensorNode>,
    guard: Option<Guard>,
}

/// The shape of every node of `ast` under `subst`, or `None` if some node is ill-shaped.
fn pattern_shapes(
    egraph: &TensorEGraph,
    ast: &PatternAst<TensorNode>,
    subst: &Subst,
) -> Option<Shape> {
    let mut shapes: Vec<Shape> = Vec::with_capacity(ast.len());
    for node in ast.as_ref() {
        let shape = match node {
            ENodeOrVar::Var(v) => egraph[*subst.get(*v)?].data.shape.clone(),
            ENodeOrVar::ENode(n) => {
                let args: Vec<&Shape> = n.args.iter().map(|&a| &shapes[usize::from(a)]).collect();
                infer_shape(&n.op.to_ir(), &args).ok()?
            }
        };
        shapes.push(shape);
    }
    shapes.pop()
}

/// The class of `ast` under `subst` if every node of it is in the e-graph already.
fn lookup_pattern(
    egraph: &TensorEGraph,
    ast: &PatternAst<TensorNode>,
    subst: &Subst,
) -> Option<Id> {
    let mut ids: Vec<Id> = Vec::with_capacity(ast.len());
    for node in ast.as_ref() {
        let id = match node {
            ENodeOrVar::Var(v) => egraph.find(*subst.get(*v)?),
            ENodeOrVar::ENode(n) => {
                egraph.lookup(n.clone().map_children(|c| ids[usize::from(c)]))?
            }
        };
        ids.push(id);
    }
    ids.pop()
}

impl Applier<TensorNode, TensorAnalysis> for Checked {
    fn apply_one(
        &self,
        egraph: &mut TensorEGraph,
        eclass: Id,
        subst: &Subst,
        searcher_ast: Option<&PatternAst<TensorNode>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        if let Some(guard) = &self.guard {
            if !guard(egraph, eclass, subst) {
                return Vec::new();
            }
        }
        // A right side that is all there already had its shapes checked when it was added.
        if let Some(id) = lookup_pattern(egraph, &self.rhs.ast, subst) {
            let eclass = egraph.find(eclass);
            return if id != eclass
                && egraph[id].data.shape == egraph[eclass].data.shape
                && egraph.union(eclass, id)
            {
                vec![eclass]
            } else {
                Vec::new()
            };
        }
        match pattern_shapes(egraph, &self.rhs.ast, subst) {
            Some(shape) if shape == egraph[eclass].data.shape => {
                self.rhs
                    .apply_one(egraph, eclass, subst, searcher_ast, rule_name)
            }
            _ => Vec::new(),
        }
    }

    fn vars(&self) -> Vec<Var> {
        self.rhs.vars()
    }
}

/// A hand-built right side; the result must have the matched class's shape.
struct Built(Builder);

impl Applier<TensorNode, TensorAnalysis> for Built {
    fn apply_one(
        &self,
        egraph: &mut TensorEGraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<TensorNode>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        match (self.0)(egraph, eclass, subst) {
            Some(id) if egraph[id].data.shape == egraph[eclass].data.shape => {
                if egraph.union(eclass, id) {
                    vec![eclass]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }
}

fn pattern(text: &str) -> Pattern<TensorNode> {
    text.parse()
        .unwrap_or_else(|e| panic!("rule pattern {text:?} does not parse: {e:?}"))
}

fn make_rule(
    name: &str,
    lhs: &str,
    applier: impl Applier<TensorNode, TensorAnalysis> + Send + Sync + 'static,
) -> TensorRewrite {
    Rewrite::new(name, pattern(lhs), applier)
        .unwrap_or_else(|e| panic!("rule {name} is malformed: {e}"))
}

/// `lhs => rhs`, applied where the shapes check.
pub(crate) fn rule(name: &str, lhs: &str, rhs: &str) -> TensorRewrite {
    make_rule(
        name,
        lhs,
        Checked {
            rhs: pattern(rhs),
            guard: None,
        },
    )
}

/// `lhs => rhs if guard`, applied where the guard holds and the shapes check.
pub(crate) fn rule_if(
    name: &str,
    lhs: &str,
    rhs: &str,
    guard: impl Fn(&TensorEGraph, Id, &Subst) -> bool + Send + Sync + 'static,
) -> TensorRewrite {
    make_rule(
        name,
        lhs,
        Checked {
            rhs: pattern(rhs),
            guard: Some(Box::new(guard)),
        },
    )
}

/// `lhs => build(...)`, for right sides with attributes computed from shapes.
pub(crate) fn rule_built(
    name: &str,
    lhs: &str,
    build: impl Fn(&mut TensorEGraph, Id, &Subst) -> Option<Id> + Send + Sync + 'static,
) -> TensorRewrite {
    make_rule(name, lhs, Built(Box::new(build)))
}

pub(crate) fn var(name: &str) -> Var {
    name.parse()
        .unwrap_or_else(|e| panic!("bad pattern variable {name:?}: {e}"))
}

pub(crate) fn shape_of<'a>(egraph: &'a TensorEGraph, subst: &Subst, v: Var) -> &'a Shape {
    &egraph[subst[v]].data.shape
}

pub(crate) fn is_scalar(name: &str) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let v = var(name);
    move |egraph, _, subst| shape_of(egraph, subst, v).is_empty()
}

pub(crate) fn has_rank(name: &str, rank: usize) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let v = var(name);
    move |egraph, _, subst| shape_of(egraph, subst, v).len() == rank
}

pub(crate) fn same_shape(a: &str, b: &str) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let (a, b) = (var(a), var(b));
    move |egraph, _, subst| shape_of(egraph, subst, a) == shape_of(egraph, subst, b)
}

/// The variable has the shape of the whole match (so dropping what it combines with keeps the
/// shape: no broadcasting happened).
pub(crate) fn shaped_like_match(name: &str) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let v = var(name);
    move |egraph, eclass, subst| *shape_of(egraph, subst, v) == egraph[eclass].data.shape
}

/// The class holds an identity matrix.
pub(crate) fn is_eye(name: &str) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let v = var(name);
    move |egraph, _, subst| eye_dim(egraph, subst[v]).is_some()
}

pub(crate) fn eye_dim(egraph: &TensorEGraph, class: Id) -> Option<Dim> {
    egraph[class].nodes.iter().find_map(|n| match n.op {
        TensorOp::Eye(d) => Some(d),
        _ => None,
    })
}

pub(crate) fn both<F, G>(f: F, g: G) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool
where
    F: Fn(&TensorEGraph, Id, &Subst) -> bool,
    G: Fn(&TensorEGraph, Id, &Subst) -> bool,
{
    move |egraph, eclass, subst| f(egraph, eclass, subst) && g(egraph, eclass, subst)
}

/// Adds a node if its arguments fit the op; the way hand-built right sides add nodes.
pub(crate) fn add_checked(egraph: &mut TensorEGraph, op: TensorOp, args: Vec<Id>) -> Option<Id> {
    let node = TensorNode::new(op, args);
    let data: Vec<_> = node.args.iter().map(|&a| &egraph[a].data).collect();
    egraph.analysis.node_data(&node, &data)?;
    Some(egraph.add(node))
}

#[cfg(test)]
mod tests {
    use super::all_rules;

    #[test]
    fn rules_build_and_have_unique_names() {
        let rules = all_rules();
        let mut names: Vec<String> = rules.iter().map(|r| r.name.to_string()).collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
    }
}
