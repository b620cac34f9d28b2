# syntax=docker/dockerfile:1
# pipgate container image: a static binary on distroless, non-root.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t pipgate .
#   docker run -p 8080:8080 -v pipgate-data:/data pipgate
#
# The build step is the README's `go build -trimpath ./cmd/pipgate`, made static
# (CGO_ENABLED=0) and stamped with the version.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that source edits do not refetch them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pipgate ./cmd/pipgate \
 && mkdir -p /out/data

# busybox's musl build is statically linked: its wget is the HEALTHCHECK probe,
# because distroless has no shell, curl or wget and pipgate has no health
# subcommand. It is the only file taken from this image.
FROM busybox:1.36.1-musl AS probe

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot (65532); no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pipgate /pipgate
COPY --from=probe /bin/busybox /bin/busybox
COPY deploy/docker/pipgate.yaml deploy/docker/policy.yaml /etc/pipgate/
# An empty /data owned by nonroot, so that a new named volume inherits the owner.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data", "/etc/pipgate"]
# 8080: the index (PIP_INDEX_URL=http://HOST:8080/simple/), /metrics, /-/status.
# 3128: egress mode (HTTPS_PROXY), when egress.listen is set.
EXPOSE 8080 3128
# /healthz on the listener of deploy/docker/pipgate.yaml; change both together.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/pipgate"]
CMD ["serve", "--config", "/etc/pipgate/pipgate.yaml"]
