"""BENCHMARKS.md from a results dict: method, machine, figures and ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The figures of `latest.json`, in table order, with the targets they are compared against (not asserted).
FIGURES: dict[str, str] = {
    "commands_per_s_64": "≥ 1,500",
    "commands_per_s_16": "",
    "commands_per_s_256": "",
    "half_capacity_rate_per_s": "reported",
    "p50_ms_at_half": "",
    "p99_ms_at_half": "≤ 50",
    "visibility_p99_ms": "≤ 100",
    "projection_events_per_s": "≥ 20,000",
    "slowest_over_baseline": "≥ 0.4",
    "rebuild_1m_s": "≤ 60",
    "restore_100k_s": "≤ 10",
    "idempotency_restore_1m_s": "reported",
    "idempotency_mib_per_1m": "reported",
    "crud_commands_per_s": "≤ Eventline",
    "crud_2w_commands_per_s": "≤ Eventline / 1.5",
    "eventsourcing_commands_per_s": "≤ Eventline / 5",
    "eventsourcing_2w_commands_per_s": "reported",
    "over_crud_2w_back_to_back": "≥ 1.5",
    "over_eventsourcing_back_to_back": "≥ 5",
    "aiokafka_ceiling_msgs_per_s": "",
    "kafka_perf_msgs_per_s": "",
    "cluster_commands_per_s_64": "reported",
    "cluster_ratio": "reported",
    "start_to_first_decision_s": "≤ 2",
    "takeover_to_first_decision_s": "≤ 2",
    "streams_open": "2,000",
    "stream_delivery_p99_ms": "reported",
    "stream_delivery_p99_one_stream_ms": "",
    "stream_kib_each": "reported",
    "sealing_on_off_ratio_64": "≥ 0.9",
    "rebuild_sealed_events_per_s": "reported",
    "rebuild_sealed_over_plain": "reported",
    "tracing_on_off_ratio_64": "reported",
    "tracing_sampled_off_ratio_64": "reported",
    "lean_routes_on_off_ratio_64": "> 1 to keep",
    "gc_young_threshold_on_off_ratio_64": "> 1 to keep",
}


def num(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(a: Any, b: Any) -> str:
    return "—" if a is None or not b else f"{a / b:.3g}×"


def figures_table(results: dict[str, Any]) -> str:
    rows = [f"| `{key}` | {num(results.get(key), 1)} | {target} |" for key, target in FIGURES.items()]
    return "| figure | value | target |\n|---|---:|---:|\n" + "\n".join(rows)


def load_row(name: str, run: dict[str, Any] | None) -> str:
    if not run:
        return f"| {name} | — | — | — | — | — | — |"
    lat = run["latency"]
    others = {k: v for k, v in run["statuses"].items() if k != "200"} | run["errors"]
    return (
        f"| {name} | {num(run['ok_per_s'])} | {num(lat['p50_ms'], 1)} | {num(lat['p99_ms'], 1)} | "
        f"{num(lat['max_ms'], 0)} | {generator(run)} | {others or ''} |"
    )


def generator(run: dict[str, Any]) -> str:
    if run.get("generator") == "wrk":
        return "wrk"
    return f"{run['generator_cpu']:.2f}"


def cpu_table(runs: dict[str, dict[str, Any] | None]) -> str:
    """Share of one core each process used during the 64-client runs, and the CPU each command cost."""
    rows = []
    for name, run in runs.items():
        cpu = (run or {}).get("cpu")
        if not cpu:
            continue
        parts = " · ".join(f"{process} {share:.2f}" for process, share in cpu.items())
        total = sum(cpu.values())
        per_command = total / run["ok_per_s"] * 1000 if run and run["ok_per_s"] else None
        rows.append(f"| {name} | {parts} | {total:.2f} | {num(per_command, 2)} |")
    if not rows:
        return ""
    table = (
        "CPU during the 64-client runs (share of one core per process, the load generator left out; "
        "the machine has two):\n\n| service | by process | total | ms of CPU per command |\n"
        "|---|---|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    eventline = runs.get("Eventline") or {}
    cpu, rate = eventline.get("cpu") or {}, eventline.get("ok_per_s") or 0
    if "api" in cpu and rate:
        table += (
            f"\nWhat bounds it: both cores are busy, so throughput is the CPU budget divided by the CPU one "
            f"command costs across every process. 1,500 commands/s on two cores allows 1.33 ms per command "
            f"in all; in this run the HTTP API process alone spent {cpu['api'] / rate * 1000:.2f} ms per "
            f"command (mostly the ASGI stack: see the profile below), the broker "
            f"{cpu.get('kafka', 0) / rate * 1000:.2f} ms.\n"
        )
    return table


def open_rate(el: dict[str, Any]) -> float:
    """The open loop's rate: half of the 64-client capacity measured in the same run."""
    return float((el.get("open_rate") or {}).get("rate") or 0)


def drained_note(el: dict[str, Any]) -> str:
    """Each Eventline phase starts once nothing is queued: what the previous phase left, and the wait."""
    phases = {"16 clients": "closed_16", "64 clients": "closed_64", "256 clients": "closed_256"}
    phases |= {"half-capacity open loop": "open_rate", "visibility": "visibility", "light load": "light"}
    seen = [(name, el[key]["drained"]) for name, key in phases.items() if (el.get(key) or {}).get("drained")]
    if not seen:
        return ""
    parts = [
        f"{name} {d['waited_s']:.1f} s (left: {d['lag_at_end_of_previous']['processor']} commands, "
        f"{d['lag_at_end_of_previous']['projections']} events)"
        for name, d in seen
    ]
    return (
        "Each Eventline phase starts from a drained system (`bench/drain.py`: no command waiting for the "
        "processor, no event for a projection; checked, not assumed). Wait before each phase, and what the "
        "previous phase had left queued: " + "; ".join(parts) + ".\n"
    )


def light_note(el: dict[str, Any], plan: dict[str, Any]) -> str:
    """The same probes under light load: what the path costs without waiting for a core."""
    light = el.get("light")
    if not light:
        return ""
    lat, vis = light.get("latency", {}), light.get("visibility", {})
    return (
        f"\nThe same at {plan['light_rate']:.0f} commands/s, where commands seldom wait for a core: "
        f"latency p50 {num(lat.get('p50_ms'), 1)} ms, p99 {num(lat.get('p99_ms'), 1)} ms; visibility "
        f"p50 {num(vis.get('p50_ms'), 1)} ms, p99 {num(vis.get('p99_ms'), 1)} ms. At "
        f"{open_rate(el):.0f}/s (half of the 64-client capacity) the two cores are busier (see the CPU "
        "table), so the gap between the two is time spent queueing for CPU.\n"
    )


def queue_note(el: dict[str, Any]) -> str:
    """Time spent waiting for a core in the open loops: what bounds latency on a busy machine."""
    rows = []
    for label, key in (("half capacity", "open_rate"), ("visibility", "visibility"), ("light load", "light")):
        run = el.get(key) or {}
        waiting, cpu = run.get("waiting_for_a_core"), run.get("cpu")
        rate = float(run.get("rate") or 0)
        if not waiting or not cpu or not rate:
            continue
        by_process = " · ".join(f"{name} {1000 * share / rate:.2f}" for name, share in waiting.items())
        pressure = run.get("cpu_pressure")
        rows.append(
            f"| {label}, {rate:.0f}/s | {sum(cpu.values()):.2f} | {by_process} | "
            f"{1000 * sum(waiting.values()) / rate:.2f} | "
            f"{'–' if pressure is None else f'{100 * pressure:.0f}%'} | {num(run['latency'].get('p99_ms'), 1)} |"
        )
    if not rows:
        return ""
    return (
        "\nWaiting for a core in the open loops (`bench/cpu.py`: each thread's run-queue wait from "
        "/proc/…/schedstat, and the kernel's CPU pressure, the share of the time some runnable task "
        "waited). A command crosses the generator, the API, the broker (twice), the processor and, "
        "for visibility, the projector and PostgreSQL; at each hop it can wait for a core.\n\n"
        "| open loop | CPU (cores) | ms waiting for a core per command, by process | all | CPU pressure | p99 ms |\n"
        "|---|---:|---|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )


def write_section(results: dict[str, Any]) -> str:
    write = results.get("write_side")
    if not write:
        return "## Write side\n\nNot measured in this run" + error(results, "write_side") + "\n"
    el, plan = write["eventline"], results["plan"]
    crud, es = write.get("crud", {}).get("closed_64"), write.get("eventsourcing", {}).get("closed_64")
    crud_2w = write.get("crud_2w", {}).get("closed_64")
    es_2w = write.get("eventsourcing_2w", {}).get("closed_64")
    rows = [load_row(f"Eventline, {c} clients", el.get(f"closed_{c}")) for c in plan["concurrency"]]
    rows.append(load_row(f"Eventline, open loop {open_rate(el):.0f}/s (half of 64 clients' rate)", el.get("open_rate")))
    if "light" in el:
        rows.append(load_row(f"Eventline, open loop {plan['light_rate']:.0f}/s (with visibility reads)", el["light"]))
    rows.append(load_row("CRUD, 64 clients", crud))
    rows.append(load_row("CRUD, a uvicorn worker per core, 64 clients", crud_2w))
    rows.append(load_row("eventsourcing, 64 clients", es))
    rows.append(load_row("eventsourcing, a uvicorn worker per core, 64 clients", es_2w))
    vis = el.get("visibility", {}).get("visibility", {})
    layout = {
        "split": "three processes: `eventline api`, `eventline processor`, `eventline projector`",
        "run": "one process: `eventline run` (API, processor, projector and saga)",
    }[el["layout"]]
    c64 = results.get("commands_per_s_64")
    kafka = results.get("kafka") or {}
    raw = kafka.get("aiokafka") or {}
    return f"""## Write side: deposits over HTTP

Workload: `POST /accounts/{{id}}/deposits` with `{{"amount": 1}}` on one of
{plan["accounts"]:,} accounts opened beforehand, chosen at random. Each service is served by
uvicorn (uvloop, httptools, access log on, as `eventline api` runs) in its own processes on loopback.
The load generators are separate processes. Closed loops use wrk (C, two threads; `make bench`
installs Debian's package). The open loop and the visibility probe use `bench/load.py` (wrk has no
fixed-rate mode and cannot carry `X-Consistent-With` tokens): uvloop and a minimal keep-alive HTTP/1.1
client (`bench/http_client.py`), which uses under a tenth of a core at 500 requests/s; with httpx the
generator itself could not hold 500/s. Each measurement is {plan["warmup"]:.0f} s of warm-up then
{plan["duration"]:.0f} s counted. Only 200 answers count as commands done (Eventline's 202
"stored, not decided yet" does not).

- **Eventline** ({layout}), fresh namespace, topics and database, personal fields sealed as production
  requires (a deposit without a reference carries none: docs/privacy.md has the A/B with one); it answers once
  the command's events are committed (the API waits for the result on `<ns>.command-results`).
- **CRUD** (`bench/crud_service.py`): FastAPI + SQLAlchemy 2 + asyncpg; `SELECT … FOR UPDATE` the
  balance row, update it, insert a ledger row, one transaction; pool of 20 (+20 overflow); own database.
  Measured twice: in one uvicorn process, and with a uvicorn worker per core (pools per worker), as
  one would deploy it.
- **eventsourcing** (`bench/es_service.py`): the `eventsourcing` library with `eventsourcing.postgres`
  (psycopg 3, pool of 20 + 20), library defaults (no snapshots, no cache); its synchronous calls run in
  FastAPI's thread pool; an optimistic-concurrency conflict is retried. Also measured twice: one uvicorn
  process, and a worker per core.

Closed loop: each client sends its next command when the previous answer arrives. Open loop: commands
start at a fixed rate whatever the answers do; latency counts from when a command was due.
{drained_note(el)}
"generator cpu" is the share of one core the Python generator used (near 1.0 would mean it was the
limit); "wrk" marks wrk runs.

| run | commands/s | p50 ms | p99 ms | max ms | generator cpu | other answers |
|---|---:|---:|---:|---:|---:|---|
{chr(10).join(rows)}

**Visibility** (accepted → visible in the `accounts` read model), open loop at {open_rate(el):.0f}
commands/s (half of the 64-client capacity measured just before), every {plan["visibility_every"]}th
accepted deposit followed by `GET /accounts/{{id}}` with `X-Consistent-With: <position>` (the API
waits for the projection's checkpoint); counted from the 200 of the deposit to the 200 of the read
showing the new version: p50 {num(vis.get("p50_ms"), 1)} ms,
p99 **{num(vis.get("p99_ms"), 1)} ms**, max {num(vis.get("max_ms"), 1)} ms over {vis.get("samples", 0):,} reads.
{light_note(el, plan)}
{queue_note(el)}

{
        cpu_table(
            {
                "Eventline": el.get("closed_64"),
                "CRUD": crud,
                "CRUD, worker per core": crud_2w,
                "eventsourcing": es,
                "eventsourcing, worker per core": es_2w,
            }
        )
    }
Ratios (same run, 64 clients):

| | ratio |
|---|---:|
| Eventline / CRUD | {ratio(c64, results.get("crud_commands_per_s"))} |
| Eventline / CRUD with a worker per core | {ratio(c64, results.get("crud_2w_commands_per_s"))} |
| Eventline / eventsourcing | {ratio(c64, results.get("eventsourcing_commands_per_s"))} |
| Eventline / eventsourcing with a worker per core | {ratio(c64, results.get("eventsourcing_2w_commands_per_s"))} |
| Eventline / aiokafka ceiling (pipelined) | {ratio(c64, results.get("aiokafka_ceiling_msgs_per_s"))} |
| Eventline / aiokafka, 64 callers awaiting each send | {ratio(c64, raw.get("send_and_wait_64_msgs_per_s"))} |
{back_to_back(results)}"""


def back_to_back(results: dict[str, Any]) -> str:
    """The targets' ratios, from rounds that measured Eventline and the peers one right after the other."""
    rounds = (results.get("write_side") or {}).get("against_peers") or []
    if not rounds:
        return ""
    rows = "\n".join(
        f"| round {i} | {r['eventline_per_s']:,.0f} | {r['crud_2w_per_s']:,.0f} | {r['eventsourcing_per_s']:,.0f} | "
        f"{r['over_crud_2w']:.2f}× | {r['over_eventsourcing']:.2f}× |"
        for i, r in enumerate(rounds, start=1)
    )
    return f"""
The ratios above divide figures measured minutes apart, and this shared machine's speed drifts by
more than the targets' margins in that time. The targets' figures come from rounds that measure,
one right after the other at 64 clients, Eventline (fresh namespace, drained), the CRUD peer with a
uvicorn worker per core and eventsourcing in one process (`bench/write_side.py::against_peers`):

| | Eventline | CRUD, worker per core | eventsourcing | Eventline / CRUD, worker per core | Eventline / eventsourcing |
|---|---:|---:|---:|---:|---:|
{rows}

Medians: `over_crud_2w_back_to_back` **{num(results.get("over_crud_2w_back_to_back"), 2)}×** (target ≥ 1.5),
`over_eventsourcing_back_to_back` **{num(results.get("over_eventsourcing_back_to_back"), 2)}×** (target ≥ 5).
"""


def kafka_section(results: dict[str, Any]) -> str:
    kafka = results.get("kafka")
    if not kafka:
        return "## Kafka ceilings\n\nNot measured in this run" + error(results, "kafka") + "\n"
    raw, perf, plan = kafka["aiokafka"], kafka.get("kafka_perf"), results["plan"]
    perf_line = (
        f"{num(perf['msgs_per_s'])} msgs/s (avg latency {perf['avg_latency_ms']:.1f} ms, {perf['records']:,} records)"
        if perf
        else "not available"
    )
    return f"""## Kafka ceilings

Records of {raw["record_bytes"]} bytes (an encoded deposit command, keyed and partitioned as the API
does) to a bench topic with the same partition count, `acks=all`, idempotent producer.

- `aiokafka_ceiling_msgs_per_s`: a raw aiokafka producer with the API's settings, in a process of its
  own on uvloop, as fast as it goes (up to 5,000 sends in flight) for {plan["ceiling_seconds"]:.0f} s:
  **{num(raw["pipelined_msgs_per_s"])}** msgs/s. With 64 callers each awaiting its own send (the
  API's pattern): {num(raw["send_and_wait_64_msgs_per_s"])} msgs/s.
- `kafka_perf_msgs_per_s`: Kafka's own `org.apache.kafka.tools.ProducerPerformance` (kafka-tools
  4.1.1, the broker's version; `bench/kafka-tools/pom.xml`), `--throughput -1`: **{perf_line}**.
  aiokafka reaches {ratio(raw["pipelined_msgs_per_s"], perf["msgs_per_s"] if perf else None)} of it.
"""


def cluster_section(results: dict[str, Any]) -> str:
    c = results.get("cluster")
    if not c:
        return "## On a three-broker cluster\n\nNot measured in this run" + error(results, "cluster") + "\n"
    rows = []
    for name, run in (("single node", c["single_node"]), ("three brokers", c["cluster"])):
        cpu = run.get("cpu") or {}
        brokers = sum(v for k, v in cpu.items() if k == "kafka" or k.startswith("broker-"))
        per_command = brokers / run["ok_per_s"] * 1000 if run["ok_per_s"] else None
        rows.append(
            f"| {name} | {num(run['ok_per_s'])} | {num(run['latency']['p99_ms'], 1)} | {brokers:.2f} | "
            f"{num(per_command, 2)} |"
        )
    table = "\n".join(rows)
    return f"""## On a three-broker cluster

`bench/cluster.py`: the same 64-client deposit run (processor, projector and API as separate processes)
on the single node, then on the three-node cluster the tests use (`scripts/infra.py up cluster`:
replication 3, `min.insync.replicas` 2), back to back in this run. The three brokers share the same
{results["machine"]["cpus"]} cores with everything else, so this is a floor for what replication costs.

| Kafka | commands/s | p99 ms | brokers' CPU (cores) | brokers' CPU ms per command |
|---|---:|---:|---:|---:|
{table}

`cluster_ratio` (three brokers ÷ single node): **{num(c["ratio"], 2)}**.
"""


def restore_section(results: dict[str, Any]) -> str:
    r = results.get("restore")
    if not r:
        return "## Restore\n\nNot measured in this run" + error(results, "restore") + "\n"
    return f"""## Restore: a processor loading its aggregates

{r["aggregates"]:,} aggregate records ({r["record_bytes"]} bytes each: an account opened and credited
once, built by the processor's own decision code) are produced onto
`<ns>.aggregates`; then `app.eventstore.restore.restore_partitions(settings, all partitions)` is timed,
on uvloop as in a processor: **{r["seconds"]:.2f} s** ({num(r["aggregates_per_s"])} aggregates/s),
i.e. `restore_100k_s` = **{num(results.get("restore_100k_s"), 2)} s** (target ≤ 10 s). Reading the same
records with aiokafka without decoding them takes {r["read_only_seconds"]:.2f} s
({ratio(r["read_only_seconds"], r["seconds"])} of the restore).
{idempotency_part(r.get("idempotency"))}"""


def idempotency_part(m: dict[str, Any] | None) -> str:
    if not m:
        return ""
    return f"""
The idempotency memory: {m["remembered"]:,} remembered commands ({m["record_bytes"]} bytes each: a
deposit's answer) on one partition of `<ns>.aggregates`, restored as on a takeover: **{m["seconds"]:.2f} s**,
holding **{m["bytes_per_entry"]:.0f} bytes per entry** in memory (resident set before and after;
{m["resident_bytes"] / 2**20:,.0f} MiB). Per million retained keys: `idempotency_restore_1m_s` and
`idempotency_mib_per_1m` in the table.
"""


def ab_line(name: str, r: dict[str, Any]) -> str:
    now, indexed = r["events_per_s"], r["indexes_maintained_events_per_s"]
    inserted = r.get("inserted_events_per_s")
    steps = f"{now:,.0f} events/s as rebuilt"
    if inserted:
        steps += f"; {inserted:,.0f} inserting instead of COPY (COPY **{now / inserted:.2f}×**)"
        now_ratio = inserted / indexed
    else:
        now_ratio = now / indexed
    return f"- `{name}`: {steps}; {indexed:,.0f} with the indexes in place (deferring them **{now_ratio:.2f}×**)"


def read_section(results: dict[str, Any]) -> str:
    read = results.get("read_side")
    if not read:
        return "## Read side\n\nNot measured in this run" + error(results, "read_side") + "\n"
    base = read["aiokafka_consume_events_per_s"]
    together = read.get("rebuilt_together") or {}
    rows = "\n".join(
        f"| `{name}` | {r['events']:,} | {r['seconds']:.1f} | {num(r.get('replay_seconds'), 1)} | "
        f"{num(r.get('index_seconds'), 1)} | {num(r.get('swap_seconds'), 1)} | {r['events_per_s']:,.0f} | "
        f"{r['events_per_s'] / base:.2f} |"
        for name, r in read["rebuilds"].items()
    )
    deferred = "\n".join(
        ab_line(name, r) for name, r in read["rebuilds"].items() if r.get("indexes_maintained_events_per_s")
    )
    if deferred:
        deferred = (
            "\nA/B in this run: the insert-only read models replay into tables without indexes, "
            "built once the replay is done (projections/deferred_indexes.py), filled by COPY where the "
            "projection has a bulk path (`Projection.bulk_apply`), against the same rebuild inserting "
            "(`INSERT … SELECT unnest`) and against it with the indexes in place:\n\n" + deferred + "\n"
        )
    return f"""## Read side: rebuild throughput

{read["events"]:,} events (accounts of 100 events each) are produced straight onto
`<ns>.events`; then each projection is rebuilt from offset 0 with `eventline rebuild`'s
code path (replay into fresh tables, catch up, swap), in the benchmark's own process:
one process, as one projector runs. Baseline: reading and decoding the same events
with aiokafka alone ({base:,.0f} events/s). Both in the benchmark's process with the young-generation
GC threshold every Eventline process runs with ({num(read.get("gc_young_threshold"))}).

| projection | events | seconds | of which replay | indexes | catch-up and swap | events/s | ratio to baseline |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}
{gc_ab(read)}
- `projection_events_per_s` (slowest projection): **{read["projection_events_per_s"]:,.0f}** (target ≥ 20,000)
{alternated(read)}
- `rebuild_1m_s` (the three read models rebuilt together, per million events, as `eventline
  rebuild --all` does: one replay, shared by partition among
  {together.get("workers", 1)} processes, one per core): **{read["rebuild_1m_s"]:.1f} s** (target ≤ 60 s);
  one after the other, each in one process, they take {num(read.get("rebuild_1m_s_one_by_one"), 1)} s
{deferred}{rebuild_profile(read)}"""


def alternated(read: dict[str, Any]) -> str:
    """The slowest projection's rebuilds, each right after a baseline of its own."""
    found = [(name, r["alternated"]) for name, r in read["rebuilds"].items() if r.get("alternated")]
    if not found:
        return ""
    name, rounds = found[0]
    each = "; ".join(
        f"{r['events_per_s']:,.0f} over {r['baseline_events_per_s']:,.0f} = {r['ratio']:.2f}" for r in rounds
    )
    return (
        f"- `slowest_over_baseline`: **{num(read.get('slowest_over_baseline'), 2)}** (target ≥ 0.4), the median of "
        f"{len(rounds)} rebuilds of `{name}` each measured right after a baseline of its own ({each}). The "
        "table's ratios divide by the one baseline read before all the rebuilds, minutes earlier."
    )


def gc_ab(read: dict[str, Any]) -> str:
    found = [(name, r) for name, r in read["rebuilds"].items() if r.get("gc_default_events_per_s")]
    if not found:
        return ""
    name, r = found[0]
    default = r["gc_default_events_per_s"]
    return (
        f"\nA/B in this run: `{name}` rebuilt again with Python's default threshold (700): "
        f"{default:,.0f} events/s against {r['events_per_s']:,.0f} (the tuned threshold "
        f"**{r['events_per_s'] / default:.2f}×**).\n"
    )


def rebuild_profile(read: dict[str, Any]) -> str:
    found = [(name, r["profile"]) for name, r in read["rebuilds"].items() if r.get("profile")]
    if not found:
        return ""
    name, prof = found[0]
    own = "\n".join(f"| {f} | {s}% |" for f, s in prof["self"][:12])
    incl = "\n".join(f"| {f} | {s}% |" for f, s in prof["eventline_inclusive"][:14])
    packages = ", ".join(f"{p} {s}%" for p, s in prof["packages"][:8])
    return f"""
### Profile: where a rebuild of `{name}` spends this process's time

One more rebuild of the slowest projection ({num(prof.get("events_per_s_while_profiled"))} events/s while
sampled) under `py-spy record --pid <the benchmark> --rate 100 --nonblocking --function`; shares are of
the {prof["samples"]:,} samples in which the process was not idle (raw stacks in
`.local/bench-logs/profile-rebuild-{name}.txt`). What the baseline does too is reading
(`aiokafka/consumer/fetcher.py`) and decoding (`EventEnvelope.decode`, `from_record`); the rest is the
projection's own: building rows, the COPY (asyncpg encodes every value in this process), the
runner's bookkeeping. The index build is PostgreSQL's (the table's "indexes" column), not sampled here.

Self time by package: {packages}.

| innermost frame (self) | share |
|---|---:|
{own}

| Eventline function on the stack (inclusive) | share |
|---|---:|
{incl}
"""


def startup_section(results: dict[str, Any]) -> str:
    up = results.get("startup")
    if not up:
        return "## A processor's first decisions\n\nNot measured in this run" + error(results, "startup") + "\n"
    start = f"{up['start_to_first_decision_s']:.2f} s | {up['start_to_every_partition_s']:.2f} s"
    takeover = f"{up['takeover_to_first_decision_s']:.2f} s | {up['takeover_to_every_partition_s']:.2f} s"
    return f"""## A processor's first decisions

`bench/startup.py`: one command per partition waits on `<ns>.commands`; a new `eventline processor`
process starts (interpreter, imports, joining the group, restoring, fencing each partition). Then a
second processor joins, the first is stopped with SIGTERM (it leaves the group), and one command per
partition is timed from that stop. Times to the results on `<ns>.command-results`:

| | first decision | every partition |
|---|---:|---:|
| from the process's start | {start} |
| from the owner's SIGTERM (takeover) | {takeover} |
"""


def privacy_section(results: dict[str, Any]) -> str:
    pv = results.get("privacy")
    if not pv:
        return "## Sealing personal fields\n\nNot measured in this run" + error(results, "privacy") + "\n"
    rows = []
    for i, (off, on) in enumerate(zip(pv["writes"]["off"], pv["writes"]["on"], strict=True), start=1):
        cpu_off, cpu_on = (sum(run["cpu_ms_per_command"].values()) for run in (off, on))
        rows.append(
            f"| pair {i} | {num(off['commands_per_s'])} | {num(on['commands_per_s'])} | "
            f"{on['commands_per_s'] / off['commands_per_s']:.3f} | {cpu_off:.2f} → {cpu_on:.2f} ms |"
        )
    rb = pv["rebuilds"]
    return f"""## Sealing personal fields

`bench/privacy.py` (docs/privacy.md): deposits that carry a reference, a personal field sealed at the
API, opened and sealed again by the processor and opened by the projector, at 64 clients with sealing
off and on, alternated on fresh namespaces. The target is at most 10% fewer commands/s (a ratio ≥ 0.9).

| | sealing off | sealing on | on / off | CPU per command off → on |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

The ledger rebuilt from {num(rb["plain"]["events"])} deposits whose references are plain (sealing off):
{num(rb["plain"]["events_per_s"])} events/s; the same deposits sealed, each reference opened with its
account's key: {num(rb["sealed"]["events_per_s"])} events/s ({rb["sealed_over_plain"]:.2f}× the plain rate).
"""


def tracing_section(results: dict[str, Any]) -> str:
    tr = results.get("tracing")
    if not tr:
        return "## Tracing\n\nNot measured in this run" + error(results, "tracing") + "\n"
    rows = []
    sampled_runs = tr["runs"].get("sampled") or [None] * len(tr["runs"]["off"])
    for i, (off, on, sampled) in enumerate(zip(tr["runs"]["off"], tr["runs"]["on"], sampled_runs, strict=True), 1):
        cpu_off, cpu_on = (sum(run["cpu_ms_per_command"].values()) for run in (off, on))
        kept = (
            f"{num(sampled['commands_per_s'])} | {sampled['commands_per_s'] / off['commands_per_s']:.3f}"
            if sampled
            else "– | –"
        )
        rows.append(
            f"| pair {i} | {num(off['commands_per_s'])} | {num(on['commands_per_s'])} | "
            f"{on['commands_per_s'] / off['commands_per_s']:.3f} | {cpu_off:.2f} → {cpu_on:.2f} ms | {kept} |"
        )
    share = f"{tr.get('sampled_ratio', 0.1):.0%}"
    return f"""## Tracing

`bench/tracing.py` (docs/operating.md): deposits at 64 clients with OpenTelemetry off, on, and on with
{share} of the traces sampled (`EVENTLINE_TRACE_SAMPLE_RATIO`), every process exporting its spans over
OTLP/HTTP to a sink in the bench ({tr["exports"]:,} exports received). Off, tracing creates nothing at all.

| | tracing off | tracing on | on / off | CPU per command off → on | {share} sampled | sampled / off |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""


def levers_section(results: dict[str, Any]) -> str:
    lv = results.get("levers")
    if not lv:
        return "## Levers, A/B in this run\n\nNot measured in this run" + error(results, "levers") + "\n"
    rows = []
    for setting, found in lv.items():
        pairs = zip(found["runs"]["off"], found["runs"]["on"], strict=True)
        for i, (off, on) in enumerate(pairs, start=1):
            api_off, api_on = (run["cpu_ms_per_command"].get("api", 0.0) for run in (off, on))
            all_off, all_on = (sum(run["cpu_ms_per_command"].values()) for run in (off, on))
            rows.append(
                f"| `{setting}` {found['off']:,} → {found['on']:,}, pair {i} | {num(off['commands_per_s'])} | "
                f"{num(on['commands_per_s'])} | {on['commands_per_s'] / off['commands_per_s']:.3f} | "
                f"{api_off:.2f} → {api_on:.2f} ms | {all_off:.2f} → {all_on:.2f} ms |"
            )
    return f"""## Levers, A/B in this run

`bench/levers.py`: deposits at 64 clients with one setting at each value, alternated off, on, off, on on
fresh namespaces (the rest of this file runs with both levers on, the defaults). `lean_routes`: the command
routes' lean path (app/api/lean_routes.py, docs/write-path.md) against FastAPI's own parameter solving;
`gc_young_threshold`: the garbage collector's youngest generation collected after 20,000 net allocations
instead of Python's 700.

| lever | off | on | on / off | API CPU per command | all processes |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""


def streams_section(results: dict[str, Any]) -> str:
    st = results.get("streams")
    if not st:
        return "## Notification streams\n\nNot measured in this run" + error(results, "streams") + "\n"
    base, loaded = st["baseline"], st["loaded"]

    def row(name: str, run: dict[str, Any], latency: dict[str, Any], delivered: Any) -> str:
        own = run["deposit_latency"]
        return (
            f"| {name} | {run['sent']:,} | {delivered:,} | {latency['p50_ms']:.1f} | {latency['p99_ms']:.1f} "
            f"| {latency['max_ms']:.1f} | {own['p50_ms']:.1f} / {own['p99_ms']:.1f} |"
        )

    return f"""## Notification streams

`bench/streams.py`: processor, projector and API as processes; {st["streams"]:,} end users each open an
account with their own token (ES256, verified by the API against a JWKS). The stream generator
(`bench/sse_load.py`, a process of its own on uvloop) holds the streams open on one API process and
sends deposits at {st["rate"]:.0f}/s for {st["duration_s"]:.0f} s, one per account in turn; delivery counts from a
deposit's request being sent to its notification arriving on a stream (the deposit's decision, the
Kafka transaction and the fan-out included). Baseline: one service stream alone, which gets every
notification. Then the same with one stream per user beside it, each getting only its own account's.

| run | deposits | delivered | p50 ms | p99 ms | max ms | the deposits' own p50 / p99 ms |
|---|---:|---:|---:|---:|---:|---:|
{row("one service stream (baseline)", base, base["latency"], base["delivered"])}
{row(f"{st['streams']:,} user streams", loaded, loaded["latency"], loaded["delivered"])}
{row("the service stream beside them", loaded, loaded["service_latency"], loaded["sent"])}

Opening the {st["streams"]:,} streams took {st["open_seconds"]:.1f} s; the API process grew from
{st["api_rss_before_mib"]:.0f} to {st["api_rss_after_mib"]:.0f} MiB:
**{st["bytes_per_stream"] / 1024:.1f} KiB per stream** (resident set, before and after they opened).
The API used {loaded["api_cores"]:.2f} of a core while the
deposits flowed to the {st["streams"]:,} streams (p99 ratio to the baseline:
{ratio(loaded["latency"]["p99_ms"], base["latency"]["p99_ms"])}).
"""


def profile_section(results: dict[str, Any]) -> str:
    prof = (results.get("write_side") or {}).get("eventline", {}).get("profile")
    if not prof:
        return "## Profile\n\nNot taken in this run (py-spy missing or unable to attach).\n"
    parts = [
        f"""## Profile: where the time goes at 64 clients

A separate 64-client run ({num(prof.get("commands_per_s_while_profiled"))} commands/s while sampled)
with `py-spy record --pid <pid> --rate 100 --nonblocking --function` attached to each Eventline
process (`.venv/bin/py-spy`; raw stacks in `.local/bench-logs/profile-*.txt`). Shares are of the
samples in which the process was not idle. On this saturated machine that includes time a thread was
runnable but waiting for a core: those samples pile up where it was preempted, mostly in the socket
write that woke the broker, so `StreamWriter.write` looks far costlier than it is. The on-CPU split
below each process comes from `perf record` (CPU samples only, by shared object) over the same
window and is the one to read for what the CPU does."""
    ]
    for name, summary in prof.items():
        if not isinstance(summary, dict):
            continue
        total = summary["samples"]
        packages = ", ".join(f"{p} {s}%" for p, s in summary["packages"][:8])
        own = "\n".join(f"| {f} | {s}% |" for f, s in summary["self"][:12])
        incl = "\n".join(f"| {f} | {s}% |" for f, s in summary["eventline_inclusive"][:12])
        window = 100 * (results["plan"]["warmup"] + results["plan"]["duration"])
        on_cpu = summary.get("on_cpu")
        split = (
            (
                "On CPU (perf, by shared object): "
                + ", ".join(f"`{dso}` {share:.1f}%" for dso, share in on_cpu[:6])
                + ".\n\n"
            )
            if on_cpu
            else ""
        )
        parts.append(f"""### `{name}` ({total:,} samples: busy about {100 * total / window:.0f}% of the window)

{split}Self time by package (py-spy): {packages}.

| innermost frame (self) | share |
|---|---:|
{own}

| Eventline function on the stack (inclusive) | share |
|---|---:|
{incl}""")
    return "\n\n".join(parts) + "\n"


def error(results: dict[str, Any], key: str) -> str:
    found = results.get("errors", {}).get(key)
    return f" (failed: `{found}`)" if found else ""


def write_markdown(results: dict[str, Any], path: Path) -> None:
    machine, plan = results["machine"], results["plan"]
    quick = " **QUICK run (BENCH_QUICK=1): smaller measurements, not comparable.**" if plan["quick"] else ""
    path.write_text(f"""# Benchmarks

Measured by `make bench` (`python -m bench`, about {results["seconds"] / 60:.0f} minutes), which writes
`bench/results/latest.json` and this file. Last run: {results["when"]} on {machine["cpus"]} CPUs
({machine.get("cpu", "")}, {machine.get("memory", "")}), Python {machine["python"]}, {machine["platform"]},
with Kafka 4.1.1 (single node, KRaft), PostgreSQL 15, every service and the load generator on the
same machine.{quick} These machines are shared and noisy: compare the ratios to the baselines
measured in the same run, not absolute figures across runs.

{figures_table(results)}

Targets are for comparison only; nothing is asserted.

{write_section(results)}
{kafka_section(results)}
{restore_section(results)}
{read_section(results)}
{cluster_section(results)}
{startup_section(results)}
{streams_section(results)}
{privacy_section(results)}
{tracing_section(results)}
{levers_section(results)}
{profile_section(results)}""")
