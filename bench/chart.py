"""Draws bench/chart.png from bench/results.json: wall time per workload and system, log scale,
one panel per latency."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
rows = data["rows"]
workloads = ["bulk", "commits", "scan", "warm-txn", "serialize", "deserialize", "pk", "index"]
labels = {
    "bulk": "bulk insert",
    "commits": "100 commits",
    "scan": "cold scan",
    "warm-txn": "1k warm\nqueries",
    "serialize": "serialize",
    "deserialize": "deserialize",
    "pk": "cold PK\n(1.4 GB)",
    "index": "cold index\n(1.4 GB)",
}
systems = list(dict.fromkeys(r["system"] for r in rows))
latencies = sorted({r["latency"] for r in rows})


def value(latency, system, workload):
    # Systems without a read-transaction variant show their plain warm queries there.
    for w in [workload] + (["warm"] if workload == "warm-txn" else []):
        for r in rows:
            same_latency = r["latency"] == latency or system == "local better-sqlite3"
            if r["system"] == system and r["workload"] == w and same_latency:
                return r["m"].get("ms")
    return None


fig, axes = plt.subplots(len(latencies), 1, figsize=(13, 4.5 * len(latencies)), squeeze=False)
width = 0.8 / len(systems)
for ax, latency in zip(axes[:, 0], latencies):
    for i, system in enumerate(systems):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            v = value(latency, system, w)
            if v:
                xs.append(j + i * width)
                ys.append(v)
        ax.bar(xs, ys, width, label=system)
    ax.set_yscale("log")
    ax.set_ylabel("wall time (ms, log)")
    ax.set_title(f"{latency} ms added latency per request (lower is better)")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))])
    ax.set_xticklabels([labels[w] for w in workloads])
    ax.grid(axis="y", alpha=0.3)
axes[0, 0].legend(ncol=4, fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "chart.png"), dpi=90)
