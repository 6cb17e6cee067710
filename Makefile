# Thin wrapper over the go commands; .ci/run is what CI runs.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test check run bench
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/codingbrain ./cmd/codingbrain
test:
	go test ./...
check:
	bash .ci/run
run:
	go run ./cmd/codingbrain serve
bench:
	go test -run '^$$' -bench . -benchtime 2000x ./internal/store/...
