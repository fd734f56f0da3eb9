#!/usr/bin/python3
"""Which transfer-learning procedure to choose, measured on real digits.

Pretrains the bundled digits architecture (models/train_digits.py's Backbone) on
opencv-doc's digits 0-4, serves it from a fresh model store beside an untrained copy,
then transfers to the digits 5-9 with N labelled images per class (N = 5, 20, 100,
400, drawn from the first 400 of each class) and scores each result on the last 100
of each class (500 test digits never trained on). Four procedures run through the
real server, each beside the same procedure in PyTorch:
  (a) FitHead: frozen backbone, a new output layer (logistic regression to
      convergence); the reference fits the server's objective and penalty in PyTorch
      on the same features (bench/fit_head_reference.py's fit);
  (b) fine-tune the last block (features.7, the embedding layer) with a new output
      layer: a StartFineTune job; the reference is the same loop in PyTorch;
  (c) the same network trained from scratch (every layer, from random weights);
  (d) fine-tune everything (every layer, from the pretrained weights).
Jobs and references share the settings: Adam, learning rate 0.001, batch 32, the
epochs below, nothing held out. Accuracy is the mean and standard deviation over 3
seeds; times are wall seconds per run (the server's job time; for FitHead, embedding
and fit).

Usage: PYTHONPATH=client/python /usr/bin/python3 bench/transfer_comparison.py \\
           [build/server/headway_server]
Prints a Markdown table (the README's) and, for FitHead on 500 examples (N = 100),
its time next to Python's.
"""
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "bench"))
from fit_head_reference import reference_fit, start_server  # noqa: E402
from train_digits import Backbone, load_cells  # noqa: E402

from headway_client import HeadwayClient  # noqa: E402
from headway_client._proto.headway.v1 import management_pb2  # noqa: E402

SIZES = (5, 20, 100, 400)
SEEDS = (1, 2, 3)
EPOCHS = {5: 60, 20: 30, 100: 15, 400: 8}
BATCH = 32
LEARNING_RATE = 0.001
MEAN, STD = 0.1327, 0.291
CLASSES = [str(d) for d in range(5, 10)]
PRETRAIN_SEED = 20261201
CONFIG = """name: "{name}"
version: 1
device: "cpu"
backbone {{ file: "backbone.pt" format: TORCHSCRIPT }}
input {{ channels: 1 height: 20 width: 20 resize: STRETCH mean: {mean} std: {std} }}
"""


def normalised(pixels):
    return (torch.tensor(np.stack(pixels), dtype=torch.float32).unsqueeze(1) / 255.0
            - MEAN) / STD


def pretrain(cells, labels):
    """The backbone trained on the digits 0-4 (with a 5-class layer, dropped)."""
    torch.manual_seed(PRETRAIN_SEED)
    rows = np.flatnonzero(labels < 5)
    x, y = normalised(cells[rows]), torch.tensor(labels[rows])
    backbone, head = Backbone(), nn.Linear(64, 5)
    optimizer = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()),
                                 lr=LEARNING_RATE)
    for _ in range(8):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(head(backbone(x[batch])), y[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (head(backbone(x)).argmax(1) == y).float().mean().item()
    print(f"pretrained on digits 0-4: train accuracy {accuracy:.4f}", file=sys.stderr)
    return backbone.eval()


def write_model(store, name, backbone):
    folder = store / name
    folder.mkdir(parents=True)
    torch.jit.save(torch.jit.script(backbone), str(folder / "backbone.pt"))
    (folder / "config.pbtxt").write_text(CONFIG.format(name=name, mean=MEAN, std=STD))


def server_accuracy(client, model, head, test_pixels, test_labels):
    predicted = []
    for start in range(0, len(test_pixels), 50):
        result = client.classify(model, np.stack(test_pixels[start:start + 50]),
                                 head=head, top_k=1)
        predicted += [r.labels[0].label for r in result.results]
    return float(np.mean(np.array(predicted) == np.array(test_labels)))


def reference_train(backbone_file, train_all, x, y, seed, epochs):
    """The server's fine-tuning loop in PyTorch: the backbone from the same file, a new
    nn.Linear, Adam; features.7 and the new layer train unless `train_all`."""
    torch.manual_seed(seed)
    backbone = torch.jit.load(str(backbone_file))
    head = nn.Linear(64, len(CLASSES))
    trained = []
    for name, parameter in backbone.named_parameters():
        parameter.requires_grad_(train_all or name.startswith("features.7."))
        if parameter.requires_grad:
            trained.append(parameter)
    optimizer = torch.optim.Adam(trained + list(head.parameters()), lr=LEARNING_RATE)
    backbone.train()
    began = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            nn.functional.cross_entropy(head(backbone(x[batch])), y[batch]).backward()
            optimizer.step()
    backbone.eval()
    return (lambda test: (head(backbone(test)).argmax(1)).numpy(),
            time.perf_counter() - began)


def fine_tune(client, model, pixels, labels, n, seed, train_all):
    output = f"{model}-{'all' if train_all else 'last'}-{n}-{seed}"
    job = client.fine_tune(
        model, pixels, labels, classes=CLASSES, train_layers=[] if train_all else
        ["features.7"], train_all=train_all, optimizer="adam", learning_rate=LEARNING_RATE,
        epochs=EPOCHS[n], batch_size=BATCH, seed=seed, validation_fraction=-1,
        output_model=output, head="digit", serve=True)
    final = list(client.watch_job(job.id))[-1]
    if final.state != final.SUCCEEDED:
        sys.exit(f"job {job.id} ended {final.state}: {final.error}")
    return output, final.elapsed_seconds


def cell(mean_std):
    return f"{statistics.mean(mean_std):.3f} ± {statistics.pstdev(mean_std):.3f}"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/server/headway_server")
    torch.set_num_threads(1)  # the server's jobs train on one thread (--fine_tune_threads)
    cells, labels = load_cells()
    work = pathlib.Path(tempfile.mkdtemp(prefix="headway-transfer-"))
    store = work / "store"
    write_model(store, "pretrained", pretrain(cells, labels))
    torch.manual_seed(PRETRAIN_SEED + 1)
    write_model(store, "scratch", Backbone().eval())
    test_rows = [d * 500 + i for d in range(5, 10) for i in range(400, 500)]
    test_pixels = [cells[r] for r in test_rows]
    test_labels = [str(labels[r]) for r in test_rows]
    test_x = normalised(test_pixels)
    test_y = np.array([labels[r] - 5 for r in test_rows])
    process, target = start_server(binary, work, store, token="comparison-token",
                                   flags=("--store_poll_interval=0",))
    try:
        client = HeadwayClient(target, timeout=600, admin_token="comparison-token")
        model_info = open("/proc/cpuinfo").read().split("model name")[1]
        print(f"CPU: {model_info.split(':')[1].splitlines()[0].strip()} "
              f"x{len(os.sched_getaffinity(0))}; jobs and PyTorch on 1 thread")
        print("| N per class | (a) FitHead | (a) PyTorch | (b) last block | (b) PyTorch | "
              "(c) from scratch | (c) PyTorch | (d) everything | (d) PyTorch | "
              "seconds a / b / c / d |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        fit_timing = None
        for n in SIZES:
            scores = {key: [] for key in ("a", "a_ref", "b", "b_ref", "c", "c_ref", "d",
                                          "d_ref")}
            seconds = {key: [] for key in ("a", "b", "c", "d")}
            for seed in SEEDS:
                rng = np.random.default_rng(seed)
                rows = [d * 500 + i for d in range(5, 10)
                        for i in rng.choice(400, n, replace=False)]
                pixels = [cells[r] for r in rows]
                names = [str(labels[r]) for r in rows]
                x, y = normalised(pixels), torch.tensor([labels[r] - 5 for r in rows])

                head = f"a_{n}_{seed}"
                fitted = client.fit_head("pretrained", head, pixels, names, classes=CLASSES,
                                         seed=seed)
                scores["a"].append(server_accuracy(client, "pretrained", head, test_pixels,
                                                   test_labels))
                seconds["a"].append((fitted.embed_ms + fitted.fit_ms) / 1000)
                began = time.perf_counter()
                backbone = torch.jit.load(str(store / "pretrained/backbone.pt"))
                with torch.no_grad():
                    features = backbone(x).numpy()
                    test_features = backbone(test_x).numpy()
                embedded = time.perf_counter() - began
                began = time.perf_counter()
                predict = reference_fit(features, y.numpy(), fitted.l2, len(CLASSES))
                reference_seconds = embedded + time.perf_counter() - began
                scores["a_ref"].append(float(np.mean(predict(test_features) == test_y)))
                if n == 100 and seed == SEEDS[0]:
                    fit_timing = (fitted.embed_ms, fitted.fit_ms, reference_seconds * 1000)

                for key, model, train_all in (("b", "pretrained", False),
                                              ("c", "scratch", True),
                                              ("d", "pretrained", True)):
                    output, elapsed = fine_tune(client, model, pixels, names, n, seed,
                                                train_all)
                    scores[key].append(server_accuracy(client, output, "", test_pixels,
                                                       test_labels))
                    seconds[key].append(elapsed)
                    client._call(client._management.UnloadModel,
                                 management_pb2.UnloadModelRequest(model=output), admin=True)
                    predict, _ = reference_train(store / model / "backbone.pt", train_all,
                                                 x, y, seed, EPOCHS[n])
                    with torch.no_grad():
                        scores[f"{key}_ref"].append(float(np.mean(predict(test_x) == test_y)))
                print(f"N={n} seed={seed} done", file=sys.stderr, flush=True)
            print(f"| {n} | " + " | ".join(cell(scores[k]) for k in (
                "a", "a_ref", "b", "b_ref", "c", "c_ref", "d", "d_ref")) + " | " +
                " / ".join(f"{statistics.mean(seconds[k]):.2f}" for k in "abcd") + " |",
                flush=True)
        embed_ms, fit_ms, python_ms = fit_timing
        print(f"\nFitHead on 500 examples (N = 100): embed {embed_ms:.0f} ms + fit "
              f"{fit_ms:.0f} ms = {embed_ms + fit_ms:.0f} ms on the server; PyTorch "
              f"(embedding and one fit at the chosen penalty): {python_ms:.0f} ms")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
