"""The closed form in numpy (float32, OpenBLAS), for `cargo xtask bench`: the limit the CPU path
is measured against. Reads the bench's data and points (raw float32) and prints one JSON line."""
import json
import sys
import time

import numpy as np

data_path, points_path, n, dim, m, t, runs = sys.argv[1:8]
n, dim, m, t, runs = int(n), int(dim), int(m), float(t), int(runs)
data = np.fromfile(data_path, dtype=np.float32).reshape(n, dim)
points = np.fromfile(points_path, dtype=np.float32).reshape(m, dim)


def velocity():
    # -||x - t x_i||^2 / (2 (1 - t)^2), through one matrix product; softmax; weighted sum.
    scale = np.float32(1 / (2 * (1 - t) ** 2))
    xx = (points * points).sum(1, keepdims=True)
    dd = (data * data).sum(1)[None, :]
    scores = (xx - np.float32(2 * t) * (points @ data.T) + np.float32(t * t) * dd) * -scale
    scores -= scores.max(1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(1, keepdims=True)
    return (w @ data - points) / np.float32(1 - t)


u = velocity()  # warm-up
times = []
for _ in range(runs):
    start = time.perf_counter()
    u = velocity()
    times.append(1000 * (time.perf_counter() - start))
times.sort()
blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {}).get("name", "?")
print(json.dumps({"ms": times[len(times) // 2], "runs": times, "checksum": float(np.abs(u).sum()),
                  "numpy": np.__version__, "blas": blas, "threads": "default"}))
