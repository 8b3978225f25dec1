"""Archive formats, layer unpack and pack, digests, image config. Never imports store/ or runtime/."""
