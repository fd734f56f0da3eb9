#!/usr/bin/python3
"""Turns a torchvision model you trained into a Headway model folder.

You saved your fine-tuned torchvision network the usual way: its state_dict
(torch.save(model.state_dict(), "pets.pth")), a training checkpoint
(torch.save({"epoch": e, "model_state_dict": ..., "optimizer_state_dict": ...,
"class_to_idx": ...}, "pets.pth")), or either from nn.DataParallel. This script writes
a folder Headway serves, with a config.pbtxt, one of two ways:

  --format=state_dict (default)  your file as is, plus architecture.pt: the network
                                 scripted with its output layer replaced by
                                 nn.Identity(). Headway loads your weights into it
                                 (strictly: every key must match) and the output
                                 layer's weights as the head.
  --format=torchscript           backbone.pt (the network without its output layer,
                                 weights inside, torch.jit.script) and
                                 heads/<head>.pt (the output layer's weight and bias).

  examples/export_model.py --arch resnet18 --weights pets.pth --out models/pets \\
      --labels labels.txt
  headway_server --model_store=models     # serves "pets", head "pets" by default

Labels: --labels (one per line, in class order), else the checkpoint's class_to_idx,
else the class indices. The output layer is the network's last nn.Linear
(resnet: fc, mobilenet/efficientnet/vgg: classifier.N, vit: heads.head); its size
comes from your weights. Input: --size (224) square, ImageNet's mean and std,
shorter side resized to size * 256 / 224 then center-cropped, as torchvision's
evaluation transforms do. Needs python3-torch and python3-torchvision.
"""
import argparse
import pathlib
import shutil
import sys

import torch
import torchvision

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
WEIGHT_KEYS = ("model_state_dict", "state_dict", "model", "model_state", "net", "weights")


def read_weights(path: pathlib.Path):
    """The state_dict in `path` (DataParallel's "module." dropped), and the checkpoint's
    class_to_idx if it has one."""
    saved = torch.load(path, map_location="cpu")
    class_to_idx = None
    if isinstance(saved, dict) and not all(torch.is_tensor(v) for v in saved.values()):
        class_to_idx = saved.get("class_to_idx")
        key = next((k for k in WEIGHT_KEYS if isinstance(saved.get(k), dict)), None)
        if key is None:
            sys.exit(f"{path}: a dict without a state_dict under any of {WEIGHT_KEYS}")
        saved = saved[key]
    if not isinstance(saved, dict):
        sys.exit(f"{path}: not a state_dict or training checkpoint (a pickled module? "
                 "save model.state_dict() instead)")
    return {k.removeprefix("module."): v for k, v in saved.items()}, class_to_idx


def output_layer(model: torch.nn.Module) -> str:
    """The dotted name of the network's last nn.Linear."""
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        sys.exit("the network has no nn.Linear output layer")
    return names[-1]


def replace(model: torch.nn.Module, dotted: str, module: torch.nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, help="torchvision model, e.g. resnet18")
    parser.add_argument("--weights", required=True, type=pathlib.Path,
                        help="your state_dict or training checkpoint (.pth)")
    parser.add_argument("--out", required=True, type=pathlib.Path,
                        help="the model folder to write (its name is the model's)")
    parser.add_argument("--labels", type=pathlib.Path, help="one label per line")
    parser.add_argument("--head", help="the head's name (default: the model's)")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--format", choices=("state_dict", "torchscript"),
                        default="state_dict")
    args = parser.parse_args()

    state_dict, class_to_idx = read_weights(args.weights)
    model = torchvision.models.get_model(args.arch, weights=None)
    layer = output_layer(model)
    weight = state_dict.get(f"{layer}.weight")
    if weight is None:
        sys.exit(f"{args.weights}: no {layer}.weight, the output layer of {args.arch}")
    classes, features = weight.shape
    replace(model, layer, torch.nn.Linear(features, classes))
    model.load_state_dict(state_dict)  # strict: the weights fit the architecture
    model.eval()

    if args.labels:
        labels = [l.strip() for l in args.labels.read_text().splitlines() if l.strip()]
    elif class_to_idx:
        labels = sorted(class_to_idx, key=class_to_idx.get)
    else:
        labels = [str(i) for i in range(classes)]
    if len(labels) != classes:
        sys.exit(f"{len(labels)} labels for {classes} classes")

    out = args.out
    name = out.name
    head = args.head or name
    (out / "heads").mkdir(parents=True, exist_ok=True)
    (out / "heads" / f"{head}.labels").write_text("\n".join(labels) + "\n")
    output = model.get_submodule(layer)
    replace(model, layer, torch.nn.Identity())
    if args.format == "state_dict":
        shutil.copyfile(args.weights, out / args.weights.name)
        torch.jit.script(model).save(str(out / "architecture.pt"))
        backbone = (f'backbone {{ file: "{args.weights.name}" architecture: '
                    f'"architecture.pt" ignore_prefixes: "{layer}." }}')
        head_line = (f'heads {{ name: "{head}" file: "{args.weights.name}" key_prefix: '
                     f'"{layer}." labels_file: "heads/{head}.labels" }}')
    else:
        torch.jit.script(model).save(str(out / "backbone.pt"))
        torch.save({"weight": output.weight.detach().clone(),
                    "bias": output.bias.detach().clone()}, out / "heads" / f"{head}.pt")
        backbone = 'backbone { file: "backbone.pt" format: TORCHSCRIPT }'
        head_line = (f'heads {{ name: "{head}" file: "heads/{head}.pt" '
                     f'labels_file: "heads/{head}.labels" }}')
    shorter_side = round(args.size * 256 / 224)
    (out / "config.pbtxt").write_text(f"""# Written by examples/export_model.py from {args.weights.name} ({args.arch}).
name: "{name}"
device: "cpu"
{backbone}
input {{
  channels: 3 height: {args.size} width: {args.size}
  resize: SHORTER_SIDE_THEN_CENTER_CROP resize_shorter_side: {shorter_side}
  mean: {IMAGENET_MEAN} std: {IMAGENET_STD}
}}
{head_line}
default_head: "{head}"
""")
    print(f"{out}: {args.arch}, {features} features, {classes} classes, head \"{head}\" "
          f"({args.format})")


if __name__ == "__main__":
    main()
