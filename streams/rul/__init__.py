"""Remaining useful life: preprocessing, the TensorFlow model and the versioned model store."""
