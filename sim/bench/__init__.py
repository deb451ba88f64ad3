"""Benchmarks (`wmfm bench twin|model|xapp`): scripts that print figures and write JSON + PNG,
each with its baseline measured in the same run."""
