#!/usr/bin/env python3
"""Merges the benchmark outputs, checks the targets of issue 7, prints a
table and writes bench/results.json and the plot's data (scripts/bench).

usage: report.py MICRO_JSON E2E_JSON RESULTS_JSON PLOT_DAT
"""
import json
import os
import platform
import sys


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu": model,
            "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release()}


def check(targets, name, value, limit, op, unit=""):
    met = value <= limit if op == "<=" else (
        value >= limit if op == ">=" else value == limit)
    targets.append({"target": name, "value": round(value, 3),
                    "limit": f"{op} {limit}{unit}", "met": met})


def main(micro_path, e2e_path, results_path, plot_path):
    with open(micro_path) as f:
        micro = json.load(f)
    with open(e2e_path) as f:
        e2e = json.load(f)
    targets = []
    rows = []

    print("\n== GetToken (hit) vs baseline empty RPC vs Health/Check"
          " (fastest of the rounds)")
    print("   baseline: empty RPC; base+tok: same server, answers GetToken's"
          " request with a fixed copy of its answer")
    print(f"{'conc':>5} {'kind':>10} {'RPC/s':>9} {'p50 us':>8} {'p99 us':>8}"
          f" {'CPU us':>7} {'errors':>6}")
    kinds = (("baseline", "baseline"), ("baseline_token", "base+tok"),
             ("get_token", "get_token"), ("health", "health"))
    with open(plot_path, "w") as plot:
        for row in e2e.get("rpc", []):
            c = row["concurrency"]
            for kind, label in kinds:
                r = row.get(kind)
                if r is None:
                    continue
                print(f"{c:>5} {label:>10} {r['throughput']:>9.0f} "
                      f"{r['p50_us']:>8.1f} {r['p99_us']:>8.1f} "
                      f"{r.get('cpu_us_per_request', 0):>7.1f} "
                      f"{r['errors']:>6}")
            b, g = row["baseline"], row["get_token"]
            row["throughput_ratio"] = g["throughput"] / b["throughput"]
            row["p99_ratio"] = g["p99_us"] / b["p99_us"]
            print(f"{'':>5} {'ratio':>10} {row['throughput_ratio']:>9.2f} "
                  f"{g['p50_us'] / b['p50_us']:>8.2f} "
                  f"{row['p99_ratio']:>8.2f}")
            t = row.get("baseline_token")
            if t is not None:
                row["throughput_ratio_token_sized"] = (
                    g["throughput"] / t["throughput"])
                row["p99_ratio_token_sized"] = g["p99_us"] / t["p99_us"]
                print(f"{'':>5} {'vs b+tok':>10} "
                      f"{row['throughput_ratio_token_sized']:>9.2f} "
                      f"{g['p50_us'] / t['p50_us']:>8.2f} "
                      f"{row['p99_ratio_token_sized']:>8.2f}")
            check(targets, f"GetToken throughput / baseline, c={c}",
                  row["throughput_ratio"], 0.9, ">=")
            check(targets, f"GetToken p99 / baseline p99, c={c}",
                  row["p99_ratio"], 1.5, "<=")
            h = row["health"]
            t = t or {"throughput": float("nan"), "p99_us": float("nan")}
            plot.write(f"{c} {b['throughput']} {g['throughput']} "
                       f"{h['throughput']} {b['p99_us']} {g['p99_us']} "
                       f"{h['p99_us']} {t['throughput']} {t['p99_us']}\n")

    if e2e.get("call"):
        print("\n== Call through the broker vs direct libcurl to the emulator")
        print(f"{'conc':>5} {'path':>8} {'req/s':>9} {'p50 us':>8} "
              f"{'p99 us':>8} {'errors':>6}")
        for row in e2e["call"]:
            c = row["concurrency"]
            for kind in ("direct", "broker"):
                r = row[kind]
                print(f"{c:>5} {kind:>8} {r['throughput']:>9.0f} "
                      f"{r['p50_us']:>8.1f} {r['p99_us']:>8.1f} "
                      f"{r['errors']:>6}")
            d, b = row["direct"], row["broker"]
            row["added_p50_us"] = b["p50_us"] - d["p50_us"]
            row["added_p99_us"] = b["p99_us"] - d["p99_us"]
            row["throughput_ratio"] = b["throughput"] / d["throughput"]
            print(f"{'':>5} {'added':>8} {row['throughput_ratio']:>9.2f} "
                  f"{row['added_p50_us']:>8.1f} {row['added_p99_us']:>8.1f}")
            check(targets, f"Call added p50 (us), c={c}",
                  row["added_p50_us"], 200, "<=", " us")

    for row in e2e.get("coalesce", []):
        print(f"\n== coalescing: {row['callers']} cold GetToken, upstream "
              f"latency {row['upstream_latency_ms']} ms: "
              f"{row['upstream_requests']} upstream request(s), "
              f"{row['time_ms']:.1f} ms to serve all, {row['errors']} errors")
        check(targets, f"coalescing upstream requests "
              f"({row['upstream_latency_ms']} ms upstream)",
              row["upstream_requests"], 1, "==")

    if "refresh" in e2e:
        r = e2e["refresh"]
        print(f"\n== refresh ahead: {r['simulated_seconds']:.0f} s simulated, "
              f"{r['token_lifetime_s']:.0f} s tokens, {r['keys']} keys, "
              f"{r['calls']} calls: {r['waited_after_warmup']} waited after "
              f"warm-up, {r['upstream_fetches']} upstream fetches, "
              f"{r['failed']} failed")
        check(targets, "refresh ahead: callers that waited after warm-up",
              r["waited_after_warmup"], 0, "==")

    if "user_refresh" in e2e:
        u = e2e["user_refresh"]
        print(f"\n== user grants (refresh_token, rotating) vs client "
              f"credentials, {u['grants']} keys each")
        for r in u["cold"]:
            print(f"   cold {r['grant_type']:>18}: {r['callers']} callers, "
                  f"{r['upstream_requests']} upstream requests, "
                  f"{r['time_ms']:.1f} ms, {r['errors']} errors")
        print(f"{'path':>23} {'cycles':>7} {'upstream':>8} {'per cycle':>9}"
              f" {'waited':>6} {'calls/s':>8} {'p50 us':>7} {'p99 us':>7}"
              f" {'errors':>6}")
        for r in u["cycles"]:
            print(f"{r['grant_type']:>23} {r['new_tokens_seen']:>7} "
                  f"{r['upstream_requests']:>8} "
                  f"{r['upstream_per_key_per_cycle']:>9.2f} "
                  f"{r['waited_after_warmup']:>6} {r['throughput']:>8.0f} "
                  f"{r['p50_us']:>7.0f} {r['p99_us']:>7.0f} {r['errors']:>6}")
        print(f"   live grants at the end: {u['live_grants_at_end']} of "
              f"{u['grants']}, at most "
              f"{u['most_live_refresh_tokens_per_grant']} live refresh "
              f"tokens per grant")
        for r in u["cold"]:
            check(targets, f"{r['grant_type']}: cold upstream requests per "
                  f"key", r["upstream_requests"] / r["keys"], 1, "==")
        for r in u["cycles"]:
            check(targets, f"{r['grant_type']}: callers that waited after "
                  f"warm-up", r["waited_after_warmup"], 0, "==")

    if "cycles" in e2e.get("replicas", {}):
        r = e2e["replicas"]
        print(f"\n== replicas: {r['token_lifetime_s']} s tokens, "
              f"{r['duration_s']:.0f} s per run")
        print(f"{'replicas':>8} {'shared':>6} {'cold/key':>8} "
              f"{'per key per cycle':>17} {'calls/s':>8} {'errors':>6}")
        for c in r["cycles"]:
            print(f"{c['replicas']:>8} {str(c['shared_state']):>6} "
                  f"{c['cold_upstream_requests'] / c['keys']:>8.2f} "
                  f"{c['upstream_per_key_per_cycle']:>17.2f} "
                  f"{c['throughput']:>8.0f} {c['errors'] + c['cold_errors']:>6}")
            if c["shared_state"]:
                check(targets, f"replicas={c['replicas']}: cold upstream "
                      f"requests per key", c["cold_upstream_requests"] /
                      c["keys"], 1, "==")
        for row in r["hit_path"]["rows"]:
            on, off = row["shared_state_on"], row["shared_state_off"]
            print(f"   hits c={row['concurrency']}: shared on "
                  f"{on['throughput']:.0f}/s p50 {on['p50_us']:.0f} us, off "
                  f"{off['throughput']:.0f}/s p50 {off['p50_us']:.0f} us")
        h = r["hit_path"]["redis_commands_during_hits"]
        print(f"   Redis commands during {h['hits']} hits: {h['commands']} "
              f"(idle, as long: {h['idle_commands']})")
        check(targets, "replicas: Redis commands per 1000 hits",
              h["commands_per_1000_hits"], 1, "<=")

    if "scale" in e2e:
        s = e2e["scale"]
        load = s["load"]
        print(f"\n== scale: {s['keys']} keys, {s['connected']} connections: "
              f"broker RSS {s['broker_under_load']['rss_mib']:.1f} MiB "
              f"(peak {s['broker_under_load']['hwm_mib']:.1f}, idle "
              f"{s['broker_idle']['rss_mib']:.1f}, after warm "
              f"{s['broker_after_warm']['rss_mib']:.1f}), "
              f"{s['broker_under_load']['threads']} threads; GetToken "
              f"{load['throughput']:.0f}/s p50 {load['p50_us']:.0f} us "
              f"p99 {load['p99_us']:.0f} us, {load['errors']} errors")
        check(targets, "scale: broker RSS (MiB)",
              s["broker_under_load"]["hwm_mib"], 128, "<=", " MiB")

    print("\n== micro-benchmarks")
    micro_rows = []
    for b in micro.get("benchmarks", []):
        micro_rows.append({"name": b["name"],
                           "ns_per_op": round(b["cpu_time"], 1)})
        print(f"{b['name']:>40} {b['cpu_time']:>10.1f} ns (cpu)")

    print("\n== targets")
    for t in targets:
        print(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: "
              f"{t['value']} (target {t['limit']})")
    results = {"machine": machine(), "targets": targets,
               "micro": micro_rows, **e2e}
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"\nresults: {results_path}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
