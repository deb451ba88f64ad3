"""The world around the service: the DeepVerse6G-format digital twin (twin/), the scenario checks
and reader (scenario.py), the dataset cache (dataset.py), the replay (recording, player, scorer,
probe, report, replay.py), the synthetic load (loadgen.py), the xApp as a child process
(spawn.py) and the benchmarks (bench/).

Uses the xApp's public pieces only: its codec (to build messages), its inference backends (to
time them), and its embedded Redis."""
