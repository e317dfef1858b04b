# The command index of outbound. CI runs `make test` (see .ci/run).
GO      ?= go
BIN     := bin/outbound
CONFIG  ?=

.PHONY: build run test deps check fuzz bench cover clean interop screenshots

build:
	$(GO) build -o $(BIN) ./cmd/outbound

## run: build and start the relay on its embedded defaults (data in ./data).
run: build
	./$(BIN) serve $(if $(CONFIG),-config $(CONFIG))

## deps: install what the end-to-end tests drive (swaks, python3, Debian's chromium) with apt.
deps:
	@./scripts/install-test-deps.sh

## test: vet, unit and integration tests, then end-to-end tests against the built binary.
test: deps build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	cd third_party/go-smtp && $(GO) vet . && $(GO) test -race -count=1 .

## interop: real clients (Nodemailer, smtplib, Django, PHPMailer, Ruby mail, Jakarta Mail,
## swaks, msmtp) send through the built binary on both listeners (docs/clients.md).
interop: build
	@./scripts/install-interop-deps.sh
	./interop/run.sh

## screenshots: PNGs of the web interface's main pages at desktop (1280x800) and phone
## (390x844) width, from a relay seeded with demo data, into docs/screenshots/. It is
## e2e's TestBrowserMainPages, which also checks that every page fits both widths.
screenshots: deps build
	$(GO) test -count=1 -run '^TestBrowserMainPages$$' ./e2e -screenshots $(CURDIR)/docs/screenshots

## check: formatting and vet, without running tests.
check:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt needed"; exit 1)
	$(GO) vet ./...

## fuzz: run each fuzz target briefly (FUZZTIME per target).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
	@for f in FuzzPatchedDataReader FuzzPatchedDotWriter; do \
	  echo "== third_party/go-smtp $$f"; (cd third_party/go-smtp && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) .) || exit 1; \
	done

## bench: Go benchmarks of the hot paths (queue group commit, quota), then the
## end-to-end load generator against the built binary (results in BENCH.md).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./queue ./quota
	$(GO) run ./bench -outbound $(BIN) -matrix

cover:
	$(GO) test -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf bin cover.out
