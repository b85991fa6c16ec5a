"""The GPU half of `latentbench plan` (benchmarks/gpu_check.sh runs it): the paper-scale models of
paper-imagenet.yaml on one GPU, bf16 autocast and torch.compile, timed training steps and MFU.

NOT RUN by the project so far: nobody who wrote it had a GPU. The numbers it prints are the ones
`latentbench plan` projects GPU-hours from (at 40% MFU): run it and compare.

Usage: python benchmarks/gpu_check.py OUT.json [--batch-gen 32] [--batch-tok 16] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentbench.experiment import load_experiment
from latentbench.plan import PlanConfig, experiment_stages

# Dense bf16 peaks (TFLOP/s) by device-name fragment; PEAK_TFLOPS in the environment overrides.
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0, "A10": 125.0}
STAGES = {  # what to time: the stages of paper-imagenet.yaml and their batch option
    "train-gen t2i psvae": "gen",
    "train-gen t2i-qwen psvae": "gen",
    "tokenizer psvae": "tok",
}


def peak_tflops() -> float:
    import os

    if os.environ.get("PEAK_TFLOPS"):
        return float(os.environ["PEAK_TFLOPS"])
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), float("nan"))


def time_stage(stage, batch: int, steps: int, compile_: bool) -> dict:
    device = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.device(device):
        work = stage.build(device, batch)
    if compile_:
        for module in work.modules:
            for child in module.children():
                child.compile()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with FlopCounterMode(display=False) as counter:
            work.run()  # also the compile
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            work.run()
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    flops = counter.get_total_flops()
    return {
        "batch": batch,
        "compile": compile_,
        "seconds_per_step": seconds,
        "images_per_s": batch / seconds,
        "flops_per_step": flops,
        "mfu": flops / seconds / (peak_tflops() * 1e12),
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-gen", type=int, default=32)
    parser.add_argument("--batch-tok", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    exp = load_experiment("paper-imagenet")
    stages = {s.name: s for s in experiment_stages(exp, PlanConfig())}
    result = {
        "device": torch.cuda.get_device_name(),
        "peak_tflops": peak_tflops(),
        "torch": torch.__version__,
        "stages": {},
    }
    for name, kind in STAGES.items():
        batch = args.batch_gen if kind == "gen" else args.batch_tok
        compile_ = not args.no_compile
        try:
            result["stages"][name] = time_stage(stages[name], batch, args.steps, compile_)
        except Exception as e:  # report and go on: one failing model must not hide the others
            result["stages"][name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        print(name, json.dumps(result["stages"][name]), flush=True)
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
