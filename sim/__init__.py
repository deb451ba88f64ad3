"""Simulation side: the DeepVerse6G-format digital twin, the DeepVerse6G reader and cache,
and (later) the replay simulator that plays a scenario into the xApp."""
