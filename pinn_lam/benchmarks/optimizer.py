"""``pinn-lam bench optimizer``: time ``optimizer.step()`` for LAM's paths against torch's optimizers.

Every optimizer gets its own copy of the same parameters and gradients (float32, ``--params``
numbers split into ``--tensors`` tensors), takes two untimed steps (state allocation), and is
then timed once per round, round after round, so that a slow spell on a shared machine hits all
of them alike; the table shows the median. Memory traffic counts the bytes an optimizer must
read and write per step (e.g. LAM reads g, v, w and writes v, w: 5 x 4 bytes per parameter) and
is compared with a ``copy_`` of a buffer of the same size timed in the same rounds.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from pinn_lam.machine import cpu_model

from pinn_lam.optim.lam import LAM, default_implementation

HELP = "time optimizer.step() of LAM (each path) against RMSprop and Adam on ~10 M float32 parameters"
DESCRIPTION = ("Time optimizer.step() of LAM (single-tensor, foreach, fused, default, layer-wise) against "
               "torch.optim.RMSprop and Adam in one process: each optimizer steps its own copy of the same "
               "parameters and gradients once per round, rounds interleaved; the table shows median ms, the "
               "ratio to RMSprop(foreach=True), and the memory traffic each step must move against a copy_ "
               "of a buffer of the same size timed in the same rounds.")

#: (factory, tensors read + written per parameter per step)
Case = tuple[Callable[[list[torch.Tensor]], torch.optim.Optimizer], int]


def cases(device: torch.device) -> dict[str, Case]:
    """The optimizers to time (each torch fused kernel is tried; one the device lacks is skipped)."""
    return {
        "LAM single-tensor": (lambda p: LAM(p, foreach=False), 5),
        "LAM foreach": (lambda p: LAM(p, foreach=True), 5),
        "LAM fused": (lambda p: LAM(p, fused=True), 5),
        "LAM default": (lambda p: LAM(p), 5),
        # layer-wise: one pass reads g for mean(g^2), a second reads g and w and writes w
        "LAM layerwise single-tensor": (lambda p: LAM(p, layerwise=True, foreach=False), 4),
        "LAM layerwise foreach": (lambda p: LAM(p, layerwise=True, foreach=True), 4),
        "LAM layerwise default": (lambda p: LAM(p, layerwise=True), 4),
        "RMSprop foreach": (lambda p: torch.optim.RMSprop(p, foreach=True), 5),
        "RMSprop for-loop": (lambda p: torch.optim.RMSprop(p, foreach=False), 5),
        "Adam foreach": (lambda p: torch.optim.Adam(p, foreach=True), 7),
        "Adam fused": (lambda p: torch.optim.Adam(p, fused=True), 7),
    }


def _tensor_sizes(n_params: int, n_tensors: int) -> list[int]:
    base, extra = divmod(n_params, n_tensors)
    return [base + (i < extra) for i in range(n_tensors)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(n_params: int = 10_000_000, n_tensors: int = 20, repeats: int = 15,
            device: str | torch.device = "cpu", seed: int = 0) -> dict:
    """Median step time of each optimizer, and the copy bandwidth, all measured in one process.

    Returns ``{"rows": [{"name", "ms", "best_ms", "bytes", "gbps", "state_mb"}...], "copy_gbps": float,
    "max_lam_difference": float}``; the last is the largest difference between the parameters
    two paths of the same LAM mode produced (they take the same steps from the same start).
    """
    if n_params < n_tensors or n_tensors < 1 or repeats < 1:
        raise ValueError(f"need params >= tensors >= 1 and repeats >= 1 (got {n_params}, {n_tensors}, {repeats})")
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    sizes = _tensor_sizes(n_params, n_tensors)
    start = [torch.randn(n, generator=generator, device=device) for n in sizes]
    grads = [torch.randn(n, generator=generator, device=device) for n in sizes]
    optimizers, traffic = {}, {}
    for name, (factory, accesses) in cases(device).items():
        params = [w.clone().requires_grad_() for w in start]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        try:
            optimizers[name] = factory(params)
            for _ in range(2):
                optimizers[name].step()
        except (RuntimeError, ValueError) as error:  # e.g. a fused kernel this torch lacks on the device
            print(f"skipping {name}: {str(error).splitlines()[0]}")
            optimizers.pop(name, None)
            continue
        traffic[name] = accesses * n_params * 4
    source = torch.randn(n_params, generator=generator, device=device)
    target = torch.empty_like(source)
    steps = {name: optimizer.step for name, optimizer in optimizers.items()}
    steps["copy_"] = lambda: target.copy_(source)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _synchronize(device)
            begin = time.perf_counter()
            step()
            _synchronize(device)
            times[name].append(time.perf_counter() - begin)
    medians = {name: statistics.median(values) for name, values in times.items()}
    rows = []
    for name, optimizer in optimizers.items():
        state_bytes = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                          for key, t in s.items() if torch.is_tensor(t) and key != "step")
        rows.append({"name": name, "ms": 1e3 * medians[name], "best_ms": 1e3 * min(times[name]), "bytes": traffic[name],
                     "gbps": traffic[name] / medians[name] / 1e9, "state_mb": state_bytes / 2**20})
    difference = 0.0
    for mode in ("LAM ", "LAM layerwise "):
        results = [[p.detach() for p in optimizers[n].param_groups[0]["params"]] for n in optimizers
                   if n.startswith(mode) and ("layerwise" in n) == ("layerwise" in mode)]
        difference = max([difference] + [float((a - b).abs().max()) for other in results[1:]
                                         for a, b in zip(results[0], other)])
    return {"rows": rows, "copy_gbps": 2 * source.numel() * 4 / medians["copy_"] / 1e9,
            "copy_ms": 1e3 * medians["copy_"], "max_lam_difference": difference}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = cpu_model()
    threads = torch.get_num_threads()
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}"


def format_table(result: dict, reference: str = "RMSprop foreach") -> str:
    by_name = {row["name"]: row for row in result["rows"]}
    base = by_name.get(reference, result["rows"][0])
    lines = [f"| optimizer | median ms/step | vs {base['name']} | best ms | GB/s moved | % of copy | state MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['name']} | {row['ms']:.2f} | {row['ms'] / base['ms']:.2f} | {row['best_ms']:.2f} "
                     f"| {row['gbps']:.1f} | {100 * row['gbps'] / result['copy_gbps']:.0f}% | {row['state_mb']:.1f} |")
    lines.append(f"| copy_ of a buffer of the same size | {result['copy_ms']:.2f} | | | {result['copy_gbps']:.1f} "
                 "| 100% | |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=int, default=10_000_000, help="number of float32 parameters")
    parser.add_argument("--tensors", type=int, default=20, help="number of tensors they are split into")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (each times every optimizer once)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's own choice)")


def run(args: argparse.Namespace) -> int:
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ValueError(f"--device {args.device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1 (got {threads})")
        torch.set_num_threads(threads)  # this process is the benchmark: nothing else shares the setting
    result = measure(args.params, args.tensors, args.repeats, device)
    sample = [torch.empty(args.params // args.tensors, device=device)]
    print(f"optimizer.step() on {args.params:,} float32 parameters in {args.tensors} tensors, {device.type}: "
          f"{machine(device)}; torch {torch.__version__}; median of {args.repeats} interleaved rounds")
    print(f"LAM default path here: {default_implementation(sample)}; "
          f"largest difference between LAM paths of one mode: {result['max_lam_difference']:.1e}\n")
    print(format_table(result))
    return 0
