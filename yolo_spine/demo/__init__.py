"""The one-command demo: real CT → DRRs and slices → train → review → predict → lift → eval3d."""
