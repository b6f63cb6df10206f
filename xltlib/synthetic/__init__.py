"""The synthetic profile's encoders: their recipe, pre-training stages, build rule, shipped set and calibration."""
