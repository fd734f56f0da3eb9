# Headway server, CPU image. Debian packages only.
#   docker build --network host -t headway:cpu .
#   docker run --network host headway:cpu        # gRPC :50051, HTTP :8000, metrics :8002
# Stage 1 builds the binaries; stage 2 holds them, the shared libraries they link
# (found with ldd and mapped to their Debian packages) and the bundled model store:
# no compiler, no headers.
# The final stage's base; deploy/smoke-test.sh passes a local copy on machines whose
# imported base image has an unreadable root folder.
ARG RUNTIME_BASE=debian:bookworm-slim

FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config libtorch-dev libopenblas0-serial \
      libgrpc++-dev \
      protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev \
      libjpeg-dev libpng-dev libwebp-dev libssl-dev \
      prometheus-cpp-dev libcpp-httplib-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY model_store model_store
COPY server server
COPY client client
COPY bench bench
COPY version version
# The sources here have no .git: the binaries' --version reports the commit passed in.
ARG HEADWAY_REVISION=unknown
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEADWAY_BUILD_TESTS=OFF \
      -DHEADWAY_COMMIT="${HEADWAY_REVISION}" \
    && cmake --build /build --target headway_server headway headway_loadgen \
    && mkdir -p /out/bin \
    && cp /build/server/headway_server /build/client/headway /build/client/headway_loadgen \
          /out/bin/ \
    && strip /out/bin/* \
    && for lib in $(ldd /out/bin/* | awk '/=> \// {print $3}' | sort -u); do \
         dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" \
           || dpkg -S "/usr$lib"; \
       done | cut -d: -f1 | sort -u > /out/runtime-packages

FROM ${RUNTIME_BASE}
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends $(cat /tmp/runtime-packages) \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
    && useradd --system --uid 10001 --home-dir /srv/headway headway
COPY --from=build /out/bin/ /usr/local/bin/
COPY --chown=headway:headway models /srv/headway/models
USER headway
WORKDIR /srv/headway
EXPOSE 50051 8002 8000
# OCI labels; HEADWAY_VERSION is the top CMakeLists.txt's version (a test checks they
# agree), HEADWAY_REVISION the git commit when the builder passes it.
ARG HEADWAY_VERSION=0.5.0
ARG HEADWAY_REVISION=unknown
LABEL org.opencontainers.image.title="Headway" \
      org.opencontainers.image.description="gRPC inference and feature-extraction server for PyTorch models (CPU)" \
      org.opencontainers.image.version="${HEADWAY_VERSION}" \
      org.opencontainers.image.revision="${HEADWAY_REVISION}" \
      org.opencontainers.image.licenses="MIT"
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["headway", "--target=unix:/tmp/headway.sock", "--timeout=2s", "health"]
# The health check asks over the server's local socket (plaintext, inside the
# container), so it follows whatever --port and TLS flags are added to these.
ENTRYPOINT ["headway_server", "--model_store=/srv/headway/models", "--port=50051", \
            "--metrics_address=0.0.0.0:8002", "--drain_delay=5s", "--shutdown_grace=20s", \
            "--local_socket=/tmp/headway.sock"]
