"""Reading, validating, splitting and enumerating demonstration episodes (HDF5, agilex layout)."""
