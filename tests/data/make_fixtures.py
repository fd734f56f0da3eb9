#!/usr/bin/python3
"""Writes the small checkpoints Headway's tests load, beside this script.

  head_wrong_dim.pt   a linear head taking 32 features (the digits backbone gives 64)
  head_three_class.pt a linear head 64 -> 3, to check label counts against classes

Usage: /usr/bin/python3 tests/data/make_fixtures.py   (Debian's python3-torch)
"""
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(7)
    torch.jit.save(torch.jit.script(nn.Linear(32, 3).eval()),
                   os.path.join(HERE, "head_wrong_dim.pt"))
    torch.jit.save(torch.jit.script(nn.Linear(64, 3).eval()),
                   os.path.join(HERE, "head_three_class.pt"))


if __name__ == "__main__":
    main()
