#!/usr/bin/python3
"""FitHead against a reference fit in Python, on the same features.

Starts headway_server over the bundled model store, embeds digits from opencv-doc's
digits.png with the digits backbone (the server's Embed), then for N labelled digits
per class (none from the held-out split; several seeds) fits a head twice:
  - on the server: FitHead with the embeddings (penalty chosen on its held-out split);
  - in PyTorch: the same objective (mean cross-entropy + l2/2 |W|^2 on standardised
    features, the penalty the server chose), L-BFGS to convergence in float64;
and prints both heads' accuracy on the 1000 held-out digits and their fit times.

Usage: PYTHONPATH=client/python /usr/bin/python3 bench/fit_head_reference.py \\
           build/server/headway_server
"""
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

from headway_client import HeadwayClient
from headway_client._proto.headway.v1 import inference_pb2, management_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIGITS = "/usr/share/doc/opencv-doc/examples/data/digits.png"
SIZES = (5, 20, 50)
SEEDS = (1, 2, 3)


def start_server(binary, work, store=ROOT / "models", token="reference-token",
                 flags=()):
    """headway_server on 127.0.0.1:0 over `store`, with `token` as its admin token;
    returns the process and its target once it serves."""
    (work / "token").write_text(token + "\n")
    log = open(work / "server.log", "w+")
    process = subprocess.Popen(
        [binary, "--host=127.0.0.1", "--port=0", f"--port_file={work / 'port'}",
         "--metrics_address=", "--http_port=0", f"--model_store={store}",
         f"--admin_token_file={work / 'token'}", *flags],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "event=serving" not in (work / "server.log").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit("headway_server did not start:\n" + (work / "server.log").read_text())
        time.sleep(0.05)
    return process, f"127.0.0.1:{(work / 'port').read_text().strip()}"


def cells():
    sheet = cv2.imread(DIGITS, cv2.IMREAD_GRAYSCALE)
    return [sheet[r * 20:(r + 1) * 20, c * 20:(c + 1) * 20] for r in range(50)
            for c in range(100)]


def held_out():
    rows = (ROOT / "models/digits/eval/heldout.tsv").read_text().splitlines()
    pairs = [line.split("\t")[:2] for line in rows if line and not line.startswith("#")]
    return [int(cell) for cell, _ in pairs], [int(label) for _, label in pairs]


def embed(client, pixels):
    out = []
    for start in range(0, len(pixels), 50):
        out.append(client.embed("digits", np.stack(pixels[start:start + 50])).embeddings)
    return np.concatenate(out)


def reference_fit(x, y, l2, classes):
    """The server's objective in PyTorch: L-BFGS to convergence, float64."""
    x = torch.tensor(x, dtype=torch.float64)
    y = torch.tensor(y)
    mean, scale = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / scale
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=2000, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, y) + \
            0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return lambda features: ((torch.tensor(features, dtype=torch.float64) - mean) / scale
                             @ weight + bias).argmax(1).numpy()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/server/headway_server")
    work = pathlib.Path(tempfile.mkdtemp(prefix="headway-fit-reference-"))
    process, target = start_server(binary, work)
    try:
        client = HeadwayClient(target, timeout=300, admin_token="reference-token")
        sheet = cells()
        test_cells, test_labels = held_out()
        test_features = embed(client, [sheet[c] for c in test_cells])
        excluded = set(test_cells)
        pool = {d: [c for c in range(d * 500, (d + 1) * 500) if c not in excluded]
                for d in range(10)}
        print(f"CPU: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}"
              f" x{len(os.sched_getaffinity(0))}; torch threads {torch.get_num_threads()}")
        print("| N per class | FitHead held-out accuracy | PyTorch (same l2) | difference "
              "(points) | FitHead fit ms (choosing l2, then the fit) | PyTorch fit ms (one "
              "fit at that l2) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in SIZES:
            ours, theirs, our_ms, their_ms = [], [], [], []
            for seed in SEEDS:
                rng = np.random.default_rng(seed)
                chosen = [c for d in range(10) for c in rng.choice(pool[d], n, replace=False)]
                labels = [c // 500 for c in chosen]
                features = embed(client, [sheet[c] for c in chosen])
                request = management_pb2.FitHeadRequest(
                    model="digits", head=f"ref_{n}_{seed}", labels=[str(l) for l in labels],
                    classes=[str(d) for d in range(10)], seed=seed)
                for row in features:
                    request.embeddings.add().values.extend(row.tolist())
                fitted = client._call(client._management.FitHead, request, admin=True)
                predicted = []
                for start in range(0, len(test_cells), 50):
                    batch = np.stack([sheet[c] for c in test_cells[start:start + 50]])
                    result = client.classify("digits", batch, head=f"ref_{n}_{seed}", top_k=1)
                    predicted += [int(r.labels[0].label) for r in result.results]
                ours.append(np.mean(np.array(predicted) == np.array(test_labels)))
                our_ms.append(fitted.fit_ms)
                began = time.perf_counter()
                predict = reference_fit(features, labels, fitted.l2, 10)
                their_ms.append((time.perf_counter() - began) * 1000)
                theirs.append(np.mean(predict(test_features) == np.array(test_labels)))
            diff = (statistics.mean(ours) - statistics.mean(theirs)) * 100
            print(f"| {n} | {statistics.mean(ours):.3f} ± {statistics.pstdev(ours):.3f} | "
                  f"{statistics.mean(theirs):.3f} ± {statistics.pstdev(theirs):.3f} | "
                  f"{diff:+.1f} | {statistics.mean(our_ms):.0f} | "
                  f"{statistics.mean(their_ms):.0f} |")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
