"""The names and xattrs that mark deletions: OCI/AUFS `.wh.` files in tars, overlayfs on disk.

In a layer tar, `dir/.wh.NAME` says NAME was deleted and `dir/.wh..wh..opq` says dir was
emptied and refilled. On disk, overlayfs says the same with a 0:0 character device named
NAME and the xattr trusted.overlay.opaque=y on dir. The unpacker turns the first into the
second; the packer turns it back.
"""

import stat

PREFIX = ".wh."
META_PREFIX = ".wh..wh."  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content
OPAQUE_MARKER = ".wh..wh..opq"

OVERLAY_XATTR_PREFIX = "trusted.overlay."  # only the unpacker may set these in a diff dir
OPAQUE_XATTR = "trusted.overlay.opaque"
OPAQUE_VALUE = b"y"
WHITEOUT_DEVICE = 0  # makedev(0, 0)


def is_whiteout_device(st_mode: int, st_rdev: int) -> bool:
    """Whether a stat result is an overlay whiteout (a character device 0:0)."""
    return stat.S_ISCHR(st_mode) and st_rdev == WHITEOUT_DEVICE
