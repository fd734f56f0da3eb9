"""End to end: examples/export_model.py turns torchvision networks saved the usual
ways (a training checkpoint, a DataParallel state_dict) into model folders, which the
real headway_server serves with PyTorch's own features and scores.

Run by ctest: test_export_model.py SERVER_BINARY, with client/python on PYTHONPATH.
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torchvision

from headway_client import HeadwayClient

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_python_client import Server  # noqa: E402  (the same server fixture)

SERVER_BINARY = sys.argv[1] if len(sys.argv) > 1 else ""
EXPORT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "export_model.py"
SIZE = 64  # resnet18 takes any size; small keeps the test quick


def network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    # Non-trivial BatchNorm statistics, as a trained network has.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export(weights: pathlib.Path, out: pathlib.Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(EXPORT), "--arch", "resnet18", "--weights",
                    str(weights), "--out", str(out), "--size", str(SIZE), *extra],
                   check=True)


class ExportModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = pathlib.Path(tempfile.mkdtemp(prefix="headway-export-"))
        store = cls.work / "store"
        # A training checkpoint with class_to_idx, exported as state_dict + architecture.
        cls.pets = network(1)
        torch.save({"epoch": 7, "model_state_dict": cls.pets.state_dict(),
                    "optimizer_state_dict": {}, "class_to_idx": {"cat": 0, "dog": 1,
                                                                  "fish": 2}},
                   cls.work / "pets.pth")
        export(cls.work / "pets.pth", store / "pets")
        # A DataParallel state_dict with a labels file, exported as TorchScript.
        cls.birds = network(2)
        torch.save(torch.nn.DataParallel(cls.birds).state_dict(), cls.work / "birds.pth")
        (cls.work / "birds.labels").write_text("owl\nwren\nkite\n")
        export(cls.work / "birds.pth", store / "birds", "--format", "torchscript",
               "--labels", str(cls.work / "birds.labels"), "--head", "species")
        cls.server = Server(store)
        cls.client = HeadwayClient(cls.server.target, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        shutil.rmtree(cls.work, ignore_errors=True)

    def check_served_like_pytorch(self, model_name, model, labels):
        torch.manual_seed(3)
        inputs = torch.randn(2, 3, SIZE, SIZE)
        with torch.no_grad():
            scores = torch.softmax(model(inputs), dim=1).numpy()
            features = torch.nn.Sequential(*list(model.children())[:-1])(inputs)
            features = features.flatten(1).numpy()
        arrays = [np.ascontiguousarray(x.numpy()) for x in inputs]
        embedded = self.client.embed(model_name, arrays)
        np.testing.assert_allclose(embedded.embeddings, features, rtol=1e-4, atol=1e-4)
        classified = self.client.classify(model_name, arrays, top_k=3)
        for row, result in enumerate(classified.results):
            served = {label.label: label.score for label in result.labels}
            self.assertEqual(set(served), set(labels))
            for index, label in enumerate(labels):
                self.assertAlmostEqual(served[label], float(scores[row][index]), places=4)

    def test_a_training_checkpoint_serves_as_state_dict_and_architecture(self):
        files = sorted(p.name for p in (self.work / "store" / "pets").iterdir())
        self.assertEqual(files, ["architecture.pt", "config.pbtxt", "heads", "pets.pth"])
        self.check_served_like_pytorch("pets", self.pets, ["cat", "dog", "fish"])

    def test_a_data_parallel_state_dict_serves_as_torchscript(self):
        self.assertTrue((self.work / "store" / "birds" / "backbone.pt").exists())
        self.check_served_like_pytorch("birds", self.birds, ["owl", "wren", "kite"])
        self.assertEqual(self.client.classify("birds", np.zeros((3, SIZE, SIZE),
                                                                np.float32)).head,
                         "species")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
