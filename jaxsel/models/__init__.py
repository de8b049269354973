"""Response models: pure-functional Flax modules whose parameters are plain pytrees."""
