#!/usr/bin/python3
"""The Python reference for the throughput table: torchvision's ResNet-18 run
in-process by Debian's python3-torch, as a user would in a notebook, eager and
frozen (torch.jit.freeze + optimize_for_inference), at batch 1 and 8, with 1 thread
and with every CPU. Prints one JSON object per setting, images per second over the
measured time (after a warm-up), for run_benchmarks.sh.

Usage: /usr/bin/python3 bench/python_reference.py [SECONDS]
"""
import json
import os
import sys
import time

import torch
import torchvision


def images_per_second(model, batch, seconds):
    inputs = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        stop = time.perf_counter() + 1
        while time.perf_counter() < stop:
            model(inputs)
        images, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(inputs)
            images += batch
        return images / (time.perf_counter() - start)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(0)
    eager = torchvision.models.resnet18().eval()
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(eager)))
    cpus = len(os.sched_getaffinity(0))
    for name, model in (("eager", eager), ("frozen", frozen)):
        for threads in sorted({1, cpus}):
            torch.set_num_threads(threads)
            for batch in (1, 8):
                print(json.dumps({"python": name, "threads": threads, "batch": batch,
                                  "images_per_second": round(
                                      images_per_second(model, batch, seconds), 2)}),
                      flush=True)


if __name__ == "__main__":
    main()
