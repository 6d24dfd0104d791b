"""Measurements of a magnetization state: the stray field above or below the film, MFM (tips,
cantilever, frequency shift and phase), and the measurement operators that map a state to an image."""
