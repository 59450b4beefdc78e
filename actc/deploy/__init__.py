"""Deployment: how actc's outputs run in Paddle Inference, measured (``actc bench``)."""
