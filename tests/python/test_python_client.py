"""End to end: the Python client (client/python/headway_client) and Python stubs of the
Open Inference Protocol against the real headway_server on a free localhost port.

Run by ctest: test_python_client.py SERVER_BINARY MODEL_STORE, with client/python on
PYTHONPATH.
"""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import cv2
import numpy as np

import headway_client
from headway_client import HeadwayClient, HeadwayError
from headway_client._proto.inference import grpc_predict_v2_pb2 as v2
from headway_client._proto.inference import grpc_predict_v2_pb2_grpc as v2_grpc

SERVER_BINARY = sys.argv[1] if len(sys.argv) > 1 else ""
MODEL_STORE = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "models")
DIGITS_PNG = "/usr/share/doc/opencv-doc/examples/data/digits.png"
# Held-out cells of digits.png (models/digits/eval/heldout.tsv) and their labels.
CELLS = {2: 0, 1003: 2, 3507: 7}
MEAN, STD = 0.1327, 0.291


def digit_cell(index: int) -> np.ndarray:
    sheet = cv2.imread(DIGITS_PNG, cv2.IMREAD_GRAYSCALE)
    row, column = divmod(index, 100)
    return np.ascontiguousarray(sheet[row * 20:(row + 1) * 20, column * 20:(column + 1) * 20])


def png_bytes(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """headway_server on 127.0.0.1:0 over a copy of the model store, with an admin
    token; stopped with SIGTERM."""

    def __init__(self, store: pathlib.Path):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="headway-py-"))
        self.token = f"python-test-token-{os.getpid()}"
        (self.dir / "token").write_text(self.token + "\n")
        self.log = open(self.dir / "server.log", "w+")
        self.process = subprocess.Popen(
            [SERVER_BINARY, "--host=127.0.0.1", "--port=0",
             f"--port_file={self.dir / 'port'}", "--metrics_address=127.0.0.1:0",
             f"--metrics_port_file={self.dir / 'metrics_port'}",
             f"--http_port={free_port()}", f"--http_port_file={self.dir / 'http_port'}",
             f"--model_store={store}", f"--admin_token_file={self.dir / 'token'}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "event=serving" not in (self.dir / "server.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("headway_server did not start: " +
                                   (self.dir / "server.log").read_text())
            time.sleep(0.05)
        self.target = f"127.0.0.1:{(self.dir / 'port').read_text().strip()}"
        self.http = f"http://127.0.0.1:{(self.dir / 'http_port').read_text().strip()}"
        self.metrics = (f"http://127.0.0.1:"
                        f"{(self.dir / 'metrics_port').read_text().strip()}/metrics")

    def classify_calls_served(self) -> int:
        """Classify calls this server answered OK, from its metrics."""
        with urllib.request.urlopen(self.metrics, timeout=30) as reply:
            text = reply.read().decode()
        match = re.search(r'headway_requests_total\{code="OK",head="digit",'
                          r'model="digits",rpc="Classify"\} (\d+)', text)
        return int(match.group(1)) if match else 0

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = pathlib.Path(tempfile.mkdtemp(prefix="headway-py-store-"))
        shutil.copytree(MODEL_STORE / "digits", cls.store / "digits")
        cls.server = Server(cls.store)
        cls.client = HeadwayClient(cls.server.target, timeout=60)
        cls.admin = HeadwayClient(cls.server.target, timeout=60,
                                  admin_token=cls.server.token)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.admin.close()
        cls.server.stop()
        shutil.rmtree(cls.store, ignore_errors=True)

    def test_importing_the_client_leaves_grpcio_the_grpc_package(self):
        import grpc
        self.assertTrue(hasattr(grpc, "insecure_channel"))
        self.assertNotIn("headway_client", grpc.__file__)
        self.assertTrue(headway_client.__file__.endswith("__init__.py"))

    def test_classify_and_embed_images_files_and_arrays_alike(self):
        pixels = [digit_cell(cell) for cell in CELLS]
        with tempfile.NamedTemporaryFile(suffix=".png") as file:
            file.write(png_bytes(pixels[0]))
            file.flush()
            from_file = self.client.classify("digits", file.name, top_k=3)
        self.assertEqual(from_file.head, "digit")
        self.assertEqual(len(from_file.results), 1)
        self.assertEqual(len(from_file.results[0].labels), 3)

        from_bytes = self.client.classify("digits", [png_bytes(p) for p in pixels], top_k=1)
        from_pixels = self.client.classify("digits", np.stack(pixels), top_k=1)
        truth = [str(label) for label in CELLS.values()]
        self.assertEqual([r.labels[0].label for r in from_bytes.results], truth)
        self.assertEqual([r.labels[0].label for r in from_pixels.results], truth)
        self.assertEqual(from_file.results[0].labels[0], from_bytes.results[0].labels[0])

        embedded = self.client.embed("digits", np.stack(pixels))
        self.assertEqual(embedded.embeddings.shape, (3, 64))
        self.assertEqual(embedded.embeddings.dtype, np.float32)
        # The same digit as a preprocessed float32 tensor [1, 20, 20] gives the same
        # features.
        tensor = ((pixels[1] / 255.0 - MEAN) / STD).astype(np.float32)[None]
        from_tensor = self.client.embed("digits", tensor)
        np.testing.assert_allclose(from_tensor.embeddings[0], embedded.embeddings[1],
                                   atol=1e-4)
        normalized = self.client.embed("digits", pixels[0], l2_normalize=True)
        self.assertAlmostEqual(float(np.linalg.norm(normalized.embeddings[0])), 1.0,
                               places=5)

    def test_describe_health_and_models(self):
        metadata = self.client.describe("digits")
        self.assertEqual(metadata.feature_dim, 64)
        self.assertEqual((metadata.input.channels, metadata.input.height,
                          metadata.input.width), (1, 20, 20))
        self.assertEqual(list(metadata.heads[0].labels), [str(d) for d in range(10)])
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health("digits"), "SERVING")
        self.assertEqual([m.name for m in self.client.models().models], ["digits"])

    def test_errors_carry_the_servers_code_and_message(self):
        with self.assertRaises(HeadwayError) as unknown:
            self.client.classify("nonexistent", digit_cell(2))
        self.assertEqual(unknown.exception.code.name, "NOT_FOUND")
        self.assertIn("nonexistent", unknown.exception.message)
        with self.assertRaises(HeadwayError) as garbage:
            self.client.classify("digits", [png_bytes(digit_cell(2)), b"not an image"])
        self.assertEqual(garbage.exception.code.name, "INVALID_ARGUMENT")
        self.assertIn("input 1", garbage.exception.message)
        with self.assertRaises(HeadwayError) as not_admin:
            self.client.swap_head("digits", "parity", file="heads/parity.pt")
        self.assertEqual(not_admin.exception.code.name, "UNAUTHENTICATED")
        with self.assertRaises(ValueError):
            self.client.embed("digits", np.zeros((20, 20), dtype=np.int64))

    def test_swap_head_uploads_a_checkpoint_that_then_serves(self):
        parity = (MODEL_STORE / "digits" / "heads" / "parity.pt").read_bytes()
        swapped = self.admin.swap_head("digits", "evenodd", checkpoint=parity,
                                       labels=["even", "odd"])
        self.assertEqual(swapped.num_classes, 2)
        result = self.client.classify("digits", digit_cell(3507), head="evenodd", top_k=1)
        self.assertEqual(result.head, "evenodd")
        self.assertEqual(result.results[0].labels[0].label, "odd")  # a 7

    def test_remove_head_unload_and_load_model(self):
        parity = (MODEL_STORE / "digits" / "heads" / "parity.pt").read_bytes()
        self.admin.swap_head("digits", "shortlived", checkpoint=parity,
                             labels=["even", "odd"])
        self.client.classify("digits", digit_cell(2), head="shortlived")
        self.assertIsNone(self.admin.remove_head("digits", "shortlived"))
        with self.assertRaises(HeadwayError) as removed:
            self.client.classify("digits", digit_cell(2), head="shortlived")
        self.assertEqual(removed.exception.code.name, "NOT_FOUND")
        self.assertIn("shortlived", removed.exception.message)
        with self.assertRaises(HeadwayError) as default_head:
            self.admin.remove_head("digits", "digit")
        self.assertEqual(default_head.exception.code.name, "FAILED_PRECONDITION")
        with self.assertRaises(HeadwayError) as not_admin:
            self.client.unload_model("digits")
        self.assertEqual(not_admin.exception.code.name, "UNAUTHENTICATED")

        self.assertEqual(self.admin.unload_model("digits"), ["cpu"])
        try:
            with self.assertRaises(HeadwayError) as unloaded:
                self.client.classify("digits", digit_cell(2))
            self.assertEqual(unloaded.exception.code.name, "NOT_FOUND")
            states = {m.name: m.state for m in self.client.models().models}
            self.assertEqual(states.get("digits"), "UNLOADED")
        finally:
            status = self.admin.load_model("digits")
        self.assertEqual((status.name, status.device, status.state),
                         ("digits", "cpu", "READY"))
        self.assertEqual(status.feature_dim, 64)
        result = self.client.classify("digits", digit_cell(3507), top_k=1)
        self.assertEqual(result.results[0].labels[0].label, "7")
        with self.assertRaises(HeadwayError) as twice:
            self.admin.load_model("digits")
        self.assertEqual(twice.exception.code.name, "ALREADY_EXISTS")
        with self.assertRaises(HeadwayError) as missing:
            self.admin.load_model("no-such-model")
        self.assertEqual(missing.exception.code.name, "NOT_FOUND")

    def test_fit_head_from_pixels_and_labels(self):
        cells = [d * 500 + i for d in range(10) for i in range(5, 25)]
        pixels = [digit_cell(cell) for cell in cells]
        labels = ["even" if cell // 500 % 2 == 0 else "odd" for cell in cells]
        fitted = self.admin.fit_head("digits", "parity_py", pixels, labels)
        self.assertEqual(list(fitted.classes), ["even", "odd"])
        self.assertEqual(list(fitted.examples_per_class), [100, 100])
        self.assertGreater(fitted.validation_accuracy, 0.85)
        result = self.client.classify("digits", digit_cell(3507), head="parity_py", top_k=1)
        self.assertEqual(result.results[0].labels[0].label, "odd")
        with self.assertRaises(HeadwayError) as one_class:
            self.admin.fit_head("digits", "nope", pixels[:5], ["a"] * 5)
        self.assertEqual(one_class.exception.code.name, "INVALID_ARGUMENT")
        self.assertIn("at least two classes", one_class.exception.message)

    def test_fine_tune_job_writes_a_checkpoint_torch_loads_and_serves(self):
        cells = [d * 500 + i for d in range(5, 10) for i in range(0, 30)]
        pixels = [digit_cell(cell) for cell in cells]
        labels = [str(cell // 500) for cell in cells]
        job = self.admin.fine_tune("digits", pixels, labels, train_layers=["features.7"],
                                   learning_rate=0.005, epochs=3, batch_size=25,
                                   output_model="digits-py", serve=True)
        self.assertEqual(job.state, job.QUEUED)
        updates = list(self.client.watch_job(job.id))
        self.assertEqual([u.epoch for u in updates if u.epoch_done], [1, 2, 3])
        final = updates[-1]
        self.assertEqual(final.state, final.SUCCEEDED, final.error)
        self.assertTrue(final.serving)
        self.assertEqual(self.client.jobs()[0].id, job.id)
        import torch
        checkpoint = torch.load(self.store / final.checkpoint)
        self.assertEqual(checkpoint["epoch"], 3)
        self.assertEqual(checkpoint["class_to_idx"], {"5": 0, "6": 1, "7": 2, "8": 3, "9": 4})
        self.assertEqual(tuple(checkpoint["model_state_dict"]["head.weight"].shape), (5, 64))
        result = self.client.classify("digits-py", digit_cell(3450), top_k=1)
        self.assertEqual(result.results[0].labels[0].label, "6")
        with self.assertRaises(HeadwayError) as taken:
            self.admin.fine_tune("digits", pixels, labels, output_model="digits-py")
        self.assertEqual(taken.exception.code.name, "ALREADY_EXISTS")

    def test_open_inference_protocol_stubs_classify_as_the_readme_shows(self):
        import grpc
        with grpc.insecure_channel(self.server.target) as channel:
            stub = v2_grpc.GRPCInferenceServiceStub(channel)
            request = v2.ModelInferRequest(model_name="digits")
            image = request.inputs.add(name="images", datatype="BYTES", shape=[1])
            image.contents.bytes_contents.append(
                (MODEL_STORE.parent / "examples/images/seven.png").read_bytes())
            top3 = request.outputs.add(name="probabilities")
            top3.parameters["classification"].int64_param = 3
            response = stub.ModelInfer(request, timeout=60)
        elements = list(response.outputs[0].contents.bytes_contents)
        print("ModelInfer classification:", elements)
        self.assertEqual(response.outputs[0].datatype, "BYTES")
        self.assertEqual(len(elements), 3)
        score, index, label = elements[0].decode().split(":")
        self.assertEqual((index, label), ("7", "7"))
        self.assertGreater(float(score), 0.5)

    def test_open_inference_rest_binary_tensors_as_the_readme_shows(self):
        tensor = ((digit_cell(3507) / 255.0 - MEAN) / STD).astype(np.float32)[None, None]
        header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 20, 20],
                                         "datatype": "FP32",
                                         "parameters": {"binary_data_size": tensor.nbytes}}],
                             "parameters": {"binary_data_output": True}}).encode()
        with urllib.request.urlopen(urllib.request.Request(
                f"{self.server.http}/v2/models/digits/infer", data=header + tensor.tobytes(),
                headers={"Inference-Header-Content-Length": str(len(header))}),
                timeout=60) as reply:
            json_length = int(reply.headers["Inference-Header-Content-Length"])
            body = reply.read()
        outputs = json.loads(body[:json_length])["outputs"]
        self.assertEqual([o["name"] for o in outputs], ["embedding", "probabilities"])
        at = json_length
        arrays = {}
        for output in outputs:
            size = output["parameters"]["binary_data_size"]
            arrays[output["name"]] = np.frombuffer(body[at:at + size], np.float32)
            at += size
        self.assertEqual(at, len(body))
        self.assertEqual(int(arrays["probabilities"].argmax()), 7)
        np.testing.assert_allclose(arrays["embedding"],
                                   self.client.embed("digits", tensor[0]).embeddings[0],
                                   atol=1e-4)


class PythonClientFleetTest(unittest.TestCase):
    """One client over three replicas, named as a comma-separated list."""

    def test_a_list_of_replicas_takes_addresses_and_refuses_names(self):
        self.assertEqual(headway_client.channel_target("10.0.0.5:1,10.0.0.6:1"),
                         "ipv4:10.0.0.5:1,10.0.0.6:1")
        self.assertEqual(headway_client.channel_target("[::1]:1,[::2]:1"),
                         "ipv6:[::1]:1,[::2]:1")
        for target in ("127.0.0.1:50051", "dns:///headway:50051", "headway:50051"):
            self.assertEqual(headway_client.channel_target(target), target)
        for target in ("localhost:1,localhost:2", "10.0.0.5,10.0.0.6",
                       "10.0.0.5:1,[::1]:1"):
            with self.assertRaisesRegex(ValueError, "dns:///NAME:PORT"):
                HeadwayClient(target)

    def test_calls_spread_over_replicas_and_survive_one_killed(self):
        store = pathlib.Path(tempfile.mkdtemp(prefix="headway-py-fleet-"))
        shutil.copytree(MODEL_STORE / "digits", store / "digits")
        servers = [Server(store) for _ in range(3)]
        try:
            client = HeadwayClient(",".join(s.target for s in servers), timeout=60)
            seven = png_bytes(digit_cell(3507))
            for _ in range(30):
                result = client.classify("digits", seven, top_k=1)
                self.assertEqual(result.results[0].labels[0].label, "7")
            served = [s.classify_calls_served() for s in servers]
            self.assertEqual(sum(served), 30)
            self.assertTrue(all(count > 0 for count in served), served)

            # Four callers for 3 s; one replica is killed after 1 s. Calls it had
            # fail over to the others (UNAVAILABLE is retried), and none fails.
            errors, answered = [], []
            def call_for(seconds: float):
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    try:
                        client.classify("digits", seven, top_k=1)
                        answered.append(1)
                    except HeadwayError as error:
                        errors.append(error.code.name)
            callers = [threading.Thread(target=call_for, args=(3.0,)) for _ in range(4)]
            for caller in callers:
                caller.start()
            time.sleep(1.0)
            servers[1].process.kill()
            for caller in callers:
                caller.join()
            self.assertEqual(errors, [])
            self.assertGreater(len(answered), 0)
            client.close()
        finally:
            for server in servers:
                server.stop()
            shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
