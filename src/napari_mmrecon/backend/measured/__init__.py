"""Measured images before they meet a simulation: levelling, resampling, cropping, calibration."""
