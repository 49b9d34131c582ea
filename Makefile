# Developer shortcuts. Each target builds in its own scratch directory, so
# that sanitizer and plain builds do not invalidate each other.

SWIFT ?= swift

.PHONY: tsan test-memoryfile

# The multi-threaded tests under ThreadSanitizer; any report fails the run:
# the MemoryFile suite (reclaimer, evictions, pressure listener, stress), the
# checkpoint round trips (save and restore pipelines), the lazy restores
# (loader threads, fault handler, the randomized model test), the read-ahead
# of objects (ReadAheadTests, on an input in memory), the signed and
# encrypted round trips (frames opened and their digests recorded by the
# workers and loaders), signed encrypted chains (a lazy loader opening a
# parent's frames), the thread that syncs a checkpoint as it is written
# (BackgroundSyncTests), restore writes from several threads with
# UFFDIO_COPY (UffdCopyTargetTests) and the page hashers a pool lends to
# the threads that verify frames (PageHasherTests). The segment set is
# single-threaded; its long model tests gain nothing here.
TSAN_FILTER ?= PGAllocTests.MemoryFile|CheckpointTests.RoundTripTests|CheckpointTests.LazyRestore|CheckpointTests.ReadAheadTests|CheckpointTests.SecurityRoundTripTests|CheckpointTests.SecureChainTests|CheckpointTests.BackgroundSyncTests|CheckpointTests.UffdCopyTargetTests|CheckpointTests.SpillArrayTests|CheckpointTests.PageHasherTests
tsan:
	TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" $(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter '$(TSAN_FILTER)'

# The MemoryFile tests alone, in a debug build.
test-memoryfile:
	$(SWIFT) test --scratch-path .build-mftests --filter PGAllocTests.MemoryFile

# Fuzzing the checkpoint reader (Fuzz/, libFuzzer + AddressSanitizer, in
# its own scratch directory). `fuzz` runs FUZZ_MINUTES minutes (default 5)
# of a release build; `fuzz-short`, one minute, is what scripts/test.sh
# runs, of a debug build: it builds in a third of the time (3 min against
# 10 on 2 cores, BoringSSL included) and runs at 80% of the release
# build's executions per second, whose cost is mostly the reader's set-up.
# Seeds come from fixtures/; see fixtures/README.md.
FUZZ_MINUTES ?= 5
FUZZ_SCRATCH = Fuzz/.build-fuzz
FUZZ_CONFIG ?= release

.PHONY: fuzz fuzz-short fuzz-build fixtures

fuzz-build:
	$(SWIFT) build -c $(FUZZ_CONFIG) --package-path Fuzz --scratch-path $(FUZZ_SCRATCH) --product CheckpointFuzzer --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address

fuzz: fuzz-build
	FUZZ_CONFIG=$(FUZZ_CONFIG) scripts/fixtures/fuzz.sh $$(( $(FUZZ_MINUTES) * 60 ))

fuzz-short:
	$(MAKE) fuzz-build FUZZ_CONFIG=debug
	FUZZ_CONFIG=debug scripts/fixtures/fuzz.sh 60

# Writes the fixtures of fixtures/v1 that are missing (never rewrites a
# committed one: it fails instead if one would change).
fixtures:
	PGSNAP_REGENERATE_FIXTURES=1 $(SWIFT) test --scratch-path .build-fix --filter FixtureGeneratorTests/testRegenerateFixtures

