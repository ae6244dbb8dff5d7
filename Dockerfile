# syntax=docker/dockerfile:1
# One image for the four services and the fake Intercom: static binaries (no cgo) on distroless,
# running as a non-root user. docker-compose.yml runs each binary by its path, e.g.
#   docker run --rm threadline:local /usr/local/bin/linker -print-config
# The image has no shell; its health check is the binary itself: `<binary> -healthcheck`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
    ./ingest ./linker ./notewriter ./summarizer ./cmd/fakeintercom

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
# 8080: ingest's capture endpoint and webhook receiver; 9100: the admin port in docker-compose.yml.
EXPOSE 8080 9100
