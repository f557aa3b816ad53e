//! Evaluations on the CPU backend reuse the model's buffers: after the first call for a root
//! list, setting the variables and evaluating the value and gradient (the solvers' loop)
//! allocates nothing. A counting global allocator measures it on this thread.

use optc_compiler::driver::{compile, Until};
use optc_runtime::bench::{prepare, Function};
use optc_runtime::model::{bind, Backend, BindSpec, Model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations of each thread.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn native_value_and_gradient_allocate_nothing_once_warm() {
    let source = "dims n, p\n\
        data X : real[n, p] = load(\"X.npy\")\n\
        data y : real[n] = load(\"y.npy\")\n\
        param alpha = 0.5\n\
        var w : real[p] = 0\n\
        var b : real = 0\n\
        minimize 0.5 / n * sumsq(X @ w + b - y) + alpha / 2 * sumsq(w)\n";
    let program = compile("ridge.opt", source, Until::Ir)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
        .program
        .unwrap();
    let spec = BindSpec {
        dims: vec![("n".into(), 20), ("p".into(), 5)],
        random_data: Some(1),
        ..BindSpec::default()
    };
    let bindings = bind(&program, Path::new("."), &spec).unwrap();
    let mut model = Model::new(program, bindings).unwrap();
    model.set_backend(Backend::Cpu);
    let roots = prepare(&mut model, Function::ValueGrad, true).unwrap();
    let mut x = vec![0.25; model.dim()];
    model.eval_ref(&roots).unwrap();
    assert!(model.fallbacks().is_empty(), "{:?}", model.fallbacks());

    let before = allocations();
    let mut sum = 0.0;
    for step in 0..5 {
        x[0] = step as f64;
        model.set_x(&x);
        let values = model.eval_ref(&roots).unwrap();
        sum += values[0].iter().sum::<f64>() + values[1].iter().sum::<f64>();
    }
    assert_eq!(allocations() - before, 0);
    assert!(sum.is_finite());

    // The counter counts: `eval` returns arrays of its own.
    let before = allocations();
    model.eval(&roots).unwrap();
    assert!(allocations() > before);
}
