"""HeadwayClient: embed, classify, describe, head and model management, fit-head,
fine-tuning jobs and health over headway.v1."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import pathlib
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import grpc
import numpy as np

from headway_client._proto.grpc.health.v1 import health_pb2, health_pb2_grpc
from headway_client._proto.headway.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)

Input = Union[str, os.PathLike, bytes, np.ndarray]


class HeadwayError(Exception):
    """A call the server (or the connection) refused: `code` is a grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class ScoredLabel:
    label: str
    index: int
    score: float


@dataclasses.dataclass(frozen=True)
class Classification:
    labels: List[ScoredLabel]  # best first


@dataclasses.dataclass(frozen=True)
class ClassifyResult:
    model: str
    model_version: int
    head: str
    head_version: int
    device: str
    results: List[Classification]  # one per input, in order


@dataclasses.dataclass(frozen=True)
class EmbedResult:
    model: str
    model_version: int
    device: str
    embeddings: np.ndarray  # float32 [N, D], one row per input


def _tensor_input(array: np.ndarray) -> inference_pb2.Input:
    if array.dtype == np.uint8:
        dtype = inference_pb2.UINT8
    elif array.dtype == np.float32:
        dtype = inference_pb2.FLOAT32
    else:
        raise ValueError(
            f"numpy inputs must be uint8 pixels or float32 tensors, not {array.dtype}")
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return inference_pb2.Input(
        tensor=inference_pb2.Tensor(dtype=dtype, shape=list(array.shape),
                                    data=data.tobytes()))


def _to_inputs(inputs: Union[Input, Sequence[Input]]) -> List[inference_pb2.Input]:
    """Wire inputs from paths, bytes or numpy arrays (a batch when one dimension more)."""
    if isinstance(inputs, np.ndarray):
        # uint8 [H, W] or [H, W, C] (C = 1 or 3) is one image; float32 [C, H, W] one
        # tensor; anything with a leading dimension more is a batch of them.
        single = (inputs.dtype == np.uint8 and (
            inputs.ndim == 2 or (inputs.ndim == 3 and inputs.shape[-1] in (1, 3)))) or (
                inputs.dtype == np.float32 and inputs.ndim == 3)
        return [_tensor_input(inputs)] if single else [_tensor_input(a) for a in inputs]
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    wire = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            wire.append(_tensor_input(item))
        elif isinstance(item, bytes):
            wire.append(inference_pb2.Input(image=item))
        elif isinstance(item, (str, os.PathLike)):
            wire.append(inference_pb2.Input(image=pathlib.Path(item).read_bytes()))
        else:
            raise TypeError(f"an input is a path, image bytes or a numpy array, "
                            f"not {type(item).__name__}")
    if not wire:
        raise ValueError("give at least one input")
    return wire


def channel_target(target: str) -> str:
    """gRPC's name for `target`: a comma-separated list of replicas
    ("10.0.0.1:50051,10.0.0.2:50051") becomes an ipv4: (or ipv6:) list; any other
    target ("host:port", "dns:///headway:50051") is used as given. ValueError for a
    list that names a host (gRPC's lists take addresses only)."""
    if "," not in target or "://" in target or \
            target.startswith(("ipv4:", "ipv6:", "dns:", "unix:")):
        return target
    ipv6 = target.startswith("[")
    for replica in filter(None, (part.strip() for part in target.split(","))):
        host, colon, _ = replica.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        try:
            version = ipaddress.ip_address(host[1:-1] if bracketed else host).version
        except ValueError:
            version = 0
        if not colon or bracketed != ipv6 or version != (6 if ipv6 else 4):
            raise ValueError(
                f"a list of replicas names each by {'[IPv6]:port' if ipv6 else 'IP:port'}"
                f", and {replica[:100]!r} is not; for replicas behind one name, give the "
                f"name alone (dns:///NAME:PORT resolves to every address)")
    return ("ipv6:" if ipv6 else "ipv4:") + target


def service_config(serving_only: bool = True) -> str:
    """The channel's service config, the one Headway's C++ client compiles in
    (service_config.json beside this file): calls spread round robin over every
    address the target resolves to; Embed, Classify and health checks retried on
    UNAVAILABLE (what a replica that went away answers). With `serving_only`, gRPC's
    client-side health checking keeps calls off replicas whose health is not SERVING
    (loading or draining)."""
    config = json.loads((pathlib.Path(__file__).parent / "service_config.json").read_text())
    if serving_only:
        config["healthCheckConfig"] = {"serviceName": ""}
    return json.dumps(config)


class HeadwayClient:
    """A connection to one Headway server, or to several replicas: a comma-separated
    list of addresses, or a name that resolves to several ("dns:///headway:50051", a
    headless Service). Calls spread over the replicas that are SERVING and are retried
    on another when one goes away. Management calls go to one replica each; with
    `persist=True` the shared store carries a change to every replica."""

    def __init__(self, target: str = "127.0.0.1:50051", *, timeout: float = 30.0,
                 admin_token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None,
                 wait_for_ready: bool = True,
                 serving_only: bool = True,
                 max_message_bytes: int = 64 << 20):
        """`timeout` bounds each call (seconds). `admin_token` is sent as a bearer token
        on the calls that change what is served. `root_certificates` (PEM) turns on
        TLS. With `wait_for_ready`, calls wait (within `timeout`) for a server that is
        starting instead of failing at once. With `serving_only`, calls go only to
        replicas whose health is SERVING (off: to any that accepts connections)."""
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.service_config", service_config(serving_only)),
                   ("grpc.enable_retries", 1)]
        target = channel_target(target)
        if root_certificates is not None:
            self._channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._timeout = timeout
        self._admin_token = admin_token
        self._wait_for_ready = wait_for_ready
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._management = management_pb2_grpc.ManagementServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "HeadwayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, admin: bool = False):
        metadata = []
        if admin and self._admin_token:
            metadata.append(("authorization", f"Bearer {self._admin_token}"))
        try:
            return method(request, timeout=self._timeout, metadata=metadata,
                          wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as error:
            raise HeadwayError(error.code(), error.details() or "") from None

    def embed(self, model: str, inputs: Union[Input, Sequence[Input]], *,
              l2_normalize: bool = False, device: str = "") -> EmbedResult:
        """Backbone features, one row per input."""
        response = self._call(self._inference.Embed, inference_pb2.EmbedRequest(
            model=model, inputs=_to_inputs(inputs), l2_normalize=l2_normalize,
            device=device))
        embeddings = np.array([list(e.values) for e in response.embeddings],
                              dtype=np.float32).reshape(-1, response.dimension)
        return EmbedResult(response.model, response.model_version, response.device,
                           embeddings)

    def classify(self, model: str, inputs: Union[Input, Sequence[Input]], *,
                 head: str = "", top_k: int = 5, device: str = "") -> ClassifyResult:
        """The top_k labels of each input from `head` (the default head when empty)."""
        response = self._call(self._inference.Classify, inference_pb2.ClassifyRequest(
            model=model, head=head, inputs=_to_inputs(inputs), top_k=top_k,
            device=device))
        results = [Classification([ScoredLabel(l.label, l.index, l.score)
                                   for l in r.labels]) for r in response.results]
        return ClassifyResult(response.model, response.model_version, response.head,
                              response.head_version, response.device, results)

    def describe(self, model: str) -> inference_pb2.GetModelMetadataResponse:
        """What the model takes and gives: input spec, heads and labels, batching."""
        return self._call(self._inference.GetModelMetadata,
                          inference_pb2.GetModelMetadataRequest(model=model))

    def swap_head(self, model: str, head: str, *, file: str = "",
                  checkpoint: Union[bytes, str, os.PathLike, None] = None,
                  labels: Iterable[str] = (), labels_file: str = "",
                  key_prefix: str = "", persist: bool = False,
                  device: str = "") -> management_pb2.HotSwapHeadResponse:
        """Replaces (or adds) `head`: from `file` (a path inside the model's folder on
        the server) or `checkpoint` (bytes, or a local file uploaded). Needs the admin
        token."""
        if bool(file) == (checkpoint is not None):
            raise ValueError("give exactly one of file and checkpoint")
        request = management_pb2.HotSwapHeadRequest(
            model=model, head=head, labels=list(labels), labels_file=labels_file,
            key_prefix=key_prefix, persist=persist, device=device)
        if file:
            request.file = file
        elif isinstance(checkpoint, bytes):
            request.checkpoint = checkpoint
        else:
            request.checkpoint = pathlib.Path(checkpoint).read_bytes()
        return self._call(self._management.HotSwapHead, request, admin=True)

    def remove_head(self, model: str, head: str, *, persist: bool = False) -> None:
        """Stops serving `head` (any head but the default); with `persist` the model
        store drops it too. Needs the admin token."""
        self._call(self._management.RemoveHead, management_pb2.RemoveHeadRequest(
            model=model, head=head, persist=persist), admin=True)

    def load_model(self, model: str, *, device: str = "") -> management_pb2.ModelStatus:
        """Loads a folder of the server's model store (on `device`, or the one its
        config names) and returns its status once it serves. Needs the admin token."""
        return self._call(self._management.LoadModel, management_pb2.LoadModelRequest(
            model=model, device=device), admin=True).status

    def unload_model(self, model: str, *, device: str = "") -> List[str]:
        """Stops serving `model` on `device` (every device when empty) and returns the
        devices unloaded. Needs the admin token."""
        return list(self._call(self._management.UnloadModel,
                               management_pb2.UnloadModelRequest(model=model,
                                                                 device=device),
                               admin=True).devices)

    def fit_head(self, model: str, head: str, inputs: Sequence[Input],
                 labels: Sequence[str], *, classes: Sequence[str] = (),
                 l2: float = 0.0, replace: bool = False, persist: bool = False,
                 validation_fraction: float = 0.0,
                 seed: int = 0) -> management_pb2.FitHeadResponse:
        """Fits a new head on labelled examples (images, files or arrays, one label
        each) and installs it; the response reports accuracy, loss and timings. Needs
        the admin token."""
        request = management_pb2.FitHeadRequest(
            model=model, head=head, inputs=_to_inputs(list(inputs)), labels=list(labels),
            classes=list(classes), l2=l2, replace=replace, persist=persist,
            validation_fraction=validation_fraction, seed=seed)
        return self._call(self._management.FitHead, request, admin=True)

    def fine_tune(self, model: str, inputs: Sequence[Input] = (),
                  labels: Sequence[str] = (), *, examples_dir: str = "",
                  classes: Sequence[str] = (), train_layers: Sequence[str] = (),
                  train_all: bool = False, optimizer: str = "sgd",
                  learning_rate: float = 0.0, momentum: Optional[float] = None,
                  weight_decay: float = 0.0, epochs: int = 0, batch_size: int = 0,
                  horizontal_flip: bool = False, seed: int = 0,
                  validation_fraction: float = 0.0, output_model: str = "",
                  head: str = "", serve: bool = False) -> management_pb2.Job:
        """Starts a fine-tuning job on labelled examples (inputs with labels, or an
        ImageFolder `examples_dir` inside the server's model store) and returns it
        queued; follow it with watch_job. 0 / "" take the server's defaults. Needs the
        admin token."""
        if optimizer not in ("sgd", "adam"):
            raise ValueError("optimizer must be sgd or adam")
        request = management_pb2.StartFineTuneRequest(
            model=model, inputs=_to_inputs(list(inputs)) if len(inputs) else [],
            labels=list(labels), examples_dir=examples_dir, classes=list(classes),
            train_layers=list(train_layers), train_all=train_all,
            optimizer=(management_pb2.StartFineTuneRequest.ADAM if optimizer == "adam"
                       else management_pb2.StartFineTuneRequest.SGD),
            learning_rate=learning_rate, weight_decay=weight_decay, epochs=epochs,
            batch_size=batch_size, horizontal_flip=horizontal_flip, seed=seed,
            validation_fraction=validation_fraction, output_model=output_model,
            head=head, serve=serve)
        if momentum is not None:
            request.momentum = momentum
        return self._call(self._management.StartFineTune, request, admin=True).job

    def job(self, job_id: str) -> management_pb2.Job:
        """A fine-tuning job as it is now."""
        return self._call(self._management.GetJob, management_pb2.GetJobRequest(id=job_id))

    def watch_job(self, job_id: str) -> Iterator[management_pb2.Job]:
        """The job now, then each change until it ends (no deadline)."""
        try:
            yield from self._management.WatchJob(
                management_pb2.GetJobRequest(id=job_id),
                wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as error:
            raise HeadwayError(error.code(), error.details() or "") from None

    def cancel_job(self, job_id: str) -> management_pb2.Job:
        """Stops a queued or running job. Needs the admin token."""
        return self._call(self._management.CancelJob,
                          management_pb2.CancelJobRequest(id=job_id), admin=True)

    def jobs(self) -> List[management_pb2.Job]:
        """The server's fine-tuning jobs, newest first."""
        return list(self._call(self._management.ListJobs,
                               management_pb2.ListJobsRequest()).jobs)

    def models(self) -> management_pb2.ListModelsResponse:
        """Every model instance with its state and heads."""
        return self._call(self._management.ListModels, management_pb2.ListModelsRequest())

    def health(self, service: str = "") -> str:
        """The standard gRPC health status of the server ("") or of a model:
        "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health.Check,
                              health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
