#!/usr/bin/python3
"""Writes the benchmark's model store and inputs into OUT (Debian's python3-torch,
python3-torchvision, python3-opencv; random weights are fine for speed):

  OUT/store/resnet18_batched, resnet18_unbatched   torchvision resnet18, 224x224, fc as
                                                  the head; dynamic batching on / off
  OUT/store/digits_batched, digits_unbatched       the bundled digits model, on / off
  OUT/store-defaults/resnet18_defaults, digits_defaults
                                                  the same models with no batching,
                                                  worker or thread settings
  OUT/jpeg/*.jpg    224x224 JPEG photos cut from opencv-doc's sample pictures
  OUT/png/*.png     digits cut from opencv-doc's digits.png
  OUT/heldout/*.png the 1000 digits the bundled model never trained on
                    (models/digits/eval/heldout.tsv), for precision agreement

The tuned models run one backbone pass per CPU side by side (model_workers), which
served the most here with the server's --torch_threads=1 (README, Throughput); the
defaults models leave every choice to the server.

Usage: /usr/bin/python3 bench/make_bench_models.py OUT
"""
import os
import shutil
import sys

import cv2
import torch
import torchvision
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = "/usr/share/doc/opencv-doc/examples/data"
PHOTOS = ["baboon.jpg", "fruits.jpg", "apple.jpg", "messi5.jpg", "home.jpg", "building.jpg",
          "butterfly.jpg", "orange.jpg"]
BATCHING = "batching { max_batch_size: %d max_queue_delay_us: %d }\n"
UNBATCHED = "batching { max_batch_size: 1 }\n"
WORKERS = "model_workers: %d\n" % len(os.sched_getaffinity(0))

RESNET_CONFIG = """name: "%s"
device: "cpu"
backbone { file: "backbone.pt" format: TORCHSCRIPT }
input {
  channels: 3 height: 224 width: 224 resize: STRETCH
  mean: [0.485, 0.456, 0.406] std: [0.229, 0.224, 0.225]
}
heads { name: "imagenet" file: "imagenet.pt" }
optimize: true
"""


def resnet(out):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    head = model.fc
    model.fc = nn.Identity()
    # A second head of the same shape: what headway_bench_overload's storm swaps to.
    other_head = nn.Linear(head.in_features, head.out_features).eval()
    for store, name, tuning in (("store", "resnet18_batched", BATCHING % (8, 20000) + WORKERS),
                                ("store", "resnet18_unbatched", UNBATCHED + WORKERS),
                                ("store-defaults", "resnet18_defaults", "")):
        folder = os.path.join(out, store, name)
        os.makedirs(folder, exist_ok=True)
        torch.jit.save(torch.jit.script(model), os.path.join(folder, "backbone.pt"))
        torch.jit.save(torch.jit.script(head), os.path.join(folder, "imagenet.pt"))
        torch.jit.save(torch.jit.script(other_head), os.path.join(folder, "imagenet_b.pt"))
        with open(os.path.join(folder, "config.pbtxt"), "w") as f:
            f.write(RESNET_CONFIG % name + tuning)


def digits(out):
    source = os.path.join(HERE, "..", "models", "digits")
    for store, name, tuning in (("store", "digits_batched", BATCHING % (32, 2000) + WORKERS),
                                ("store", "digits_unbatched", UNBATCHED + WORKERS),
                                ("store-defaults", "digits_defaults", "")):
        folder = os.path.join(out, store, name)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        with open(os.path.join(folder, "config.pbtxt")) as f:
            config = f.read().replace('name: "digits"', f'name: "{name}"')
        with open(os.path.join(folder, "config.pbtxt"), "w") as f:
            f.write(config + tuning)


def inputs(out):
    os.makedirs(os.path.join(out, "jpeg"), exist_ok=True)
    os.makedirs(os.path.join(out, "png"), exist_ok=True)
    for i, photo in enumerate(PHOTOS):
        image = cv2.imread(os.path.join(DATA, photo))
        cv2.imwrite(os.path.join(out, "jpeg", f"{i}.jpg"), cv2.resize(image, (224, 224)),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
    sheet = cv2.imread(os.path.join(DATA, "digits.png"), cv2.IMREAD_GRAYSCALE)
    for i in range(8):
        cell = sheet[(i * 5 + 2) * 20:(i * 5 + 3) * 20, i * 20:(i + 1) * 20]
        cv2.imwrite(os.path.join(out, "png", f"{i}.png"), cell)
    os.makedirs(os.path.join(out, "heldout"), exist_ok=True)
    with open(os.path.join(HERE, "..", "models", "digits", "eval", "heldout.tsv")) as rows:
        for line in rows:
            if not line.strip() or line.startswith("#"):
                continue
            index = int(line.split("\t")[0])
            row, column = divmod(index, 100)
            cv2.imwrite(os.path.join(out, "heldout", f"{index}.png"),
                        sheet[row * 20:(row + 1) * 20, column * 20:(column + 1) * 20])


def main():
    out = sys.argv[1]
    resnet(out)
    digits(out)
    inputs(out)


if __name__ == "__main__":
    main()
