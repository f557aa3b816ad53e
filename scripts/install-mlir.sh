#!/usr/bin/env bash
# Installs Debian's LLVM/MLIR 22 (bookworm-security), which the `mlir` feature (crate optc-mlir, melior 0.27.8)
# builds against. Idempotent: runs apt only for packages that are missing. Needs root (or sudo).
set -euo pipefail

# libpolly-22-dev: llvm-config --link-static --libs lists Polly, which tblgen links.
PACKAGES=(llvm-22-dev libmlir-22-dev mlir-22-tools libclang-22-dev clang-22 libzstd-dev libpolly-22-dev)
PREFIX=/usr/lib/llvm-22

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    if ! grep -rqs 'bookworm-security' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "install-mlir: bookworm-security is not in the apt sources; it provides MLIR 22" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "install-mlir: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$PREFIX/bin/llvm-config" ]; then
    echo "install-mlir: $PREFIX/bin/llvm-config not found after installation" >&2
    exit 1
fi

echo "install-mlir: LLVM/MLIR $("$PREFIX/bin/llvm-config" --version) ready; the build needs:"
echo "export MLIR_SYS_220_PREFIX=$PREFIX"
echo "export TABLEGEN_220_PREFIX=$PREFIX"
