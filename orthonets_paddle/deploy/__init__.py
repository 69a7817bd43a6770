"""Deployment: export (Paddle Inference, ONNX), predictors for every backend, image
inference and throughput benchmarks. Imports models and data, never the engine."""
