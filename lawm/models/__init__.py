"""Models: layers, the frozen encoder, the inverse dynamics model and the world model."""
