//! AST snapshots of the valid fixtures in `tests/ok/`, and span sanity over all their nodes.

use optc_compiler::ast::*;
use optc_compiler::diag::{SourceMap, Span};
use optc_compiler::render::render_human;
use optc_compiler::syntax::{ast_to_text, parse};

fn parse_ok(path: &std::path::Path) -> (SourceMap, Module) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let mut sources = SourceMap::new();
    let file = sources.add(path.file_name().unwrap().to_string_lossy(), text);
    let (module, diags) = parse(&sources, file);
    assert!(
        diags.is_empty(),
        "{}",
        render_human(&diags, &sources, false)
    );
    (sources, module.expect("no errors, so a module"))
}

#[test]
fn ok_fixtures_ast() {
    insta::glob!("ok/*.opt", |path| {
        let (_, module) = parse_ok(path);
        insta::assert_snapshot!(ast_to_text(&module));
    });
}

/// Checks that `span` lies within `outer` and returns its source text.
fn text_of(sources: &SourceMap, span: Span, outer: Span) -> &str {
    assert!(
        outer.start <= span.start && span.end <= outer.end,
        "{span:?} outside {outer:?}"
    );
    assert!(span.start < span.end, "empty span {span:?}");
    &sources.get(span.file).text[span.start as usize..span.end as usize]
}

fn check_expr(sources: &SourceMap, e: &Expr, outer: Span) {
    let text = text_of(sources, e.span, outer);
    match &e.kind {
        ExprKind::Name(n) => assert_eq!(text, n),
        ExprKind::Int(v) => assert_eq!(text.parse::<i64>().ok(), Some(*v)),
        ExprKind::Real(v) => assert_eq!(text.parse::<f64>().ok(), Some(*v)),
        ExprKind::Str(_) => assert!(text.starts_with('"') && text.ends_with('"')),
        ExprKind::Unary { expr, .. } => {
            assert!(text.starts_with('-'));
            check_expr(sources, expr, e.span);
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            assert!(lhs.span.end < rhs.span.start);
            check_expr(sources, lhs, e.span);
            check_expr(sources, rhs, e.span);
        }
        ExprKind::Call { func, args } => {
            // A desugared pipe `a |> f(b)` starts with its first argument.
            let piped = args
                .first()
                .is_some_and(|a| a.value.span.start < func.span.start);
            assert!(piped || text.starts_with(&func.name), "{text}");
            assert_eq!(text_of(sources, func.span, e.span), func.name);
            for a in args {
                if let Some(n) = &a.name {
                    assert_eq!(text_of(sources, n.span, e.span), n.name);
                }
                check_expr(sources, &a.value, e.span);
            }
        }
        ExprKind::Index { base, indices } => {
            check_expr(sources, base, e.span);
            for i in indices {
                match i {
                    IndexExpr::Single(x) => check_expr(sources, x, e.span),
                    IndexExpr::Range { start, end, span } => {
                        assert!(text_of(sources, *span, e.span).contains(':'));
                        for x in start.iter().chain(end) {
                            check_expr(sources, x, *span);
                        }
                    }
                }
            }
        }
        ExprKind::Array(items) => {
            assert!(text.starts_with('['));
            items.iter().for_each(|x| check_expr(sources, x, e.span));
        }
        ExprKind::Argmin { var, ty, body } => {
            assert!(text.starts_with("argmin"));
            assert_eq!(text_of(sources, var.span, e.span), var.name);
            text_of(sources, ty.span, e.span);
            check_expr(sources, body, e.span);
        }
        ExprKind::Bool(b) => assert_eq!(text, b.to_string()),
    }
}

fn check_constraint(sources: &SourceMap, c: &Constraint, outer: Span) {
    text_of(sources, c.span, outer);
    match &c.kind {
        ConstraintKind::Compare { lhs, rhs, .. } => {
            check_expr(sources, lhs, c.span);
            check_expr(sources, rhs, c.span);
        }
        ConstraintKind::In { expr, set } => {
            check_expr(sources, expr, c.span);
            check_expr(sources, set, c.span);
        }
        ConstraintKind::For {
            start, end, body, ..
        } => {
            check_expr(sources, start, c.span);
            check_expr(sources, end, c.span);
            check_constraint(sources, body, c.span);
        }
    }
}

#[test]
fn ok_fixtures_spans_cover_their_source() {
    insta::glob!("ok/*.opt", |path| {
        let (sources, module) = parse_ok(path);
        for item in &module.items {
            let s = item.span;
            text_of(&sources, s, s);
            match &item.kind {
                ItemKind::Dims(_) => {}
                ItemKind::Data { value, .. } => {
                    value.iter().for_each(|e| check_expr(&sources, e, s))
                }
                ItemKind::Param { value, .. } | ItemKind::Let { value, .. } => {
                    check_expr(&sources, value, s)
                }
                ItemKind::Var { bounds, init, .. } => {
                    bounds
                        .iter()
                        .for_each(|b| check_expr(&sources, &b.value, b.span));
                    init.iter().for_each(|e| check_expr(&sources, e, s));
                }
                ItemKind::Fn { params, body, .. } => {
                    params
                        .iter()
                        .filter_map(|p| p.default.as_ref())
                        .for_each(|e| check_expr(&sources, e, s));
                    check_expr(&sources, body, s);
                }
                ItemKind::Objective { expr, .. } => check_expr(&sources, expr, s),
                ItemKind::Constraints(cs) => {
                    cs.iter().for_each(|c| check_constraint(&sources, c, s))
                }
                ItemKind::Solve { method } => check_expr(&sources, method, s),
                ItemKind::Output(items) => {
                    items.iter().for_each(|o| check_expr(&sources, &o.expr, s))
                }
            }
        }
    });
}

#[test]
fn spans_point_at_the_right_place() {
    let mut sources = SourceMap::new();
    let file = sources.add(
        "m.opt",
        "dims n\nvar x : real[n]\nminimize  sum(x) +\n  2 * x[0]\n",
    );
    let (module, diags) = parse(&sources, file);
    assert!(diags.is_empty());
    let module = module.unwrap();
    let objective = &module.items[2];
    let ItemKind::Objective { expr, .. } = &objective.kind else {
        panic!("third item is the objective")
    };
    let text = &sources.get(file).text;
    let line_col = |offset: u32| sources.get(file).line_col(offset as usize);
    assert_eq!(
        &text[objective.span.start as usize..objective.span.end as usize],
        "minimize  sum(x) +\n  2 * x[0]"
    );
    assert_eq!(
        (line_col(expr.span.start), line_col(expr.span.end)),
        ((3, 11), (4, 11))
    );
    let ExprKind::Binary { rhs, .. } = &expr.kind else {
        panic!("a sum")
    };
    assert_eq!(line_col(rhs.span.start), (4, 3));
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    insta::glob!("ok/*.opt", |path| {
        let (_, lf) = parse_ok(path);
        let text = std::fs::read_to_string(path).unwrap().replace('\n', "\r\n");
        let mut sources = SourceMap::new();
        let file = sources.add("crlf.opt", text);
        let (crlf, diags) = parse(&sources, file);
        assert!(
            diags.is_empty(),
            "{}",
            render_human(&diags, &sources, false)
        );
        assert_eq!(ast_to_text(&crlf.unwrap()), ast_to_text(&lf));
    });
}
