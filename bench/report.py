#!/usr/bin/python3
"""bench/run's report: reads the raw figures of one run, prints the markdown table and writes
OUT.json, OUT.md and OUT.png (start-latency distributions).

    bench/report.py RAW_DIR OUT_PREFIX COMMIT
"""
import datetime
import json
import os
import re
import sys

raw, out, commit = sys.argv[1], sys.argv[2], sys.argv[3]


def read(name):
    path = os.path.join(raw, name)
    return open(path).read() if os.path.exists(path) else ""


figures = dict(
    line.split("=", 1) for line in read("figures").splitlines() if "=" in line
)


def num(key, scale=1.0):
    v = figures.get(key)
    try:
        return float(v) * scale if v not in (None, "") else None
    except ValueError:
        return None


def samples_ms(name):
    return [int(x) / 1000 for x in read(name).split()]


def pct(values, p):
    """Nearest rank on the sorted values (as bench/run-vs-ctr does)."""
    if not values:
        return None
    s = sorted(values)
    return s[int((len(s) - 1) * p / 100)]


start_b = samples_ms("start_berth_us")
start_c = samples_ms("start_containerd_us")

# bench-api: "berth created_ms=… p50_ms=… p99_ms=… bytes=…"
list_fig = {}
for line in read("list").splitlines():
    who, *kv = line.split()
    list_fig[who] = {k: float(v) for k, v in (x.split("=") for x in kv)}

restart = dict(
    (k, float(v))
    for k, v in re.findall(r"(\w+_recovery_ms)=([0-9.]+)", read("restart"))
)

pull = {}
for who, key in (("berthd", "berth"), ("containerd (ctr)", "containerd")):
    m = re.search(r"\| %s \| (\d+) \|" % re.escape(who), read("pull"))
    if m:
        pull[key] = float(m.group(1))

MiB = 1 / 1024
rows = []


def row(metric, unit, berth, ctrd, target, met, load):
    rows.append(
        {
            "metric": metric,
            "unit": unit,
            "berth": berth,
            "containerd": ctrd,
            "ratio": (berth / ctrd) if berth is not None and ctrd else None,
            "target": target,
            "met": met,
            "load": figures.get(load, ""),
        }
    )


def le(v, limit):
    return None if v is None else v <= limit


n = len(start_b)
b50, c50 = pct(start_b, 50), pct(start_c, 50)
row(f"run --rm true p50 ({n} runs)", "ms", b50, c50, "≤ 15 ms", le(b50, 15), "load_start")
row(f"run --rm true p95 ({n} runs)", "ms", pct(start_b, 95), pct(start_c, 95), "", None, "load_start")
cb, cc = num("concurrent_berth_ms"), num("concurrent_containerd_ms")
row("100 concurrent starts (wall)", "ms", cb, cc, "≤ 1/3 of containerd",
    None if cb is None or cc is None else cb <= cc / 3, "load_concurrent")
for n_idle in (50, 500):
    pss = num(f"berth_shim_pss_kb_{n_idle}", MiB)
    row(f"shim RSS, {n_idle} idle", "MiB", num(f"berth_shim_rss_kb_{n_idle}", MiB),
        num(f"containerd_shim_rss_kb_{n_idle}", MiB), "", None, f"load_idle_{n_idle}")
    row(f"shim PSS, {n_idle} idle", "MiB", pss, num(f"containerd_shim_pss_kb_{n_idle}", MiB),
        "≤ 1 MiB", le(pss, 1), f"load_idle_{n_idle}")
idle = num("berthd_rss_idle_kb", MiB)
row("daemon RSS, idle", "MiB", idle, num("containerd_rss_idle_kb", MiB), "≤ 16 MiB", le(idle, 16), "load_idle")
for n_idle in (50, 500):
    row(f"daemon RSS, {n_idle} idle containers", "MiB", num(f"berthd_rss_kb_{n_idle}", MiB),
        num(f"containerd_rss_kb_{n_idle}", MiB), "", None, f"load_idle_{n_idle}")
r1000 = num("berthd_rss_kb_1000_records", MiB)
row("daemon RSS, 1000 container records", "MiB", r1000, num("containerd_rss_kb_1000_records", MiB),
    "≤ 64 MiB", le(r1000, 64), "load_list")
rb, rc = restart.get("berth_recovery_ms"), restart.get("containerd_recovery_ms")
row("restart recovery, 500 live", "ms", rb, rc, "≤ 1000 ms", le(rb, 1000), "load_restart")
lb, lc = list_fig.get("berth", {}), list_fig.get("containerd", {})
row("List 1000 containers p50 (API)", "ms", lb.get("p50_ms"), lc.get("p50_ms"), "", None, "load_list")
row("List 1000 containers p99 (API)", "ms", lb.get("p99_ms"), lc.get("p99_ms"), "≤ 10 ms",
    le(lb.get("p99_ms"), 10), "load_list")
row("List 1000 reply size", "KiB", lb.get("bytes", 0) / 1024 if lb else None,
    lc.get("bytes", 0) / 1024 if lc else None, "", None, "load_list")
row("pull + unpack 100 MiB, 6 layers", "ms", pull.get("berth"), pull.get("containerd"), "", None, "load_pull")


def fmt(v, unit):
    if v is None:
        return "n/a"
    return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"


lines = [
    "| figure | berth | containerd | berth/containerd | target | met? | load 1/5/15 |",
    "|---|---|---|---|---|---|---|",
]
for r in rows:
    ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}×"
    met = {True: "yes", False: "**no**", None: ""}[r["met"]]
    lines.append(
        f"| {r['metric']} | {fmt(r['berth'], r['unit'])} | {fmt(r['containerd'], r['unit'])} "
        f"| {ratio} | {r['target']} | {met} | {r['load']} |"
    )
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
header = f"bench/run at {now}, commit {commit}, {figures.get('host', '')}"
table = "\n".join(lines)
print(header)
print()
print(table)

with open(out + ".md", "w") as f:
    f.write(f"{header}\n\n{table}\n")
with open(out + ".json", "w") as f:
    json.dump(
        {
            "date": now,
            "commit": commit,
            "host": figures.get("host"),
            "rows": rows,
            "figures": figures,
            "samples_ms": {"start_berth": start_b, "start_containerd": start_c},
            "list": list_fig,
            "restart": restart,
            "pull_ms": pull,
        },
        f,
        indent=1,
    )

if start_b or start_c:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    data = [(start_b, "berth (berthctl)", "tab:blue"), (start_c, "containerd (ctr)", "tab:orange")]
    for values, label, color in data:
        if values:
            s = sorted(values)
            ax1.step(s, [(i + 1) / len(s) for i in range(len(s))], where="post", label=label, color=color)
    ax1.axvline(15, color="gray", linestyle="--", linewidth=1, label="target p50 15 ms")
    ax1.set_xscale("log")
    ax1.set_xlabel("run --rm busybox true (ms, log scale)")
    ax1.set_ylabel("fraction of runs")
    ax1.set_title("start latency, cumulative")
    ax1.legend()
    ax2.boxplot([v for v, _, _ in data if v], labels=[lab for v, lab, _ in data if v], showfliers=True)
    ax2.set_ylabel("ms")
    ax2.set_title(f"start latency ({len(start_b)} runs each)")
    fig.suptitle(header, fontsize=9)
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=100)
    print(f"\nwrote {out}.json, {out}.md, {out}.png", file=sys.stderr)
