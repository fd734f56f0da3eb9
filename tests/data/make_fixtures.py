#!/usr/bin/python3
"""Writes the small checkpoints Headway's tests load, beside this script.

  head_wrong_dim.pt   a linear head taking 32 features (the digits backbone gives 64)
  head_three_class.pt a linear head 64 -> 3, to check label counts against classes
  head_nan_row.pt     a linear head 64 -> 10 with one row of NaN weights
  head_zip_bomb.pt    a linear head's state_dict whose 131072 x 64 zero weights are
                      deflated: ~40 KB that unpacks to 32 MiB
  backbone_zip_bomb.pt a digits-shaped TorchScript backbone carrying 32 MiB of zeros
                      (a buffer), deflated: ~40 KB that unpacks to 32 MiB
  head_cuda0_scripted.pt  head_three_class.pt's module with its storages tagged
                      cuda:0, as torch.jit.save writes a module saved from a GPU
  faulty_backbone.pt  a digits-shaped backbone ([N, 1, 20, 20] -> [N, 64]) that fails
                      at serving time on a marked input: a first value of 7 raises,
                      9 asks for 4 TiB (LibTorch's allocator runs out of memory)

Usage: /usr/bin/python3 tests/data/make_fixtures.py   (Debian's python3-torch)
"""
import os
import struct
import zipfile

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class FaultyBackbone(nn.Module):
    """Features are the first 64 pixels; a marked first pixel makes the pass fail."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marker = float(x[0, 0, 0, 0])
        if marker == 7.0:
            raise RuntimeError("injected fault: the forward pass failed")
        if marker == 9.0:
            x = x + torch.empty([1 << 40], dtype=torch.float32)[0]
        return x.flatten(1)[:, :64] * 1.0


class BloatedBackbone(nn.Module):
    """The first 64 pixels as features, with 32 MiB of zeros it never needs."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ballast", torch.zeros(8 << 20))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :64] + self.ballast[0]


def deflate(path):
    """Rewrites the zip archive at `path` with every record deflated."""
    with zipfile.ZipFile(path) as stored:
        records = [(info, stored.read(info)) for info in stored.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as packed:
        for info, data in records:
            packed.writestr(info.filename, data)


def retag(source, target):
    """Copies a TorchScript archive with its storages' location 'cpu' made 'cuda:0'."""
    cpu = b"X" + struct.pack("<I", 3) + b"cpu"
    cuda = b"X" + struct.pack("<I", 6) + b"cuda:0"
    with zipfile.ZipFile(source) as archive:
        records = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info, data in records:
            if info.filename.endswith("/data.pkl"):
                data = data.replace(cpu, cuda)
            out.writestr(info.filename, data)


def main():
    torch.manual_seed(7)
    torch.jit.save(torch.jit.script(nn.Linear(32, 3).eval()),
                   os.path.join(HERE, "head_wrong_dim.pt"))
    torch.jit.save(torch.jit.script(nn.Linear(64, 3).eval()),
                   os.path.join(HERE, "head_three_class.pt"))
    nan_row = nn.Linear(64, 10).eval()
    with torch.no_grad():
        nan_row.weight[3] = float("nan")
    torch.jit.save(torch.jit.script(nan_row), os.path.join(HERE, "head_nan_row.pt"))
    retag(os.path.join(HERE, "head_three_class.pt"),
          os.path.join(HERE, "head_cuda0_scripted.pt"))
    bomb = os.path.join(HERE, "head_zip_bomb.pt")
    torch.save({"weight": torch.zeros(131072, 64), "bias": torch.zeros(131072)}, bomb)
    deflate(bomb)
    bloated = os.path.join(HERE, "backbone_zip_bomb.pt")
    torch.jit.save(torch.jit.script(BloatedBackbone().eval()), bloated)
    deflate(bloated)
    torch.jit.save(torch.jit.script(FaultyBackbone().eval()),
                   os.path.join(HERE, "faulty_backbone.pt"))


if __name__ == "__main__":
    main()
