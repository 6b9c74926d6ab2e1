"""Object detection with an image classifier (book ch. 13): image pyramids, sliding windows,
batched window classification and non-maxima suppression. Import the submodules directly."""
