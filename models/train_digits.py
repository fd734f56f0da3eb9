#!/usr/bin/python3
"""Trains Headway's bundled default model on real handwritten digits and exports it.

The data is the 5,000 handwritten digits (20x20 pixels, 500 per class) that Debian's
opencv-doc package ships as digits.png. A seeded, stratified split keeps 1,000 digits
out of training; their predictions and the accuracy on them are written to
digits/eval/heldout.tsv so that the end-to-end tests can check the served model
against what PyTorch computed here.

The network is split the way Headway serves it:
  digits/backbone.pt       TorchScript feature extractor, [N,1,20,20] -> [N,64]
  digits/heads/digit.pt    TorchScript linear head, 64 -> 10 (labels digit.labels)
  digits/heads/parity.pt   a second head trained on the frozen backbone's features,
                           64 -> 2 (labels parity.labels), for head hot-swaps
  digits/config.pbtxt      the model configuration, with the normalisation used here

Usage: /usr/bin/python3 models/train_digits.py   (Debian's python3-torch, python3-opencv)
Seeded and single-threaded, so a rerun on the same packages gives the same files.
"""
import os
import random

import cv2
import numpy as np
import torch
from torch import nn

DIGITS_PNG = "/usr/share/doc/opencv-doc/examples/data/digits.png"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits")
SEED = 20261128
CELL = 20
HELDOUT_PER_CLASS = 100
EPOCHS = 20
BATCH = 64


class Backbone(nn.Module):
    """Two conv blocks and a 64-wide embedding: the feature extractor Headway serves."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 10x10
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 5x5
            nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU())

    def forward(self, x):
        return self.features(x)


def load_cells():
    """Returns (images uint8 [5000,20,20], labels int64 [5000]) in digits.png order."""
    sheet = cv2.imread(DIGITS_PNG, cv2.IMREAD_GRAYSCALE)
    assert sheet is not None, f"{DIGITS_PNG} missing: apt-get install opencv-doc"
    rows, cols = sheet.shape[0] // CELL, sheet.shape[1] // CELL
    cells = sheet.reshape(rows, CELL, cols, CELL).swapaxes(1, 2).reshape(-1, CELL, CELL)
    labels = np.repeat(np.arange(10), len(cells) // 10)  # 5 rows of 100 per digit
    return cells, labels


def split(labels, rng):
    heldout = []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        heldout.extend(rng.choice(idx, HELDOUT_PER_CLASS, replace=False).tolist())
    heldout = np.array(sorted(heldout))
    train = np.setdiff1d(np.arange(len(labels)), heldout)
    return train, heldout


def train(model, head, x, y, epochs, params, gen):
    opt = torch.optim.Adam(params, lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), BATCH):
            b = order[start:start + BATCH]
            opt.zero_grad()
            loss = loss_fn(head(model(x[b])), y[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        print(f"  epoch {epoch + 1}: loss {total / len(x):.4f}")


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    gen = torch.Generator().manual_seed(SEED)

    cells, labels = load_cells()
    train_idx, heldout_idx = split(labels, rng)
    pixels = torch.from_numpy(cells).float().div(255.0).unsqueeze(1)
    mean = round(pixels[train_idx].mean().item(), 4)
    std = round(pixels[train_idx].std().item(), 4)
    x = (pixels - mean) / std
    y = torch.from_numpy(labels)
    parity = y % 2

    backbone, digit_head = Backbone(), nn.Linear(64, 10)
    print("training backbone + digit head")
    train(backbone, digit_head, x[train_idx], y[train_idx], EPOCHS,
          list(backbone.parameters()) + list(digit_head.parameters()), gen)
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)

    parity_head = nn.Linear(64, 2)
    print("training parity head on frozen features")
    train(backbone, parity_head, x[train_idx], parity[train_idx], 10,
          list(parity_head.parameters()), gen)

    with torch.no_grad():
        features = backbone(x[heldout_idx])
        digit_pred = digit_head(features).argmax(1)
        parity_pred = parity_head(features).argmax(1)
    digit_acc = (digit_pred == y[heldout_idx]).float().mean().item()
    parity_acc = (parity_pred == parity[heldout_idx]).float().mean().item()
    print(f"held-out accuracy: digit {digit_acc:.4f}, parity {parity_acc:.4f} "
          f"on {len(heldout_idx)} images")

    os.makedirs(os.path.join(OUT, "heads"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "eval"), exist_ok=True)
    torch.jit.save(torch.jit.script(backbone), os.path.join(OUT, "backbone.pt"))
    for name, head, names in (("digit", digit_head, [str(d) for d in range(10)]),
                              ("parity", parity_head, ["even", "odd"])):
        torch.jit.save(torch.jit.script(head.eval()), os.path.join(OUT, "heads", name + ".pt"))
        with open(os.path.join(OUT, "heads", name + ".labels"), "w") as f:
            f.write("\n".join(names) + "\n")

    with open(os.path.join(OUT, "eval", "heldout.tsv"), "w") as f:
        f.write(f"# held-out digits of {DIGITS_PNG}, written by models/train_digits.py\n")
        f.write(f"# digit_accuracy={digit_acc:.4f} parity_accuracy={parity_acc:.4f}\n")
        f.write("# cell\tlabel\tdigit_prediction\tparity_prediction\n")
        for i, d, p in zip(heldout_idx.tolist(), digit_pred.tolist(), parity_pred.tolist()):
            f.write(f"{i}\t{labels[i]}\t{d}\t{p}\n")

    with open(os.path.join(OUT, "config.pbtxt"), "w") as f:
        f.write(f"""# Headway model configuration (headway.v1.ModelConfig in text format).
# Written by models/train_digits.py, which trained this model.
name: "digits"
version: 1
device: "cpu"
backbone {{
  file: "backbone.pt"
  format: TORCHSCRIPT
}}
input {{
  channels: 1
  height: {CELL}
  width: {CELL}
  resize: STRETCH
  mean: {mean}
  std: {std}
}}
heads {{
  name: "digit"
  file: "heads/digit.pt"
  labels_file: "heads/digit.labels"
}}
default_head: "digit"
""")


if __name__ == "__main__":
    main()
