.PHONY: demo test setup
demo:   ## set up and train the built-in default (MiniLM on built-in pairs)
	bash scripts/demo.sh
test:   ## set up (dev) and run ruff + the test suite
	bash scripts/test.sh
setup:
	bash scripts/setup.sh --dev
