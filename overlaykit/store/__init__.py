"""The on-disk state under the store root: layers, images, containers, volumes."""
