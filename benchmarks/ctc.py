"""CTC loss: ours (asr.losses.CTCLoss over graphs.intersect_dense) vs torch.nn.functional.ctc_loss, in one run.

    python -m benchmarks.ctc [--case a|b|all] [--repeat 10] [--warmup 3] [--threads N] [--device cpu|cuda]

Cases (seeded random logits [B, T, V], targets in 1..V-1, blank 0, every utterance
T frames and U labels; both sides get the same tensors):

  (a) B=16 T=300 V=30 U=60      small vocabulary, long targets: the frame recursion dominates
  (b) B=32 T=150 V=10001 U=40   gtn's CTC benchmark shape: [B, T, V] passes dominate

One timed run of a side is forward + backward from the logits, log_softmax included
on both sides, reduction='mean' (each loss divided by its target length, then
averaged), zero_infinity=False:

  ours:  CTCLoss()(logits.log_softmax(-1), targets, input_lengths, target_lengths).backward()
         (builds the CTC alignment graphs of the batch with graphs.ctc_graph inside)
  torch: F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, input_lengths,
         target_lengths).backward()

Reported per case: the median over --repeat runs after --warmup untimed runs (sides
interleaved run by run, so load on the machine hits both alike), our per-stage
medians (graph building, forward, backward), graphs.ctc_graph timed alone (it is
per batch and included in ours), the loss of each side and the largest gradient
difference (untimed sanity check), peak memory of each side measured in a fresh
subprocess (see `measure_main`), the ratio ours/torch and a PASS/FAIL line for the
target "ours <= 1.5x torch". On CUDA every timed region starts and ends with
torch.cuda.synchronize().
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
from typing import Callable

from benchmarks.measure import fmt_bytes, now, peak_rss_increase, report_measurement, short_error
from benchmarks.measure import measure_in_subprocess as run_measuring_process

TARGET_RATIO = 1.5
CASES = {
    "a": dict(B=16, T=300, V=30, U=60, title="(a) B=16 T=300 V=30 U=60"),
    "b": dict(B=32, T=150, V=10001, U=40, title="(b) B=32 T=150 V=10001 U=40 (gtn's benchmark shape)"),
}
SIDES = ("ours", "torch")


# --------------------------------------------------------------------------- helpers
def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the two sides
def make_inputs(case: dict, device, dtype, seed: int) -> dict:
    """Seeded logits [B, T, V] and padded targets [B, U] (labels 1..V-1), full lengths."""
    import torch

    g = torch.Generator().manual_seed(seed)
    b, t, v, u = case["B"], case["T"], case["V"], case["U"]
    return {
        "logits": torch.randn(b, t, v, generator=g, dtype=dtype).to(device),
        "targets": torch.randint(1, v, (b, u), generator=g).to(device),
        "input_lengths": torch.full((b,), t, dtype=torch.long, device=device),
        "target_lengths": torch.full((b,), u, dtype=torch.long, device=device),
        "device": torch.device(device),
    }


def _timed(inp: dict, loss_of: Callable) -> tuple[dict, tuple]:
    """One forward (`loss_of(logits)`) + backward from fresh logits; (stage seconds, (loss, grad))."""
    device = inp["device"]
    synchronize(device)
    t0 = now()
    x = inp["logits"].detach().requires_grad_(True)
    loss = loss_of(x)
    synchronize(device)
    t1 = now()
    loss.backward()
    synchronize(device)
    t2 = now()
    return {"forward": t1 - t0, "backward": t2 - t1}, (loss.detach(), x.grad)


def run_ours(inp: dict) -> tuple[dict, tuple]:
    from asr.losses import CTCLoss

    loss = CTCLoss(blank=0, reduction="mean")
    return _timed(inp, lambda x: loss(x.log_softmax(-1), inp["targets"], inp["input_lengths"], inp["target_lengths"]))


def run_torch(inp: dict) -> tuple[dict, tuple]:
    import torch.nn.functional as F

    return _timed(inp, lambda x: F.ctc_loss(x.log_softmax(-1).transpose(0, 1), inp["targets"], inp["input_lengths"],
                                            inp["target_lengths"], blank=0, reduction="mean"))


RUNNERS = {"ours": run_ours, "torch": run_torch}


def time_graph_build(inp: dict, repeat: int, warmup: int) -> float:
    """Median seconds of graphs.ctc_graph for the batch's targets (per batch, inside ours)."""
    import graphs

    times = []
    for i in range(warmup + repeat):
        synchronize(inp["device"])
        t0 = now()
        graphs.ctc_graph(inp["targets"], inp["target_lengths"], blank=0, device=inp["device"],
                         dtype=inp["logits"].dtype)
        synchronize(inp["device"])
        if i >= warmup:
            times.append(now() - t0)
    return statistics.median(times)


def time_sides(inp: dict, repeat: int, warmup: int) -> dict:
    """Warm-up, then `repeat` runs of each side, interleaved; per side the median total,
    all totals and per-stage medians (or the error that stopped it)."""
    results = {s: {"status": "ok", "totals": [], "stages": {}} for s in SIDES}
    for i in range(warmup + repeat):
        for side in SIDES:
            r = results[side]
            if r["status"] != "ok":
                continue
            gc.collect()
            try:
                stages, _ = RUNNERS[side](inp)
            except Exception as e:  # report our failure, keep the peer's numbers
                if side != "ours":
                    raise
                results[side] = {"status": "failed", "why": short_error(e)}
                continue
            if i >= warmup:
                r["totals"].append(sum(stages.values()))
                for k, v in stages.items():
                    r["stages"].setdefault(k, []).append(v)
    for r in results.values():
        if r["status"] == "ok":
            r["median"] = statistics.median(r["totals"])
            r["stages"] = {k: statistics.median(v) for k, v in r["stages"].items()}
    return results


def agreement(inp: dict) -> str:
    """Untimed: both losses and the largest difference of the logit gradients."""
    try:
        _, (l_ours, g_ours) = run_ours(inp)
    except Exception as e:
        return f"ours failed ({short_error(e)})"
    _, (l_torch, g_torch) = run_torch(inp)
    diff = float((g_ours - g_torch).abs().max())
    return (f"loss ours {float(l_ours):.6f}, torch {float(l_torch):.6f} (|diff| {abs(float(l_ours - l_torch)):.2e}); "
            f"max |grad diff| {diff:.2e}")


# --------------------------------------------------------------------------- memory
def measure_main(case_key: str, side: str, args) -> None:
    """Run in a fresh process: build the inputs, run the side once untimed (one-time
    initialisation), then measure a second run. CUDA: torch.cuda.max_memory_allocated
    after reset_peak_memory_stats, minus the memory allocated before the run. CPU: peak
    RSS increase over the RSS before the run (/proc/self/clear_refs + VmHWM; falls back to
    getrusage ru_maxrss, which cannot be reset and so reads 0 when an earlier moment
    peaked higher). Prints one JSON line."""
    import torch

    result: dict = {"case": case_key, "side": side}
    try:
        inp = make_inputs(CASES[case_key], args.device, getattr(torch, args.dtype), args.seed)
        RUNNERS[side](inp)
        gc.collect()
        if inp["device"].type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            RUNNERS[side](inp)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            result.update(status="ok", peak_bytes=max(peak - base, 0), method="cuda max_memory_allocated")
        else:
            result.update(status="ok", **peak_rss_increase(lambda: RUNNERS[side](inp)))
    except Exception as e:
        result.update(status="failed", why=short_error(e))
    report_measurement(result)


def measure_in_subprocess(case_key: str, side: str, args) -> dict:
    arguments = ["--measure", case_key, side, "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed)]
    if args.threads:
        arguments += ["--threads", str(args.threads)]
    return run_measuring_process("benchmarks.ctc", arguments, args.measure_timeout)


# --------------------------------------------------------------------------- report
def ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


def run_case(key: str, args) -> str:
    import torch

    case = CASES[key]
    print("=" * 100)
    print(case["title"])
    inp = make_inputs(case, args.device, getattr(torch, args.dtype), args.seed)
    results = time_sides(inp, args.repeat, args.warmup)
    graph_time = time_graph_build(inp, args.repeat, args.warmup)
    mems = {s: None for s in SIDES}
    if not args.no_memory:
        for side in SIDES:
            if results[side]["status"] == "ok":
                mems[side] = measure_in_subprocess(key, side, args)
    print(f"  median of {args.repeat} run(s) after {args.warmup} warm-up, sides interleaved; "
          f"peak = {'CUDA max_memory_allocated' if inp['device'].type == 'cuda' else 'RSS increase'} "
          f"in a fresh process")
    for side in SIDES:
        r, mem = results[side], mems[side]
        if r["status"] != "ok":
            print(f"  {side + ':':7s} failed ({r['why']})")
            continue
        peak = "-" if mem is None else ("+" + fmt_bytes(mem["peak_bytes"]) if mem.get("status") == "ok"
                                        else f"n/a ({mem.get('why')})")
        print(f"  {side + ':':7s} {ms(r['median']):>11s}   forward {ms(r['stages']['forward'])}, "
              f"backward {ms(r['stages']['backward'])}   peak {peak}")
        print("           runs: " + ", ".join(f"{x * 1e3:.1f}" for x in r["totals"]) + " ms")
    print(f"  graphs.ctc_graph alone: {ms(graph_time)} (per batch; part of ours' forward)")
    print(f"  check: {agreement(inp)}")
    ro, rt = results["ours"], results["torch"]
    if ro["status"] != "ok":
        print(f"  target ours <= {TARGET_RATIO:g}x torch: N/A ({ro['why']})")
        return "N/A"
    ratio = ro["median"] / rt["median"]
    print(f"  ratio ours/torch: {ratio:.2f}x time")
    if all(m and m.get("status") == "ok" for m in mems.values()) and mems["torch"]["peak_bytes"] > 0:
        print(f"  ratio ours/torch: {mems['ours']['peak_bytes'] / mems['torch']['peak_bytes']:.2f}x peak memory")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"  target ours <= {TARGET_RATIO:g}x torch: {verdict} ({ratio:.2f}x)")
    return verdict


def environment_line(args) -> str:
    import torch

    parts = [f"python {sys.version.split()[0]}", f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
             f"device {args.device}"]
    if args.device.startswith("cuda"):
        parts.append(torch.cuda.get_device_name(torch.device(args.device)))
    parts += [f"dtype {args.dtype}", f"{os.cpu_count()} CPUs"]
    return ", ".join(parts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ctc", description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=["a", "b", "all"], default="all")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per side; the median is reported (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per side before the timed ones (default 3)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--device", default=None, help="cpu or cuda[:i] (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--measure-timeout", type=int, default=1800, help=argparse.SUPPRESS)
    p.add_argument("--measure", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        measure_main(args.measure[0], args.measure[1], args)
        return
    print("benchmarks.ctc: ours (asr.losses.CTCLoss) vs torch.nn.functional.ctc_loss, forward + backward, "
          "log_softmax included on both sides, reduction='mean'")
    print("  " + environment_line(args))
    for key in (["a", "b"] if args.case == "all" else [args.case]):
        run_case(key, args)


if __name__ == "__main__":
    main()
