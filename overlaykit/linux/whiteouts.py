"""How overlayfs marks deletions on disk: a whiteout is a 0:0 character device named for what
it hides, an opaque directory carries the xattr <prefix>overlay.opaque=y (trusted., or user.
when mounted with userxattr). What unpacking, diffing, explaining and nesting layers all read."""

import stat

WHITEOUT_DEVICE = 0  # makedev(0, 0)
OPAQUE_XATTR = "trusted.overlay.opaque"
OPAQUE_VALUE = b"y"


def is_whiteout_device(st_mode: int, st_rdev: int) -> bool:
    """Whether a stat result is an overlay whiteout (a character device 0:0)."""
    return stat.S_ISCHR(st_mode) and st_rdev == WHITEOUT_DEVICE


def opaque_xattr(options: tuple[str, ...]) -> str:
    """The xattr overlayfs reads for opaque directories with these mount options."""
    return "user.overlay.opaque" if "userxattr" in options else OPAQUE_XATTR
