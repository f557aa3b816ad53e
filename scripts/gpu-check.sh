#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU and its driver; builds nothing. Takes the directory that
# scripts/gpu-bundle.sh wrote (an mlir-free optc, f64 and f32 gpu artifacts of the examples with
# their data and reference results, DAGMA merit artifacts at n = 10000 in both precisions):
#   1. runs each example's artifact with `optc bench --backend gpu` and compares the merit and
#      its gradient at the initial point with the references computed on the CPU (maximum
#      relative error; pass below 1e-9 in f64, 1e-3 in f32, whose references round each kernel's
#      f64 result where the GPU rounds every operation, and sum in another order);
#   2. solves the examples whose solver runs with its functions on the device (`optc run
#      --backend gpu`: every solver; the bilevel example has no GPU plan) and
#      compares the final objective with the reference device's solve (same status; pass below
#      1e-8 relative; 1e-6 for the central path, whose Adam stages end when the best objective
#      improved by at most 1e-6 (relative) between checkpoints, so cuBLAS's other summation order
#      may end a stage a checkpoint apart; 1e-4 for auglag, whose inner L-BFGS-B stops at a
#      projected gradient of 1e-5 where rounding moves the final objective by ~1e-5);
#   3. times value+gradient of the DAGMA merit at n = 10000, d = 100, 500, 1000, 2000 on the
#      GPU in f64 and f32 (data drawn by `optc bench --dims`, seeded) and prints a table: with W
#      and the gradient kept on the device (as JAX is timed), and with their transfers, and the
#      time the driver took to load (JIT-compile) the kernels;
#   4. times one Adam step of DAGMA's central path (examples/dag/dagma.opt) at the same sizes,
#      as `optc run` takes it: the stage merit, its gradient, the domain guard and h evaluated,
#      Adam's step taken on the device, only scalars read back.
# Exit status: 0 when every comparison passes.
#
# Usage: bash gpu-check.sh [BUNDLE_DIR]   (default: this script's directory)
# Environment: TIME_MS (timing budget of each rate a benchmark measures, default 2000: the whole
# script must fit in one 10-minute device call).
set -uo pipefail

dir="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)"
optc="$dir/optc"
time_ms="${TIME_MS:-2000}"
export NO_COLOR=1
unset OPTC_GPU_DEVICE
# cuBLAS and cuSOLVER are loaded at run time; make the toolkit's usual places visible.
for lib in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [[ -d "$lib" ]] && export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
done

echo "== optc: $("$optc" --version)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2> /dev/null || true

failed=0
echo "== examples: merit and gradient against the CPU references"
printf '%-14s %-4s %12s %12s %s\n' example prec value_rel grad_max_rel result
for precision in f64 f32; do
  refs="$dir/ref"
  suffix=""
  tol=1e-9
  if [[ $precision == f32 ]]; then refs="$dir/ref-f32"; suffix=".f32"; tol=1e-3; fi
  for ref in "$refs"/*.json; do
    [[ -e "$ref" ]] || continue
    name=$(basename "$ref" .json)
    art=$(ls "$dir"/examples/*/"$name$suffix.optx" 2> /dev/null | head -n 1)
    [[ -n "$art" ]] || continue
    got="$dir/out-$name$suffix.json"
    if ! "$optc" bench "$art" --backend gpu --time-ms 200 --json > "$got" 2> "$dir/out-$name$suffix.err"; then
      printf '%-14s %-4s %12s %12s FAIL: %s\n' "$name" "$precision" - - "$(head -n 1 "$dir/out-$name$suffix.err")"
      failed=1
      continue
    fi
    python3 - "$ref" "$got" "$name" "$precision" "$tol" << 'EOF' || failed=1
import json, sys
ref = json.load(open(sys.argv[1]))["backends"]["gpu"]
got = json.load(open(sys.argv[2]))["backends"]["gpu"]
tol = float(sys.argv[5])
rel = lambda a, b: abs(a - b) / max(1.0, abs(b))
value = rel(got["value"], ref["value"])
grad = max((rel(a, b) for a, b in zip(got["gradient"], ref["gradient"])), default=0.0)
same_len = len(got["gradient"]) == len(ref["gradient"])
ok = same_len and value <= tol and grad <= tol
print(f"{sys.argv[3]:<14} {sys.argv[4]:<4} {value:12.3e} {grad:12.3e} {'pass' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF
  done
done

echo "== examples: whole solves (optc run --backend gpu) against the reference device's"
printf '%-14s %12s %s\n' example objective_rel result
for ref in "$dir"/ref-run/*.json; do
  [[ -e "$ref" ]] || continue
  name=$(basename "$ref" .json)
  art=$(ls "$dir"/examples/*/"$name.optx" 2> /dev/null | head -n 1)
  got="$dir/run-$name.json"
  rc=0
  "$optc" run "$art" --backend gpu --json -q > "$got" 2> "$dir/run-$name.err" || rc=$?
  if (( rc > 1 )); then
    printf '%-14s %12s FAIL: %s\n' "$name" - "$(head -n 1 "$dir/run-$name.err")"
    failed=1
    continue
  fi
  python3 - "$ref" "$got" "$name" << 'EOF' || failed=1
import json, sys
ref, got = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rel = abs(got["objective"] - ref["objective"]) / max(1.0, abs(ref["objective"]))
tol = {"auglag": 1e-4, "path": 1e-6}.get(ref["solver"], 1e-8)
ok = rel <= tol and got["status"] == ref["status"]
print(f"{sys.argv[3]:<14} {rel:12.3e} {'pass' if ok else 'FAIL'} ({got['status']}, {got['iterations']} iterations)")
sys.exit(0 if ok else 1)
EOF
done

# bench_table PREFIX COLUMNS: runs `optc bench` on bench/PREFIX_{f64,f32}_d*.optx at n = 10000
# and prints a row per artifact; COLUMNS is a Python expression over the JSON entry `g` giving
# the row's numbers after precision and d.
bench_table() {
  local prefix=$1 columns=$2
  for precision in f64 f32; do
    for art in $(ls "$dir"/bench/"$prefix"_"$precision"_d*.optx | sort -V); do
      d=$(basename "$art" .optx)
      d=${d#"$prefix"_"$precision"_d}
      err="$dir/$prefix-$precision-$d.err"
      json=$("$optc" bench "$art" --backend gpu --dims "n=10000,d=$d" --time-ms "$time_ms" --json 2> "$err")
      if [[ $? -ne 0 ]]; then
        printf '%4s %6s FAIL: %s\n' "$precision" "$d" "$(head -n 1 "$err")"
        failed=1
        continue
      fi
      echo "$json" | python3 -c "
import json, sys
g = json.load(sys.stdin)['backends']['gpu']
numbers = $columns
print(f'{sys.argv[1]:>4} {sys.argv[2]:>6} ' + ' '.join(numbers) + ' ' + g['device'])" "$precision" "$d"
    done
  done
}

echo "== DAGMA merit (least squares + L1 + log-det), value+gradient, n = 10000"
echo "   (JAX on an H100, f32: 0.64 / 1.89 / 3.63 / 8.17 ms at d = 100 / 500 / 1000 / 2000)"
printf '%4s %6s %14s %12s %16s %8s %s\n' prec d evals_per_s ms_each ms_w_transfers jit_ms device
bench_table dagma "[f'{g[\"value_grad_per_s\"]:14.1f}', f'{1e3 / g[\"value_grad_per_s\"]:12.3f}', f'{1e3 / g[\"value_grad_with_transfers_per_s\"]:16.3f}', f'{g[\"kernel_load_ms\"]:8.1f}']"

echo "== DAGMA central path (examples/dag/dagma.opt): one Adam step with the iterates on the device, n = 10000"
printf '%4s %6s %14s %12s %14s %s\n' prec d steps_per_s ms_per_step ms_value_grad device
bench_table path "[f'{g[\"adam_steps_per_s\"]:14.1f}', f'{1e3 / g[\"adam_steps_per_s\"]:12.3f}', f'{1e3 / g[\"value_grad_per_s\"]:14.3f}']"
exit $failed
