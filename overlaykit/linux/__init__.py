"""The only place that calls the kernel through ctypes."""
