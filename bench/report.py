"""Renders bench/results/results.json into docs/benchmarks.md and its chart.

The page is written for someone choosing a tool: what is measured and how, the figures, each
target met or missed with the figures that say why. The history of levers is bench/notes.md.
"""
import argparse
import json
import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--results", default=os.path.join(REPO, "bench", "results", "results.json"))
parser.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
parser.add_argument("--chart", default=os.path.join(REPO, "docs", "benchmarks.png"))
args = parser.parse_args()
r = json.load(open(args.results))
md = []


def table(header, rows):
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    md.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    md.append("")


def n(x, digits=0):
    return f"{x:,.{digits}f}"


def x(a, b):
    if not b:
        return "-"
    return f"{a / b:,.0f}x" if a / b >= 100 else f"{a / b:.2f}x"


def check(ok):
    return "met" if ok else "**missed**"


def transform_rate(group, function):
    for b in r.get("transform", {}).get("benchmarks", []):
        if b["group"] == group and str(b["function"]) == str(function):
            return b["records_per_s"]
    return None


m = r["machine"]
md += ["# Benchmarks", "",
       "What maskflow costs and how fast it goes, beside the tools a team would otherwise use: "
       "[Vector](https://vector.dev) with maskflow's VRL twin, a plain Python consumer (boto3 + psycopg), and the "
       "fastest any consumer can go on the same SQS server (a client that only receives and deletes). "
       "Every figure on this page comes from one command, `scripts/bench` (about an hour on 2 cores; "
       "`scripts/bench --sections e2e --rtt-ms 0,20` for the end-to-end part alone), which writes "
       "`bench/results/results.json` and regenerates this page from it.", "",
       "How to read it: these are 2-core shared machines, so absolute rates move by 10-15% between runs. "
       "Comparisons are between figures of the same run, and the consumers of a table ran one after the other "
       "on the same messages. The history of what changed which figure is in `bench/notes.md` and in git, not here.", "",
       f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Linux {m['kernel']}; {m['rustc']}; "
       f"{m['postgres']}; {m['localstack']}; Python {m['python']}. Sections measured: "
       + ", ".join(f"{name} {r[name]['date']}" for name in ("e2e", "idle", "lag", "transform", "sink", "batching", "original", "scale", "rekey", "replay", "keysources", "clickhouse") if name in r) + ".", "",
       "![maskflow benchmarks](benchmarks.png)", ""]

LABEL = {"ceiling": "SQS ceiling", "maskflow": "maskflow", "boto3": "boto3 consumer", "vector": "Vector"}


def median_run(runs):
    """The run of median rate among a setting's rounds, with the rounds' range beside it."""
    runs = sorted(runs, key=lambda run: run["msg_per_s"])
    return {**runs[len(runs) // 2], "rounds": len(runs), "low": runs[0]["msg_per_s"], "high": runs[-1]["msg_per_s"]}


def e2e_runs(rtt, kind=None):
    """One line per setting at a round trip (the median of its rounds), in the order they ran."""
    found = [run for run in r["e2e"]["runs"] if run["rtt_ms"] == rtt and (kind is None or run["kind"] == kind)]
    keys = list(dict.fromkeys((run["kind"], run["setting"]) for run in found))
    return [median_run([run for run in found if (run["kind"], run["setting"]) == key]) for key in keys]


def one(rtt, kind, setting):
    return next((run for run in e2e_runs(rtt, kind) if run["setting"] == setting), None)


def rate_cell(run):
    spread = f" ({n(run['low'])}-{n(run['high'])})" if run["rounds"] > 1 else ""
    return n(run["msg_per_s"]) + spread


def paired(rtt, kind, setting):
    """Per-round ratios of maskflow's defaults to (kind, setting) at `rtt`."""
    by_round = lambda k, s_: {run.get("round", 0): run["msg_per_s"] for run in r["e2e"]["runs"]
                              if run["rtt_ms"] == rtt and run["kind"] == k and run["setting"] == s_}
    mine, theirs = by_round("maskflow", "defaults"), by_round(kind, setting)
    ratios = sorted(mine[k] / theirs[k] for k in mine if k in theirs)
    return (ratios[len(ratios) // 2], ratios[0], ratios[-1]) if ratios else None


def spread(p):
    return f"{p[0]:.2f}x" + (f" ({p[1]:.2f}-{p[2]:.2f})" if p[1] != p[2] else "")


if "e2e" in r and r["e2e"].get("rtt_ms"):
    e = r["e2e"]
    rtts = e["rtt_ms"]
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
    md += ["## 1. End to end: SQS -> mask -> PostgreSQL, with SQS 0, 20 and 50 ms away", "",
           f"**What runs** ({e['date']}). {n(e['messages'])} login events from `maskflow send --generate` (2% malformed, "
           "the same messages for every run) wait in a fresh LocalStack queue; each consumer drains them into a fresh "
           "PostgreSQL database on this machine. In-region SQS answers in 10-30 ms, so every consumer reaches SQS "
           "through `maskflow-bench relay` (bench/src/relay.rs), which adds the round trip (half each way) and counts "
           "the SQS requests that pass. **Every consumer is timed from its start to the same end**: the queue empty "
           "(no message visible or in flight: every one deleted) and every message in PostgreSQL; exactly-once is "
           "checked after each run (rows + rejections = messages, and for maskflow its ledger too). CPU is the "
           "consumer's own (user + system, all threads).", "",
           "- **SQS ceiling**: `maskflow-bench ceiling`, maskflow's own SQS client doing nothing but receive and "
           "delete, 16 receives in flight, deletes overlapped with receives. No consumer on this rig can go faster.",
           "- **maskflow**: `maskflow run --drain`, starting cold (the compiled-module cache empty, as on a first "
           "start). *defaults*: no tuning flag; its receives in flight size themselves (1-16) from what SQS returns. "
           "The other maskflow lines are the flag settings the defaults must hold up against.",
           "- **boto3 consumer**: `bench/baselines/boto3_consumer.py`, what a Python team would write: 16 threads, "
           "each receive -> mask (`cryptography`'s AES-SIV) -> one INSERT transaction -> DeleteMessageBatch.",
           "- **Vector**: " + (f"`{e['vector_version']}`" if e.get("vector_version") else "Vector")
           + " on `integrations/vector/vector.yaml` (aws_sqs -> the VRL twin -> postgres, end-to-end "
           "acknowledgements), with its defaults and with `client_concurrency: 16`.", ""]
    if e.get("ceiling_direct_msg_per_s") and e.get("ceiling_relay_msg_per_s"):
        relay_cpu = max(run["relay_cpu_s"] for run in e["runs"]) if e["runs"] else 0
        md += [f"The relay's own cost, measured back to back: the ceiling consumer straight to LocalStack reached "
               f"{n(e['ceiling_direct_msg_per_s'])} msg/s, through the relay adding nothing "
               f"{n(e['ceiling_relay_msg_per_s'])} ({ratio(e['ceiling_relay_msg_per_s'], e['ceiling_direct_msg_per_s'])}); "
               f"the relay used at most {relay_cpu:.2f} CPU s in any run. What caps every row below is LocalStack (one "
               "Python process) sharing 2 cores with the consumer and PostgreSQL, not the relay.", ""]
    # Headline: one line per round trip.
    head = [("ceiling", "16 receives in flight"), ("maskflow", "defaults"), ("boto3", "16 threads"),
            ("vector", "defaults"), ("vector", "client_concurrency 16")]
    rows = []
    for rtt in rtts:
        rate = {k: (one(rtt, *k) or {}).get("msg_per_s") for k in head}
        mf, vec = rate[("maskflow", "defaults")], max(filter(None, [rate[("vector", "defaults")], rate[("vector", "client_concurrency 16")]]), default=None)
        rows.append([f"{rtt:g} ms"] + [n(rate[k]) if rate[k] else "-" for k in head]
                    + [spread(paired(rtt, "ceiling", "16 receives in flight")) if paired(rtt, "ceiling", "16 receives in flight") else "-",
                       ratio(mf, rate[("boto3", "16 threads")]), ratio(mf, vec)])
    md += ["**Messages per second until the queue is empty**:", ""]
    table(["SQS round trip", "SQS ceiling", "maskflow (defaults)", "boto3 consumer", "Vector (defaults)",
           "Vector (client_concurrency 16)", "maskflow / ceiling (per round: median, range)", "maskflow / boto3", "maskflow / best Vector"], rows)
    md += ["Every setting, with its cost: CPU per message of the consumer process, SQS requests per 1,000 messages "
           "(SQS bills per request; 100 receives and 100 batch deletes of 10 are the floor of 200), and peak memory. "
           "The ceiling and maskflow ran " + str(max(run.get("round", 0) for run in e["runs"]) + 1) + " round(s), "
           "interleaved, and show the median round (its rate, CPU, requests) with the range of the rates; Vector and "
           "boto3 ran once.", ""]
    rows = []
    for rtt in rtts:
        for run in e2e_runs(rtt):
            req = run["requests"]
            rows.append([f"{rtt:g} ms", LABEL[run["kind"]], run["setting"], rate_cell(run), n(run["cpu_us_per_msg"]),
                         n(run["requests_per_1000"]), f"{req.get('ReceiveMessage', 0)} / {req.get('DeleteMessageBatch', 0)}",
                         n(run["peak_rss_kb"] / 1024, 1),
                         (f"{run['pollers_mean']:.1f} / " if run.get("pollers_mean") else "") + f"{run['pollers_max']:.0f}"
                         if run.get("pollers_max") else "-"])
    table(["RTT", "consumer", "setting", "msg/s (median; range of the rounds)", "CPU µs/msg", "SQS requests / 1,000 msgs",
           "receives / batch deletes", "peak RSS MiB", "receives in flight (mean / most)"], rows)
    # The targets of the network issue, shown met or missed with the figures that say why. On
    # this rig a setting's rate moves by up to a quarter between rounds (LocalStack's CPU per
    # request does), so a target compares runs of the same round, which ran one after the
    # other: the median of the per-round ratios, with their range.
    tgt, misses = [], []
    for rtt in rtts:
        mf = one(rtt, "maskflow", "defaults")
        if not mf:
            continue
        settings = [run["setting"] for run in e2e_runs(rtt, "maskflow") if run["setting"] != "defaults"]
        against = [(s_, paired(rtt, "maskflow", s_)) for s_ in settings]
        against = [(s_, p) for s_, p in against if p]
        if against:
            worst, p = min(against, key=lambda a: a[1][0])
            tgt.append([f"RTT {rtt:g} ms: defaults >= 90% of every other maskflow setting",
                        f"{spread(p)} against the strongest, {worst}", check(p[0] >= 0.9)])
            if p[0] < 0.9:
                misses.append(f"at {rtt:g} ms `{worst}` beat the defaults by {1 / p[0] - 1:.0%} in the median round")
        p = paired(rtt, "ceiling", "16 receives in flight")
        if p:
            tgt.append([f"RTT {rtt:g} ms: defaults >= 0.9x the ceiling at 16 receives in flight", spread(p), check(p[0] >= 0.9)])
            if p[0] < 0.9:
                misses.append(f"at {rtt:g} ms the defaults reached {p[0]:.2f}x of the ceiling in the median round")
        tgt.append([f"RTT {rtt:g} ms: SQS requests at the floor under load (<= 210 / 1,000)",
                    n(mf["requests_per_1000"]), check(mf["requests_per_1000"] <= 210)])
    rss = max((run["peak_rss_kb"] for run in e["runs"] if run["kind"] == "maskflow"), default=0) / 1024
    tgt.append(["maskflow peak RSS < 64 MB in every run (every round)", f"{rss:.1f} MiB", check(rss < 64 * 1e6 / 2**20)])
    md += ["**Targets** (each ratio: the median of the per-round ratios, range in brackets):", ""]
    table(["target", "measured", ""], tgt)
    if misses:
        ls = [run["cpu_s"]["localstack"] * 1e6 / run["messages"] for run in e["runs"] if run["kind"] == "maskflow"]
        c = [run for run in e["runs"] if run["kind"] == "ceiling"]
        c_cpu = sorted(run["cpu_us_per_msg"] for run in c)[len(c) // 2] if c else 0
        m_cpu = sorted(run["cpu_us_per_msg"] for run in e["runs"] if run["kind"] == "maskflow" and run["setting"] == "defaults")
        m_cpu = m_cpu[len(m_cpu) // 2] if m_cpu else 0
        md += ["Why a target is missed where it is: " + "; ".join(misses) + ". These rates are set by LocalStack, a "
               f"Python process that needed {n(min(ls))}-{n(max(ls))} µs of CPU per message in the maskflow runs (it "
               "varies by that much from run to run, which is the rounds' range), on the same 2 cores as the consumer "
               f"and PostgreSQL. The ceiling consumer spends {n(c_cpu)} µs per message, maskflow {n(m_cpu)} (the "
               "module, the commit, a cold start), and every µs either takes is taken from LocalStack. With every "
               "setting at 16 receives in flight, the difference between them is within the rounds' range; a real "
               "SQS does not share the consumer's cores.", ""]

if "idle" in r:
    i = r["idle"]
    md += ["## 2. Cost while idle", "",
           f"An empty queue for {i['seconds']} s ({i['date']}), through the relay at {i['rtt_ms']:g} ms, defaults: "
           "every receive is a billed request even when it returns nothing. maskflow long-polls (20 s) with one "
           "receive in flight once the queue is empty.", ""]
    table(["consumer", "receives seen", "empty receives per idle hour, per host"],
          [[LABEL[run["kind"]], run["receives"], n(run["receives_per_hour"])] for run in i["runs"]])

if "lag" in r:
    lg = r["lag"]
    md += ["## 3. Freshness under steady load", "",
           f"A sender puts {n(lg['rate'])} messages/s (below every ceiling above) on the queue for {lg['seconds']} s "
           f"({lg['date']}) while `maskflow run` with its defaults reads through the relay. Lag is commit time minus "
           "the message's SQS `SentTimestamp`, from the host's own `maskflow_lag_seconds` histogram (quantiles "
           "interpolated within its buckets: 10, 20, 40, 80, 160 ms...). Most of it is the batching: a worker waits "
           "up to `--linger-ms` (100) to fill a transaction.", ""]
    table(["SQS round trip", "messages", "sent msg/s", "lag p50", "lag p99"],
          [[f"{run['rtt_ms']:g} ms", n(run["messages"]), n(run["sent_msg_per_s"]), f"{run['p50_s'] * 1000:.0f} ms",
            f"{run['p99_s'] * 1000:.0f} ms"] for run in lg["runs"]])

if r.get("original"):
    o = r["original"]
    md += [f"For scale, the design maskflow replaced (`bench/baselines/original.py`: one `awslocal` process per "
           f"message, {o['date']}): **{n(o['msg_per_s'], 2)} msg/s**, {n(o['messages'])} messages, no added round trip.", ""]

if "transform" in r:
    t = r["transform"]
    cache = t.get("cache", {})
    events = next(iter(cache.values()), {}).get("events", 0)

    def hit(data):
        c = cache.get(data)
        return f"{100 * c['hit_rate']:.1f}%" if c else "-"

    md += ["## 4. Transform, per record and per core", "",
           f"Criterion ({t['date']}), `cargo bench -p maskflow-bench --bench transform`. Every figure is **one cold "
           f"pass over {n(events)} events**: a fresh transformer (or module instance), so an empty mask cache, sees "
           "each event once; nothing is cycled through the cache. Realistic: events from `maskflow send --generate` "
           "(every user, address and device recurs about four times across the set, 2% malformed). Distinct: valid "
           "events whose ips and device ids are all different. The hit rate is the cache's (4,096 slots per masked "
           "column) over that pass, counted by the transformer (`Transformer::cache_stats`); the module hashes values "
           "to the same slots, so it is the module's too. Wasm is the module under wasmtime through the host's "
           "`WasmInstance` (batch ABI, results decoded to strings).", ""]
    rows = []
    for data in ("realistic", "distinct"):
        nat = transform_rate(f"native/{data}", "cold pass")
        cells = [data, hit(data), n(nat) if nat else "-"]
        for batch in (1, 10, 100, 1000):
            w = transform_rate(f"wasm/{data}", batch)
            cells.append(n(w) if w else "-")
        w = transform_rate(f"wasm/{data}", 1000)
        cells.append(f"{w / nat:.2f}" if w and nat else "-")
        rows.append(cells)
    table(["data", "cache hit rate", "native rec/s", "wasm batch 1", "wasm batch 10", "wasm batch 100",
           "wasm batch 1000", "wasm/native"], rows)
    nr, nd = transform_rate("native/realistic", "cold pass") or 0, transform_rate("native/distinct", "cold pass") or 0
    wd, wr = transform_rate("wasm/distinct", 1000) or 0, transform_rate("wasm/realistic", 1000) or 0
    table(["target (one core, cold pass)", "measured", ""], [
        ["native >= 1,000,000 rec/s, realistic", n(nr), check(nr >= 1e6)],
        ["native >= 700,000 rec/s, all-distinct", n(nd), check(nd >= 700e3)],
        ["wasm >= 300,000 rec/s, realistic (batch 1000)", n(wr), check(wr >= 300e3)],
        ["wasm >= 150,000 rec/s, all-distinct (batch 1000)", n(wd), check(wd >= 150e3)]])
    md += ["### Levers", "",
           "Each step adds one lever to the one above, each a cold pass. Steps 1-2 are the naive transform in "
           "`bench/src/naive.rs` (its rows are checked equal to maskflow's, masks included); 3-4 are the transform "
           "with its flat-object scanner turned off (`Transformer::set_flat_scan(false)`: serde_json only), 5 with "
           "it on. Every mask stays byte-identical to the `aes-siv` crate (proptests in `transform/src/mask.rs`).", ""]
    levers = ("1 naive: Value + aes-siv", "2 + precomputed S2V", "3 + typed scan, no allocation", "4 + mask cache",
              "5 + flat-object scanner")
    for data in ("realistic", "distinct"):
        rate = {lever: transform_rate(f"levers/{data}", lever) for lever in levers + ("wasm, no cache",)}
        rows, previous = [], None
        for lever in levers:
            if rate[lever]:
                rows.append([lever, n(rate[lever]), x(rate[lever], previous) if previous else "-"])
                previous = rate[lever]
        cached = transform_rate(f"wasm/{data}", 1000)
        if rate["wasm, no cache"] and cached:
            rows.append(["5 in wasm, cache off", n(rate["wasm, no cache"]), "-"])
            rows.append(["5 in wasm, cache on (batch 1000)", n(cached), x(cached, rate["wasm, no cache"]) + " of cache off"])
        md.append(f"**{data}** (cache hit rate {hit(data)})")
        md.append("")
        table(["lever", "records/s", "vs previous step"], rows)
    crate, pre = transform_rate("mask", "aes-siv crate"), transform_rate("mask", "precomputed S2V")
    if crate and pre:
        table(["one 15-byte value (native)", "masks/s"], [["aes-siv crate, full S2V", n(crate)], ["precomputed S2V", f"{n(pre)} ({x(pre, crate)})"]])
    batch_lever = [(d, transform_rate(f"wasm/{d}", 1000), transform_rate(f"wasm/{d}", 1)) for d in ("realistic", "distinct")]
    md += ["Batch ABI: wasm at batch 1000 vs batch 1: " + ", ".join(f"{d} {x(a, b)}" for d, a, b in batch_lever if a and b) + ".", ""]

if "sink" in r:
    s = r["sink"]
    md += ["## 5. PostgreSQL sink alone", "",
           f"`maskflow-bench sink` ({s['date']}): {n(s['runs'][0]['rows'])} rows per measurement, median of 3, "
           "one transaction per batch for every path. Only the host's path also claims every message id in "
           "`maskflow_ledger` (the exactly-once ledger: a plain INSERT of the ids, and `ON CONFLICT DO NOTHING "
           "RETURNING` only after a unique violation, i.e. a redelivery). A bare COPY, with no ledger, is the "
           "upper bound.", ""]
    paths = list(dict.fromkeys(run["path"] for run in s["runs"]))
    rate = {(run["path"], run["batch"]): run["rows_per_s"] for run in s["runs"]}
    batches = sorted({run["batch"] for run in s["runs"]})
    host = paths[0]
    table(["batch"] + [f"{p} rows/s" for p in paths] + ["host / single-row", "host / multi-row"],
          [[n(b)] + [n(rate[(p, b)]) for p in paths] + [x(rate[(host, b)], rate[("single-row INSERT", b)]),
                                                          x(rate[(host, b)], rate[("multi-row INSERT", b)])] for b in batches])
    headline = rate.get((host, 500))
    best = max(rate[(host, b)] for b in batches)
    if headline:
        table(["target", "measured", ""], [["host path >= 100,000 rows/s at the host's default batch size (500)",
                                            n(headline), check(headline >= 100e3)]])
        md += [f"At the other batch sizes: " + ", ".join(f"{n(rate[(host, b)])} at {n(b)}" for b in batches if b != 500)
               + f" (best {n(best)}).", ""]
    else:
        table(["target", "measured", ""], [["host path >= 100,000 rows/s", n(best) + " (best batch size)", check(best >= 100e3)]])

if "batching" in r:
    b = r["batching"]
    md += ["### Batch size and linger (why the defaults are 500 and 100 ms)", "",
           f"`maskflow run --drain --concurrency {b['concurrency']}` ({b['date']}) on {n(b['messages'])} messages per "
           "setting, one setting changed at a time (the defaults: `--batch-size 500 --linger-ms 100`). A batch is "
           "one PostgreSQL transaction; linger is how long a worker waits to fill one.", ""]
    rows = []
    for run in b["runs"]:
        k = run["messages"] / 1000
        rows.append([n(run["batch_size"]), n(run["linger_ms"]), n(run["msg_per_s"]),
                     f"{run['cpu_s']['self'] * 1000 / run['messages']:.3f}", f"{run['cpu_s']['postgres'] / k:.3f}",
                     f"{run['stages']['write_s'] / k:.3f}"])
    table(["--batch-size", "--linger-ms", "msg/s", "host CPU ms/msg", "PostgreSQL CPU s/1k", "commit s/1k"], rows)

if "scale" in r:
    sc = r["scale"]
    md += ["## 6. How cost grows, and where the time goes", "",
           f"`maskflow run --drain --concurrency {sc['concurrency']}` ({sc['date']}). CPU seconds are per 1,000 messages: "
           "the host (user + system), LocalStack and PostgreSQL (backends included) over the same interval. "
           "Stage seconds are the host's own timers summed over its threads (`done` log line): receive calls "
           "(long-poll waits included), module, PostgreSQL transaction, delete calls.", ""]
    rows = []
    for run in sc["runs"]:
        k = run["messages"] / 1000
        cpu, st = run["cpu_s"], run["stages"]
        rows.append([n(run["messages"]), n(run["wall_s"], 1), n(run["msg_per_s"]), n(run["peak_rss_kb"] / 1024, 1),
                     f"{cpu['self'] / k:.2f}", f"{cpu['localstack'] / k:.2f}", f"{cpu['postgres'] / k:.2f}",
                     f"{st['receive_s'] / k:.2f} / {st['transform_s'] / k:.3f} / {st['write_s'] / k:.2f} / {st['delete_s'] / k:.2f}"])
    table(["messages", "wall s", "msg/s", "peak RSS MiB", "host CPU s/1k", "LocalStack CPU s/1k", "PostgreSQL CPU s/1k",
           "stage s/1k: receive / module / PostgreSQL / delete"], rows)

if "rekey" in r:
    rk = r["rekey"]
    md += ["## 7. Rekey: re-masking history under a new key", "",
           f"`maskflow-bench rekey` ({rk['date']}): rows made by `maskflow send --generate`'s events under k1 "
           "(each ip and device id recurs about 4 times) and their rejections, re-masked under k2 by the host's "
           "own `maskflow rekey` code: each distinct mask unmasked and masked again once, the table updated "
           "1,024 pages per transaction. Timed from the start to the last commit, the tables checked after.", ""]
    table(["rows", "rejections", "distinct masks", "seconds", "rows/s"],
          [[n(run["rows"]), n(run["rejections"]), n(run["distinct"]), n(run["seconds"], 1), n(run["rows_per_s"])]
           for run in rk["runs"]])
    million = [run for run in rk["runs"] if run["rows"] >= 1_000_000]
    if million:
        secs = million[0]["seconds"]
        table(["target", "measured", ""], [["1M rows re-masked in under 60 s on 2 cores", f"{n(secs, 1)} s", check(secs < 60)]])

if "replay" in r:
    rp = r["replay"]
    host = rp["host"]
    md += ["## 8. Replay: rejections back after a fix", "",
           f"`maskflow replay` ({rp['date']}), the binary as an operator runs it: rejections of a renamed field "
           "(`user_id` -> `userId`, all `missing_field`, seeded by `maskflow-bench seed-rejections`) replayed with the "
           "mapping that reads the new name, so every one becomes a row; timed from the process's start (the module "
           "compiled into an empty cache) to its exit, the tables checked after. Beside it, in the same run, the host's own "
           f"end-to-end rate: `maskflow run --drain` with its defaults over {n(host['messages'])} messages from "
           "LocalStack on this machine, from its start to its exit.", ""]
    table(["rejections", "seconds", "rows/s", "rows/s / host msg/s", "peak RSS MiB", "CPU s (replay / PostgreSQL)"],
          [[n(run["rejections"]), n(run["wall_s"], 1), n(run["rows_per_s"]), f"{run['rows_per_s'] / host['msg_per_s']:.1f}x",
            n(run["peak_rss_kb"] / 1024, 1), f"{run['cpu_s']['self']:.1f} / {run['cpu_s']['postgres']:.1f}"]
           for run in rp["runs"]])
    slowest = min(run["rows_per_s"] for run in rp["runs"])
    peak = max(run["peak_rss_kb"] for run in rp["runs"]) / 1024
    big = max(rp["runs"], key=lambda run: run["rejections"])
    table(["target", "measured", ""],
          [["replay at least as fast as the host end to end", f"{n(slowest)} rows/s vs {n(host['msg_per_s'])} msg/s ({slowest / host['msg_per_s']:.1f}x)", check(slowest >= host["msg_per_s"])],
           [f"peak RSS under 64 MiB whatever the number of rejections ({n(big['rejections'])} here)", f"{n(peak, 1)} MiB", check(peak < 64)]])
if "keysources" in r:
    ks = r["keysources"]
    md += ["## 9. Key sources: start-up time", "",
           f"`maskflow transform` on empty input ({ks['date']}, {ks['rounds']} starts per source, the sources taking "
           "turns): the key read from its source (LocalStack's Secrets Manager and KMS on 127.0.0.1, so no network "
           "latency: on AWS add one round trip per call, GetSecretValue and one Decrypt per wrapped line), the "
           "compiled module loaded from its cache and one instance made. Ratios are of medians of the same run.", ""]
    base = sorted(ks["runs"][0]["seconds"])[len(ks["runs"][0]["seconds"]) // 2]
    rows = []
    for run in ks["runs"]:
        t = sorted(run["seconds"])
        med = t[len(t) // 2]
        rows.append([run["source"], n(med * 1000, 1), f"{n(t[0] * 1000, 1)}-{n(t[-1] * 1000, 1)}", x(med, base)])
    table(["source", "median ms", "range ms", "vs key file"], rows)

if "clickhouse" in r:
    c = r["clickhouse"]
    rate, of = c["events_per_s"], c["of_built_in"]
    md += ["## 10. ClickHouse: the UDF at engine speed", "",
           f"`bench/clickhouse.py` ({c['date']}, chDB {c['chdb']}): {n(c['events'])} generated events in one file "
           f"({n(c['rejected'])} of them rejections), every query on one thread (`max_threads = 1`), each measured "
           f"{c['rounds']} times interleaved (medians). The reference is what a ClickHouse user would write without "
           "maskflow: `JSONExtractString` of the fields and `encrypt('aes-256-ecb', ...)` of `ip` and `device_id` "
           "(no validation, no rejections, no authentication). The UDFs are `SELECT f(line, ...) FORMAT Null`; "
           "a pipeline is `INSERT INTO` its raw table until both tables hold every event; the module's own rate is "
           "its `maskflow_typed` export called directly under wasmtime with the same blocks ClickHouse hands it.", ""]
    # bench/clickhouse.py's order: the reference, the functions, the pipelines, the module alone.
    order = ["built-in", "maskflow_typed", "maskflow_batch (8,192 events per call)", "maskflow (JSON)",
             "pipeline (typed views)", "pipeline (JSON views, before)", "module (wasmtime, maskflow_typed)",
             "maskflow transform"]
    table(["query", "events/s", "of the built-in query"],
          [[name, n(rate[name]), f"{of[name]:.2f}x"] for name in order + sorted(set(rate) - set(order))])
    per_event = lambda name: 1e6 / rate[name]
    md += [f"Where the time goes, per event: the module's own work {per_event('module (wasmtime, maskflow_typed)'):.1f} µs "
           "(two AES-SIV masks without AES-NI, the JSON parse); ClickHouse around it (the file, the join that "
           "brings the config, RowBinary both ways, the call) with one row per event "
           f"{per_event('maskflow_typed') - per_event('module (wasmtime, maskflow_typed)'):.1f} µs more, with arrays "
           f"of 8,192 events {per_event('maskflow_batch (8,192 events per call)') - per_event('module (wasmtime, maskflow_typed)'):.1f} µs "
           f"more; the built-in query's whole work is {per_event('built-in'):.1f} µs. So even a UDF that cost ClickHouse "
           f"nothing would be {of['module (wasmtime, maskflow_typed)']:.2f}x the built-in query.", ""]
    table(["target", "measured", ""],
          [["the typed UDF >= 0.3x the built-in query", f"{of['maskflow_typed']:.2f}x", check(of["maskflow_typed"] >= 0.3)],
           ["the pipeline (typed views) >= 0.25x the built-in query", f"{of['pipeline (typed views)']:.2f}x",
            check(of["pipeline (typed views)"] >= 0.25)]])

os.makedirs(os.path.dirname(args.out), exist_ok=True)
open(args.out, "w").write("\n".join(md).rstrip() + "\n")

# The chart: end-to-end by concurrency, transform by batch size, sink by batch size.
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
if "e2e" in r and r["e2e"].get("rtt_ms"):
    ax = axes[0]
    for (kind, setting), style in (((("ceiling", "16 receives in flight")), "k--"), (("maskflow", "defaults"), "o-"),
                                   (("boto3", "16 threads"), "s-"), (("vector", "defaults"), "x-"),
                                   (("vector", "client_concurrency 16"), "x:")):
        pts = [(rtt, one(rtt, kind, setting)["msg_per_s"]) for rtt in r["e2e"]["rtt_ms"] if one(rtt, kind, setting)]
        if pts:
            ax.plot(*zip(*pts), style, label=f"{LABEL[kind]} ({setting})")
    ax.set(title="End to end, until the queue is empty", xlabel="SQS round trip (ms)", ylabel="messages/s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
if "transform" in r:
    ax = axes[1]
    for i, data in enumerate(("realistic", "distinct")):
        pts = [(b, transform_rate(f"wasm/{data}", b)) for b in (1, 10, 100, 1000) if transform_rate(f"wasm/{data}", b)]
        if pts:
            ax.plot(*zip(*pts), "o-", color=f"C{i}", label=f"wasm/{data}")
        nat = transform_rate(f"native/{data}", "cold pass")
        if nat:
            ax.axhline(nat, color=f"C{i}", ls="--", label=f"native/{data}")
    ax.set(title="Transform, one core, one cold pass", xlabel="wasm batch size", ylabel="records/s", xscale="log", yscale="log")
    ax.legend(fontsize=8)
if "sink" in r:
    ax = axes[2]
    for path in dict.fromkeys(run["path"] for run in r["sink"]["runs"]):
        pts = [(run["batch"], run["rows_per_s"]) for run in r["sink"]["runs"] if run["path"] == path]
        ax.plot(*zip(*pts), "o-", label=path)
    ax.set(title="PostgreSQL write paths", xlabel="batch size (rows per transaction)", ylabel="rows/s", xscale="log", yscale="log")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(args.chart, dpi=110)
print(f"report: wrote {args.out} and {args.chart}")
