"""Adding layer data tuples to a viewer all together or not at all."""

from __future__ import annotations

from napari.layers import Layer


def add_layers(viewer, layer_data: list[tuple]) -> list[Layer]:
    """Create every layer of ``layer_data`` (``(data, kwargs, layer_type)`` tuples), then add them.

    A tuple that napari rejects raises before any layer is added; if adding fails midway, the
    layers added so far are removed again. Returns the added layers.
    """
    layers = [Layer.create(data, dict(kwargs), layer_type) for data, kwargs, layer_type in layer_data]
    added = []
    try:
        for layer in layers:
            added.append(viewer.add_layer(layer))
    except Exception:
        for layer in added:
            viewer.layers.remove(layer)
        raise
    return added
