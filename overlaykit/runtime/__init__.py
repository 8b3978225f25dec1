"""A container's life: spec -> rootfs -> process -> exit."""
