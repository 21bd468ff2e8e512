# Builds every ecrm binary on Debian bookworm with the project's own dependency script, then
# ships them in a slim image with only the shared libraries they need.
#   docker build -t ecrm .
#   docker run ecrm ecrm-infostore --help
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh
COPY . .
RUN ECRM_BUILD_DIR=/build bash scripts/build.sh -DECRM_BUILD_TESTS=OFF \
 && cmake --install /build --prefix /opt/ecrm

FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --runtime && rm /tmp/install-deps.sh \
 && useradd --system --uid 10001 --home /var/lib/ecrm --create-home ecrm
COPY --from=build /opt/ecrm/bin/ /usr/local/bin/
USER 10001
WORKDIR /var/lib/ecrm
# Containers listen on all interfaces; the binaries default to loopback.
ENV ECRM_GRPC_ADDRESS=0.0.0.0:50051 ECRM_METRICS_ADDRESS=0.0.0.0:9100
EXPOSE 50051 9100
CMD ["ecrm-infostore"]
