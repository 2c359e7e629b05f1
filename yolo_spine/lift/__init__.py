"""Lifting: 2D instances back into the volume (slice stacks fused across planes; DRR views triangulated)."""
