"""WMFM xApp: a near-RT RIC xApp serving a Wireless Multimodal Foundation Model.

The top-level folders install under this namespace: ``wmfm.sim``, ``wmfm.model``,
``wmfm.xapp``, ``wmfm.proto``. This package itself holds only what they share: the
command line (``wmfm.cli``) and typed configuration loading (``wmfm.config``).
"""

__version__ = "0.1.0"
