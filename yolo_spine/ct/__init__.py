"""CT to 2D: CT/CBCT volumes become slices and DRR projections with polygons and sidecars in the volume's geometry."""
