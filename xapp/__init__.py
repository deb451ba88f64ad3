"""The near-RT RIC xApp: what its container image runs, and nothing else.

    transport.py (ZeroMQ in) -> codec.py -> sync.py -> batch.py -> inference/ -> sink.py (Redis out)
    app.py wires them (start-up, the loop, drain); status.py serves HTTP; controls.py is its config.

Imports `wmfm.model` only in the torch backend (inference/torch_backend.py); the tools that
drive and measure it (replay, load generator, benchmarks) are in `wmfm.sim`."""
