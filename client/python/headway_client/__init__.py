"""Python client for a Headway server (headway.v1 over gRPC).

    from headway_client import HeadwayClient
    client = HeadwayClient("127.0.0.1:50051")
    client.classify("digits", ["seven.png"])          # top-5 labels per image
    client.embed("digits", numpy_pixels)               # numpy array [N, D]
    client.describe("digits")                          # what the model takes and gives

Inputs, one or many: a path to an image file, encoded image bytes (JPEG, PNG, BMP,
WebP), or a numpy array: uint8 pixels [H, W] or [H, W, C] (RGB), preprocessed as an
image is, or float32 [C, H, W], the model's input as it is. A numpy array with one
more dimension is a batch of them (a 3-d uint8 array is one image when its last
dimension is 1 or 3, else a batch of grey images).

A target may name several replicas (a comma-separated list, or a name resolving to
several): calls spread over those that are SERVING and are retried on UNAVAILABLE.

Errors raise HeadwayError with the server's gRPC status code and message.
Needs Debian's python3-grpcio, python3-protobuf and python3-numpy; the stubs under
headway_client._proto are generated from proto/ by generate_stubs.py.

A client is thread-safe (gRPC channels and stubs are).
"""
from headway_client.client import (
    Classification,
    ClassifyResult,
    EmbedResult,
    HeadwayClient,
    HeadwayError,
    ScoredLabel,
    channel_target,
    service_config,
)

__all__ = [
    "Classification",
    "ClassifyResult",
    "EmbedResult",
    "HeadwayClient",
    "HeadwayError",
    "ScoredLabel",
    "channel_target",
    "service_config",
]
