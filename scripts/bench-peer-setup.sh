# Sourced by the benchmarks against Python peers (bench-ot.sh, bench-portfolio.sh,
# bench-isotonic.sh), after they set `root`. `peer_setup CHECK PACKAGE...` sets `venv` (VENV,
# default /tmp/optc-bench-ot-venv) and creates it with the packages when the Python statement
# CHECK fails there; sets `OPTC` to a release build of optc unless the environment gives one;
# and keeps every BLAS and thread pool to one thread.
peer_setup() {
  local check="$1"
  shift
  venv="${VENV:-/tmp/optc-bench-ot-venv}"
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
  if ! "$venv/bin/python" -c "$check" 2> /dev/null; then
    echo "creating $venv ($*)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$@"
  fi
  if [[ -z "${OPTC:-}" ]]; then
    cargo build --release -q -p optc --manifest-path "$root/Cargo.toml"
    OPTC="$root/target/release/optc"
  fi
}
