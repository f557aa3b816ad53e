"""Loads every PTX module that optc's MLIR backend emits (the `optc emit --stage ptx` snapshots in
mlir/tests/snapshots/ptx__*.snap) with the CUDA driver (libcuda, no toolkit), which JIT-compiles it
for the GPU present, and looks up each `.entry` kernel. Prints one line per module and exits 1 if
any fails. For a GPU machine; needs only python3 and the NVIDIA driver.

Usage: python3 scripts/gpu-load-ptx.py
"""

import ctypes
import glob
import os
import re
import sys
import time


def modules(path):
    """(name, ptx text) of each module in a snapshot file."""
    text = open(path).read()
    body = text.split("---\n", 2)[2]  # after insta's header
    parts = re.split(r"^// gpu\.module @(\S+)\n", body, flags=re.M)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]


def main():
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(status, what):
        if status != 0:
            name = ctypes.c_char_p()
            cuda.cuGetErrorName(status, ctypes.byref(name))
            raise RuntimeError(f"{what}: {name.value.decode() if name.value else status}")

    check(cuda.cuInit(0), "cuInit")
    device = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, device)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device)  # compute capability major
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)
    context = ctypes.c_void_p()
    check(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
    print(f"device: {name.value.decode()} (sm_{major.value}{minor.value})")

    root = os.path.join(os.path.dirname(__file__), "..", "mlir", "tests", "snapshots")
    failures = 0
    total = 0
    for path in sorted(glob.glob(os.path.join(root, "ptx__*.snap"))):
        for module_name, ptx in modules(path):
            total += 1
            entries = re.findall(r"\.entry\s+(\w+)\(", ptx)
            log = ctypes.create_string_buffer(8192)
            # CU_JIT_ERROR_LOG_BUFFER (5) and its size (6).
            options = (ctypes.c_int * 2)(5, 6)
            values = (ctypes.c_void_p * 2)(
                ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(8192)
            )
            module = ctypes.c_void_p()
            start = time.perf_counter()
            status = cuda.cuModuleLoadDataEx(
                ctypes.byref(module), ctypes.c_char_p(ptx.encode()), 2, options, values
            )
            ms = (time.perf_counter() - start) * 1e3
            where = f"{os.path.basename(path)} {module_name}"
            if status != 0:
                failures += 1
                print(f"FAIL {where}: status {status}: {log.value.decode(errors='replace')}")
                continue
            for entry in entries:
                function = ctypes.c_void_p()
                if cuda.cuModuleGetFunction(ctypes.byref(function), module, entry.encode()) != 0:
                    failures += 1
                    print(f"FAIL {where}: no kernel {entry}")
            print(f"ok   {where}: {len(entries)} kernel(s), loaded in {ms:.1f} ms")
            cuda.cuModuleUnload(module)
    print(f"{total - failures}/{total} modules loaded")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
