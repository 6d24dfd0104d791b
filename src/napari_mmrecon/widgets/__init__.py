"""napari dock widgets: the only code of the package that touches napari and Qt (with the thin
npe2 entry points ``_reader``, ``_writer``, ``_sample_data``, and ``console.add_layers``, which
imports napari only when called)."""
