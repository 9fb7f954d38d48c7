"""Our graph operations vs OpenFst (pywrapfst from pynini), measured in one run on CPU.

    python -m benchmarks.graph_ops [--case a|b|all] [--repeat N] [--words 5000] [--frames 1000]

Cases (inputs from benchmarks/inputs.py, seeded NumPy arrays; both sides get the
same arrays, construction and arc sorting are outside the timed region):

  (a) lexicon o grammar, then connect.
      L: a 5,000-word lexicon closure (letters -> words, word label on the first
      arc, EPSILON outputs after it, every word returns to node 0 = start = accept).
      G: a back-off bigram acceptor (~100,000 bigram arcs, an EPSILON back-off arc
      from every history state to the unigram state, unigram arcs out of it; the
      unigram state is the start, every state accepts).
      ours:    graphs.connect(graphs.compose(L, G))
      OpenFst: pywrapfst.compose(L, G, connect=False).connect()

  (b) dense emissions o CTC alignment graph, then forward score with gradient.
      E: 1,000 frames x 30 labels linear-chain acceptor, log-softmax weights.
      C: CTC graph of a 100-label target (2U+1 states, start {0,1}, accept last two).
      ours:    s = graphs.forward_score(graphs.compose(E, C)); s.backward()
               (gradient w.r.t. E's weights)
      OpenFst: c = pywrapfst.compose(E, C, connect=False);
               shortestdistance(c) and shortestdistance(c, reverse=True) in the
               log semiring (alpha and beta: what arc posteriors / the gradient need).
      OpenFst* (extra line, C++-only analogue): pywrapfst.shortestdistance spends
               most of its time wrapping each state's distance in a Python Weight
               (~1.5-2 us per state, ~0.3 s of its ~0.35 s here), so the same C++
               ShortestDistance is also timed inside push(to_final) + push(to_initial)
               (which add one reweight pass over the arcs: an upper bound).

Reported per case: median seconds over --repeat runs for each side (and per-stage
medians), ratio ours/OpenFst, output sizes of both, peak memory of each side
measured in a fresh subprocess (peak RSS increase over the RSS after the inputs
are built; see `measure_main`), and a PASS/FAIL line for the target
"ours <= 3x OpenFst". A function missing from `graphs` is reported as
"ours: not available (graphs.X missing)"; an exception in our code as
"ours: failed (...)". Neither stops the OpenFst side or the other case.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

from benchmarks import inputs as bi
from benchmarks.measure import fmt_bytes, now, peak_rss_increase, report_measurement, short_error
from benchmarks.measure import measure_in_subprocess as run_measuring_process

TARGET_RATIO = 3.0


# --------------------------------------------------------------------------- helpers
class Unavailable(Exception):
    """Our side cannot run: a `graphs` function is missing."""


def ours_fn(name: str):
    """`graphs.<name>`, or raise Unavailable."""
    import graphs

    fn = getattr(graphs, name, None)
    if fn is None:
        raise Unavailable(f"graphs.{name} missing")
    return fn


def ours_missing(names) -> list[str]:
    import graphs

    return [n for n in names if not hasattr(graphs, n)]


def ours_arc_sort(g, olabel: bool, notes: list):
    """Best-effort `graphs.arc_sort` (signature not fixed yet). The arrays are
    already sorted the way OpenFst wants, so skipping it changes no arc order."""
    import graphs

    fn = getattr(graphs, "arc_sort", None)
    if fn is None:
        notes.append("graphs.arc_sort missing: arrays pre-sorted instead")
        return g
    attempts = [((g,), {"by": "olabel"}), ((g,), {"olabel": True})] if olabel else [((g,), {})]
    for args, kwargs in attempts:
        try:
            out = fn(*args, **kwargs)
            notes.append(f"graphs.arc_sort({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
            return g if out is None else out
        except (TypeError, ValueError):
            continue
    notes.append("graphs.arc_sort has no olabel option: arrays pre-sorted instead")
    return g












def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


# --------------------------------------------------------------------------- case specs
@dataclass
class Side:
    """One side of a case: `prepare(inputs)` builds the side's graphs (untimed);
    `run(prepared)` does the timed work and returns (stage seconds, output);
    `describe(output)` returns sizes/checks (untimed)."""

    prepare: Callable
    run: Callable
    describe: Callable
    needs: tuple = ()  # graphs functions this side calls


@dataclass
class Case:
    key: str
    title: str
    build: Callable  # args -> dict of ArcArrays
    ours: Side
    openfst: Side  # the comparison the target is judged on
    extra: dict = field(default_factory=dict)  # side name -> (label, Side): further OpenFst variants
    notes: list = field(default_factory=list)


# ---- case (a): lexicon o grammar, connect
def build_a(args) -> dict:
    L = bi.lexicon_arrays(num_words=args.words, seed=args.seed).sort_arcs("olabel")
    G = bi.bigram_arrays(num_words=args.words, num_bigrams=args.bigrams, seed=args.seed + 1)  # ilabel-sorted
    return {"L": L, "G": G}


def prepare_ours_a(inp: dict):
    notes: list = []
    gL = ours_arc_sort(bi.to_graph(inp["L"]), olabel=True, notes=notes)
    gG = ours_arc_sort(bi.to_graph(inp["G"]), olabel=False, notes=notes)
    return {"L": gL, "G": gG, "notes": notes}


def run_ours_a(p):
    compose, connect = ours_fn("compose"), ours_fn("connect")
    t0 = now()
    c = compose(p["L"], p["G"])
    t1 = now()
    out = connect(c)
    t2 = now()
    return {"compose": t1 - t0, "connect": t2 - t1}, out


def describe_ours(out, extra=None) -> dict:
    d = {"nodes": int(out.num_nodes), "arcs": int(out.num_arcs)}
    if extra:
        d.update(extra)
    return d


def prepare_openfst_a(inp: dict):
    fL = bi.to_openfst(inp["L"], "log").arcsort(sort_type="olabel")
    fG = bi.to_openfst(inp["G"], "log").arcsort(sort_type="ilabel")
    return {"L": fL, "G": fG, "notes": ["L arcsort olabel, G arcsort ilabel"]}


def run_openfst_a(p):
    import pywrapfst as fst

    t0 = now()
    c = fst.compose(p["L"], p["G"], connect=False)
    t1 = now()
    c.connect()
    t2 = now()
    return {"compose": t1 - t0, "connect": t2 - t1}, c


def describe_openfst(out, extra=None) -> dict:
    states, arcs = bi.openfst_size(out)
    d = {"nodes": states, "arcs": arcs}
    if extra:
        d.update(extra)
    return d


# ---- case (b): emissions o CTC, forward score + backward
def build_b(args) -> dict:
    E = bi.dense_emission_arrays(num_frames=args.frames, num_labels=args.labels, seed=args.seed + 2)
    target = bi.random_target(length=args.target, num_labels=args.labels, seed=args.seed + 3)
    C = bi.ctc_arrays(target)  # sorted by (src, label)
    return {"E": E, "C": C}


def prepare_ours_b(inp: dict):
    notes: list = []
    gE = ours_arc_sort(bi.to_graph(inp["E"]), olabel=True, notes=notes)
    gC = ours_arc_sort(bi.to_graph(inp["C"]), olabel=False, notes=notes)
    # The leaf whose gradient we want: the (sorted) emission graph's weights. Made a
    # fresh leaf after arc_sort so no autograd node is shared between timed runs.
    gE = gE.detach()
    leaf = gE.weight.requires_grad_(True)
    return {"E": gE, "C": gC, "notes": notes, "leaf": leaf, "frames": inp["E"].num_nodes - 1}


def run_ours_b(p):
    compose, forward_score = ours_fn("compose"), ours_fn("forward_score")
    leaf = p["leaf"]
    leaf.grad = None
    t0 = now()
    c = compose(p["E"], p["C"])
    t1 = now()
    score = forward_score(c)
    t2 = now()
    score.sum().backward()
    t3 = now()
    return {"compose": t1 - t0, "forward": t2 - t1, "backward": t3 - t2}, (c, score, leaf, p["frames"])


def describe_ours_b(out) -> dict:
    c, score, leaf, frames = out
    extra = {"score": float(score.detach().sum())}
    if leaf.grad is not None:
        # arc posteriors of one frame sum to 1, so the gradient sums to the number of frames
        extra["grad_sum"] = f"{float(leaf.grad.sum()):.6g} (expect {frames})"
    else:
        extra["grad_sum"] = "no gradient reached the emission weights"
    return describe_ours(c, extra)


def prepare_openfst_b(inp: dict):
    fE = bi.to_openfst(inp["E"], "log").arcsort(sort_type="olabel")
    fC = bi.to_openfst(inp["C"], "log").arcsort(sort_type="ilabel")
    return {"E": fE, "C": fC, "notes": ["E arcsort olabel, C arcsort ilabel; log semiring; compose connect=False"]}


def run_openfst_b(p):
    import pywrapfst as fst

    t0 = now()
    c = fst.compose(p["E"], p["C"], connect=False)
    t1 = now()
    alpha = fst.shortestdistance(c)
    t2 = now()
    beta = fst.shortestdistance(c, reverse=True)
    t3 = now()
    return {"compose": t1 - t0, "shortestdistance": t2 - t1, "shortestdistance_reverse": t3 - t2}, (c, alpha, beta)


def describe_openfst_b(out) -> dict:
    c, alpha, beta = out
    start = c.start()
    text = beta[start].to_string() if beta and start >= 0 else "Infinity"
    score = float("-inf") if text in ("Infinity", "inf") else -float(text)
    trimmed = c.copy().connect()
    t_states, t_arcs = bi.openfst_size(trimmed)
    return describe_openfst(c, {"score": score, "trimmed": (t_states, t_arcs)})


def run_openfst_push_b(p):
    """C++-only analogue: pywrapfst.shortestdistance spends most of its time turning
    each state's distance into a Python Weight object (~1.5-2 us per state, measured
    on a chain FST), so this variant runs the same C++ ShortestDistance inside
    push(): push to_final = forward distances + reweight of every arc, push
    to_initial = reverse distances + reweight. An upper bound on the C++ work."""
    import pywrapfst as fst

    t0 = now()
    c = fst.compose(p["E"], p["C"], connect=False)
    t1 = now()
    fwd = fst.push(c, push_weights=True, reweight_type="to_final")
    t2 = now()
    bwd = fst.push(c, push_weights=True, reweight_type="to_initial")
    t3 = now()
    return {"compose": t1 - t0, "push_to_final": t2 - t1, "push_to_initial": t3 - t2}, (c, fwd, bwd)


def describe_openfst_push_b(out) -> dict:
    c, fwd, bwd = out
    return describe_openfst(c)


CASES = {
    "a": Case(
        key="a",
        title="(a) lexicon o back-off bigram grammar, then connect",
        build=build_a,
        ours=Side(prepare_ours_a, run_ours_a, describe_ours, needs=("compose", "connect")),
        openfst=Side(prepare_openfst_a, run_openfst_a, describe_openfst),
    ),
    "b": Case(
        key="b",
        title="(b) dense emissions o CTC graph, forward score + backward (log semiring)",
        build=build_b,
        ours=Side(prepare_ours_b, run_ours_b, describe_ours_b, needs=("compose", "forward_score")),
        openfst=Side(prepare_openfst_b, run_openfst_b, describe_openfst_b),
        extra={"openfst_push": ("OpenFst*:", Side(prepare_openfst_b, run_openfst_push_b, describe_openfst_push_b))},
        notes=[
            "OpenFst output has 1 extra state and 2 extra arcs: a super-start with epsilon arcs to the CTC graph's 2 starts",
            "OpenFst* = compose + push(to_final) + push(to_initial): the same C++ ShortestDistance without "
            "pywrapfst's per-state Python Weight conversion (which dominates shortestdistance's time here)",
        ],
    ),
}


def side_of(case: Case, name: str) -> Side:
    if name == "ours":
        return case.ours
    if name == "openfst":
        return case.openfst
    return case.extra[name][1]


def side_names(case: Case) -> list[str]:
    return ["ours", "openfst", *case.extra]


# --------------------------------------------------------------------------- timing
def time_side(case: Case, side_name: str, inp: dict, repeat: int, warmup: int) -> dict:
    """Prepare once, run warmup + repeat times; median of the total and of each stage."""
    side = side_of(case, side_name)
    try:
        missing = ours_missing(side.needs) if side_name == "ours" else []
        if missing:
            return {"status": "unavailable", "why": f"graphs.{missing[0]} missing"}
        prepared = side.prepare(inp)
        totals, stages, out = [], {}, None
        for i in range(warmup + repeat):
            out = None
            gc.collect()
            st, out = side.run(prepared)
            if i >= warmup:
                totals.append(sum(st.values()))
                for k, v in st.items():
                    stages.setdefault(k, []).append(v)
        info = side.describe(out)
    except Unavailable as e:
        return {"status": "unavailable", "why": str(e)}
    except Exception as e:  # our library is being written: report, don't crash
        if side_name != "ours":
            raise
        return {"status": "failed", "why": short_error(e)}
    return {
        "status": "ok",
        "median": statistics.median(totals),
        "runs": totals,
        "stages": {k: statistics.median(v) for k, v in stages.items()},
        "notes": prepared.get("notes", []),
        **info,
    }


# --------------------------------------------------------------------------- memory
def measure_main(case_key: str, side_name: str, args) -> None:
    """Run in a fresh process: build inputs and the side's graphs, then reset the
    peak-RSS counter and run the side once; print the peak RSS increase (bytes).
    Uses /proc/self/clear_refs + VmHWM; falls back to getrusage ru_maxrss (which
    cannot be reset, so it reads 0 when building the inputs peaked higher)."""
    case = CASES[case_key]
    side = side_of(case, side_name)
    result: dict = {"case": case_key, "side": side_name}
    try:
        missing = ours_missing(side.needs) if side_name == "ours" else []
        if missing:
            raise Unavailable(f"graphs.{missing[0]} missing")
        inp = case.build(args)
        prepared = side.prepare(inp)
        gc.collect()
        result.update(status="ok", **peak_rss_increase(lambda: side.run(prepared)))
    except Unavailable as e:
        result.update(status="unavailable", why=str(e))
    except Exception as e:
        result.update(status="failed", why=short_error(e))
    report_measurement(result)


def measure_in_subprocess(case_key: str, side_name: str, args) -> dict:
    arguments = ["--measure", case_key, side_name, "--words", str(args.words), "--bigrams", str(args.bigrams),
                 "--frames", str(args.frames), "--labels", str(args.labels), "--target", str(args.target),
                 "--seed", str(args.seed)]
    if args.threads:
        arguments += ["--threads", str(args.threads)]
    return run_measuring_process("benchmarks.graph_ops", arguments, args.measure_timeout)


# --------------------------------------------------------------------------- report
def input_summary(inp: dict) -> str:
    return "; ".join(f"{k}: {a.num_nodes:,} nodes / {a.num_arcs:,} arcs" for k, a in inp.items())


def mem_ok(mem: dict | None) -> bool:
    return bool(mem) and mem.get("status") == "ok"


def side_line(name: str, r: dict, mem: dict | None) -> list[str]:
    if r["status"] != "ok":
        word = "not available" if r["status"] == "unavailable" else "failed"
        return [f"  {name:9s} {word} ({r['why']})"]
    if mem is None:
        peak = "-"
    elif mem_ok(mem):
        peak = "+" + fmt_bytes(mem["peak_bytes"])
    else:
        peak = f"n/a ({mem.get('why', mem.get('status'))})"
    lines = [
        f"  {name:9s} {fmt_s(r['median']):>9s} s   out {r['nodes']:>9,} nodes {r['arcs']:>10,} arcs   peak {peak}",
        "            stages: " + ", ".join(f"{k} {v:.4f}" for k, v in r["stages"].items())
        + "   runs: " + ", ".join(f"{x:.4f}" for x in r["runs"]),
    ]
    extra = []
    for k in ("score", "grad_sum", "trimmed"):
        if k in r:
            v = r[k]
            if isinstance(v, float):
                v = f"{v:.6g}"
            elif isinstance(v, tuple):
                v = f"{v[0]:,} nodes / {v[1]:,} arcs after connect (untimed)"
            extra.append(f"{k} {v}")
    if extra:
        lines.append("            " + "; ".join(extra))
    if r.get("notes"):
        lines.append("            notes: " + "; ".join(r["notes"]))
    return lines


def size_comparison(ours: dict, other: dict) -> str:
    o, f = (ours["nodes"], ours["arcs"]), (other["nodes"], other["arcs"])
    if o == f:
        return f"sizes agree: {o[0]:,} nodes / {o[1]:,} arcs"
    text = (f"sizes differ: ours {o[0]:,}/{o[1]:,}, OpenFst {f[0]:,}/{f[1]:,} nodes/arcs "
            f"(ours {o[0] - f[0]:+,} nodes, {o[1] - f[1]:+,} arcs)")
    if "trimmed" in other:
        t = other["trimmed"]
        text += f"; OpenFst after connect {t[0]:,}/{t[1]:,} (ours {o[0] - t[0]:+,}, {o[1] - t[1]:+,})"
    return text


def run_case(case: Case, args) -> dict:
    print("=" * 100)
    print(case.title)
    t = now()
    inp = case.build(args)
    print(f"  inputs ({now() - t:.2f}s to build, not timed): {input_summary(inp)}")
    names = side_names(case)
    labels = {"ours": "ours:", "openfst": "OpenFst:", **{k: v[0] for k, v in case.extra.items()}}
    results = {name: time_side(case, name, inp, args.repeat, args.warmup) for name in names}
    mems = {name: None for name in names}
    if not args.no_memory:
        for name in names:
            if results[name]["status"] == "ok":
                mems[name] = measure_in_subprocess(case.key, name, args)
    print(f"  {'side':9s} {'median':>9s}     (median of {args.repeat} run(s) after {args.warmup} warmup; "
          f"peak = RSS increase in a fresh process)")
    for name in names:
        for line in side_line(labels[name], results[name], mems[name]):
            print(line)
    for note in case.notes:
        print(f"  note: {note}")
    ro = results["ours"]
    if case.key == "a":
        q1, q2 = inp["L"].num_nodes, inp["G"].num_nodes
        est = 3 * q1 * q2 * 4
        ours_peak = "+" + fmt_bytes(mems["ours"]["peak_bytes"]) if mem_ok(mems["ours"]) else "n/a"
        print(f"  gtn compose state slots (ESTIMATE, not measured): 3*|Q1|*|Q2|*4 B = 3*{q1:,}*{q2:,}*4 = "
              f"{fmt_bytes(est)}   vs ours measured peak {ours_peak}")
    verdicts = {}
    for name in names[1:]:
        rf = results[name]
        label = labels[name].rstrip(":")
        if ro["status"] == "ok" and rf["status"] == "ok":
            ratio = ro["median"] / rf["median"] if rf["median"] > 0 else float("inf")
            print(f"  ratio ours/{label}: {ratio:.2f}x time   ({size_comparison(ro, rf)})")
            if mem_ok(mems["ours"]) and mem_ok(mems[name]) and mems[name]["peak_bytes"] > 0:
                print(f"  ratio ours/{label}: {mems['ours']['peak_bytes'] / mems[name]['peak_bytes']:.2f}x peak memory")
            verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
            print(f"  target ours <= {TARGET_RATIO:g}x {label}: {verdict} ({ratio:.2f}x)")
        else:
            why = ro.get("why") if ro["status"] != "ok" else rf.get("why")
            verdict = "N/A"
            print(f"  target ours <= {TARGET_RATIO:g}x {label}: N/A ({why})")
        verdicts[name] = verdict
    return verdicts


def environment_line(args) -> str:
    import importlib.metadata as md

    parts = [f"python {sys.version.split()[0]}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except Exception as e:  # pragma: no cover
        parts.append(f"torch unavailable ({e})")
    try:
        parts.append(f"pynini {md.version('pynini')}")
    except md.PackageNotFoundError:
        parts.append("pynini ?")
    parts.append(f"{os.cpu_count()} CPUs")
    return ", ".join(parts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.graph_ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=["a", "b", "all"], default="all")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per side; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs before the timed ones (default 0)")
    p.add_argument("--words", type=int, default=5000, help="case (a): lexicon / grammar vocabulary size")
    p.add_argument("--bigrams", type=int, default=100_000, help="case (a): number of seen bigrams")
    p.add_argument("--frames", type=int, default=1000, help="case (b): number of frames")
    p.add_argument("--labels", type=int, default=30, help="case (b): emission labels incl. blank 0")
    p.add_argument("--target", type=int, default=100, help="case (b): target length U")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--measure-timeout", type=int, default=1800, help=argparse.SUPPRESS)
    p.add_argument("--measure", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.measure:
        case_key, side_name = args.measure
        measure_main(case_key, side_name, args)
        return
    print("benchmarks.graph_ops: ours (graphs) vs OpenFst (pywrapfst), CPU")
    print("  " + environment_line(args))
    print("  peak memory: fresh subprocess per side, peak RSS increase over the RSS after inputs are built")
    for key in (["a", "b"] if args.case == "all" else [args.case]):
        run_case(CASES[key], args)


if __name__ == "__main__":
    main()
