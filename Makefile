# Thin wrapper over the go commands; .ci/run is what CI runs.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(REVISION)

.PHONY: build test check run bench image
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/codingbrain ./cmd/codingbrain
test:
	go test ./...
check:
	bash .ci/run
run:
	go run ./cmd/codingbrain serve
# image builds the FROM scratch server image (deploy/Dockerfile) with podman
# or docker: IMAGE=codingbrain:dev by default.
IMAGE ?= codingbrain:dev
image:
	VERSION=$(VERSION) REVISION=$(REVISION) deploy/build-image.sh -t $(IMAGE)
bench:
	go test -run '^$$' -bench . -benchtime 2000x ./internal/store/...
