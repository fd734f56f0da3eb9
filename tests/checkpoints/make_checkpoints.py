#!/usr/bin/python3
"""Writes the checkpoint fixtures of Headway's loader tests, the way PyTorch users save.

Usage: /usr/bin/python3 tests/checkpoints/make_checkpoints.py OUT_DIR
(Debian's python3-torch and python3-torchvision; seeded; about 200 MB for both
architectures, so the build makes them rather than the repository holding them.)

For each architecture (torchvision resnet18 and mobilenet_v3_small, random weights) the
classifier's last linear layer is the head and the rest is the backbone:

  {arch}_arch.pt            torch.jit.script of the backbone with *other* random weights:
                            the architecture that state_dicts load into
  {arch}_traced.pt          torch.jit.trace of the backbone (TorchScript, real weights)
  {arch}_scripted.pt        torch.jit.script of the backbone (TorchScript, real weights)
  {arch}_state_dict.pt      torch.save(model.state_dict(), path)   (whole model)
  {arch}_dataparallel.pt    torch.save(nn.DataParallel(model).state_dict(), path)
  {arch}_training.pt        torch.save({'epoch', 'model_state_dict',
                            'optimizer_state_dict', 'loss', 'class_to_idx'}, path)
  {arch}_cuda0.pt           the state_dict saved with every storage tagged cuda:0, as a
                            GPU machine writes it (torch.load needs map_location here)
  {arch}_head_state_dict.pt torch.save(head.state_dict(), path): weight [C, D], bias [C]
  {arch}_head_scripted.pt   torch.jit.script(head)
  {arch}_legacy.pt          the state_dict in the pre-1.6 (non-zip) format
  {arch}_input.f32          a fixed input batch [2, 3, 64, 64], raw little-endian float32
  {arch}_features.f32       PyTorch's backbone output for it  [2, D]
  {arch}_logits.f32         PyTorch's head output for it      [2, C]
  manifest.txt              "arch feature_dim classes head_prefix" per architecture

and a model store, store/, serving them as users would configure them:
  store/resnet18_training     the training checkpoint into the architecture, with the
                              head taken from the same file's "fc." keys and its labels
                              from class_to_idx
  store/mobilenet_v3_small_cuda0  the cuda:0-saved state_dict on a CPU server, with the
                              head from the head's own state_dict
"""
import os
import sys

import torch
import torch.serialization
import torchvision
from torch import nn

SIZE = 64


def split(name, model):
    """Returns (backbone, head, head_prefix): the last linear layer is the head."""
    if name == "resnet18":
        head = model.fc
        model.fc = nn.Identity()
        return model, head, "fc."
    head = model.classifier[3]
    model.classifier[3] = nn.Identity()
    return model, head, "classifier.3."


def save_with_location(obj, path, location):
    """torch.save, with every storage's location tag set to `location`."""
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: location
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = original


def write_f32(path, tensor):
    tensor.detach().contiguous().float().numpy().astype("<f4").tofile(path)


def make(name, out, manifest):
    torch.manual_seed(1)
    full = getattr(torchvision.models, name)(num_classes=1000).eval()
    # Non-trivial batch-norm statistics, as a trained model has.
    with torch.no_grad():
        for module in full.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state_dict = full.state_dict()
    p = lambda suffix: os.path.join(out, f"{name}_{suffix}")

    torch.save(state_dict, p("state_dict.pt"))
    torch.save(nn.DataParallel(full).state_dict(), p("dataparallel.pt"))
    save_with_location(state_dict, p("cuda0.pt"), "cuda:0")
    torch.save(state_dict, p("legacy.pt"), _use_new_zipfile_serialization=False)

    # An optimizer with state (momentum buffers) that leaves the weights as they are:
    # a step on zero gradients.
    optimizer = torch.optim.SGD(full.parameters(), lr=0.01, momentum=0.9)
    loss = full(torch.randn(2, 3, SIZE, SIZE)).logsumexp(1).mean()
    loss.backward()
    optimizer.zero_grad(set_to_none=False)
    optimizer.step()
    torch.save({
        "epoch": 7,
        "model_state_dict": full.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss.detach(),
        "class_to_idx": {f"class_{i:04d}": i for i in range(1000)},
    }, p("training.pt"))

    backbone, head, head_prefix = split(name, full)
    torch.save(head.state_dict(), p("head_state_dict.pt"))
    torch.jit.save(torch.jit.script(head), p("head_scripted.pt"))

    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = backbone(x)
        logits = head(features)
    torch.jit.save(torch.jit.trace(backbone, x), p("traced.pt"))
    torch.jit.save(torch.jit.script(backbone), p("scripted.pt"))
    write_f32(p("input.f32"), x)
    write_f32(p("features.f32"), features)
    write_f32(p("logits.f32"), logits)

    torch.manual_seed(99)
    other = getattr(torchvision.models, name)(num_classes=1000).eval()
    other_backbone, _, _ = split(name, other)
    torch.jit.save(torch.jit.script(other_backbone), p("arch.pt"))
    manifest.write(f"{name} {features.shape[1]} {logits.shape[1]} {head_prefix}\n")


STORE_CONFIG = """name: "{name}"
version: 1
device: "cpu"
backbone {{
  file: "{weights}"
  format: {format}
  architecture: "arch.pt"
  ignore_prefixes: "{head_prefix}"
}}
input {{ channels: 3 height: {size} width: {size} resize: NONE }}
heads {{ name: "imagenet" file: "{head_file}" key_prefix: "{head_key_prefix}" }}
"""


def make_store(out, name, arch, weights, fmt, head_file, head_key_prefix, head_prefix):
    folder = os.path.join(out, "store", name)
    os.makedirs(folder, exist_ok=True)
    for source, target in ((f"{arch}_arch.pt", "arch.pt"), (weights, weights),
                           (head_file, head_file)):
        link = os.path.join(folder, target)
        if os.path.exists(link):
            os.remove(link)
        os.link(os.path.join(out, source), link)
    with open(os.path.join(folder, "config.pbtxt"), "w") as f:
        f.write(STORE_CONFIG.format(name=name, weights=weights, format=fmt, size=SIZE,
                                    head_file=head_file, head_key_prefix=head_key_prefix,
                                    head_prefix=head_prefix))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    with open(os.path.join(out, "manifest.txt.tmp"), "w") as manifest:
        for name in ("resnet18", "mobilenet_v3_small"):
            make(name, out, manifest)
    make_store(out, "resnet18_training", "resnet18", "resnet18_training.pt",
               "TRAINING_CHECKPOINT", "resnet18_training.pt", "fc.", "fc.")
    make_store(out, "mobilenet_v3_small_cuda0", "mobilenet_v3_small",
               "mobilenet_v3_small_cuda0.pt", "STATE_DICT",
               "mobilenet_v3_small_head_state_dict.pt", "", "classifier.3.")
    os.replace(os.path.join(out, "manifest.txt.tmp"), os.path.join(out, "manifest.txt"))


if __name__ == "__main__":
    main()
