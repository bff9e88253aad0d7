# The token broker image (and, as target `emulator`, the Anypoint emulator
# for the dev overlay). Build from the repository root:
#   docker build -t token-broker .
#   docker build --target emulator -t token-broker:dev-emulator .
# scripts/check-image-deps (CI) checks that the runtime stage installs every
# library the binary links.

# ---- build: Debian 12 with the project's own dependency script ----
# (--build-only: the compiler, CMake and the libraries' -dev packages; no
# test, sanitizer, plotting or manifest-checking tools.)
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DTOKENBROKER_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target token-broker anypoint-emulator \
 && strip /build/service/token-broker /build/emulator/anypoint-emulator

# ---- runtime-base: only the shared libraries and CA certificates ----
FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 \
      libcpp-httplib0.11 \
      libcurl4 \
      libgrpc++1.51 \
      libgrpc29 \
      libhiredis0.14 \
      libprometheus-cpp-core1.0 \
      libprotobuf32 \
      libssl3 \
      libyaml-cpp0.7 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 broker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin broker
# Numeric, so that runAsNonRoot can verify it. Nothing is written at run
# time: the root filesystem can be read-only.
USER 10001:10001

# ---- emulator (dev only) ----
FROM runtime-base AS emulator
COPY --from=build /build/emulator/anypoint-emulator /usr/local/bin/anypoint-emulator
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/anypoint-emulator"]

# ---- token-broker (the default target) ----
FROM runtime-base AS token-broker
COPY --from=build /build/service/token-broker /usr/local/bin/token-broker
# gRPC API, admin HTTP (/metrics, /healthz, /readyz).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/token-broker"]
CMD ["--config=/etc/token-broker/broker.yaml"]
