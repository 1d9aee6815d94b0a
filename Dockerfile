# Pier's image: pier-controller, pier-speaker and pier-relay, static, on an
# empty base, user nonroot (65532). No entrypoint: the manifests name the
# binary in each container's command.
#
# Base images are arguments so that a site without internet access builds
# from its own registry:
#   docker build --build-arg GO_IMAGE=registry.example.internal/library/golang:1.26 \
#     -t registry.example.internal/pier/pier:v0.1.0 .
# Without a Docker engine, `make image` builds the same image (hack/image).
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
# GOPROXY and GOFLAGS may point at a site proxy.
ARG GOPROXY
ARG GOFLAGS
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH:-amd64} \
    go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/pier-controller ./cmd/pier-speaker ./cmd/pier-relay
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/nonroot /rootfs/usr/local/bin && \
    chmod 1777 /rootfs/tmp && chown 65532:65532 /rootfs/home/nonroot && chmod 700 /rootfs/home/nonroot && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group && \
    cp /out/pier-controller /out/pier-speaker /out/pier-relay /rootfs/usr/local/bin/

FROM ${BASE_IMAGE}
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 65532:65532
LABEL org.opencontainers.image.title=pier \
      org.opencontainers.image.source=https://github.com/pier-lb/pier
