"""The names and xattrs that mark deletions: OCI/AUFS `.wh.` files in tars, overlayfs on disk.

In a layer tar, `dir/.wh.NAME` says NAME was deleted and `dir/.wh..wh..opq` says dir was
emptied and refilled. On disk, overlayfs says the same with a 0:0 character device named
NAME and the xattr trusted.overlay.opaque=y on dir. The unpacker turns the first into the
second; the packer turns it back. The on-disk marks are linux/whiteouts.py's, named here too
so the tar side and the disk side read as one vocabulary.
"""

from overlaykit.linux.whiteouts import (OPAQUE_VALUE, OPAQUE_XATTR, WHITEOUT_DEVICE,  # noqa: F401
                                        is_whiteout_device)

PREFIX = ".wh."
META_PREFIX = ".wh..wh."  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content
OPAQUE_MARKER = ".wh..wh..opq"

OVERLAY_XATTR_PREFIX = "trusted.overlay."  # only the unpacker may set these in a diff dir
