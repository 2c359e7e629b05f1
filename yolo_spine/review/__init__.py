"""Review: validation curves for boxes and masks, best-F1 confidence, a pycocotools cross-check and an HTML report."""
