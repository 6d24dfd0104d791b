"""The jobs that the command line and the widgets share, without napari or Qt: simulate, fit, their
outputs and reports, the layer data (arrays with scale and metadata) they exchange with napari, and
the job protocol (progress, partial results, cancel)."""
