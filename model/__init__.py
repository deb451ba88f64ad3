"""The WMFM model: CSI and camera encoders (encoders.py), contrastive pretraining (wmfm.py, loss.py,
train.py), heads and the E2E baseline (heads.py), the WMFM-vs-E2E experiment and its report
(experiment.py, report.py), and the export to ONNX (graphs.py, export.py, fp16.py).

Reads dataset caches (wmfm.cache); never imports `sim` or `xapp`."""
