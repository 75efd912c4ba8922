"""The read side: the projector runtime and one module per read model."""
