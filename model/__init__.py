"""WMFM model (encoders, contrastive pretraining, heads, E2E baseline): built by the model issue."""
