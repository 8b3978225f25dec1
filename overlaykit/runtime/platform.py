"""--platform OS/ARCH[/VARIANT]: checked against the image's config, as Docker checks a stored
image (it says "was found but does not match the specified platform")."""

from overlaykit.errors import OverlaykitError

_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}


def parse(text: str, command: str) -> tuple[str, str, str]:
    parts = text.lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise OverlaykitError(f"{command}: --platform {text}: it is OS/ARCH[/VARIANT] (linux/amd64)")
    os_name, arch = parts[0], _ARCH.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "v8":
        variant = ""  # the default arm64 variant, as containerd normalises it
    return os_name, arch, variant


def check(image_config: dict, platform: str | None, ref: str, command: str) -> None:
    if platform is None:
        return
    wanted = parse(platform, command)
    actual = (image_config.get("os") or "linux", _ARCH.get(image_config.get("architecture") or "",
                                                           image_config.get("architecture") or ""),
              image_config.get("variant") or "")
    if actual[1] == "arm64" and actual[2] == "v8":
        actual = (actual[0], actual[1], "")
    if wanted[:2] != actual[:2] or (wanted[2] and wanted[2] != actual[2]):
        show = lambda p: "/".join(x for x in p if x)
        raise OverlaykitError(f"{command}: image with reference {ref} was found but does not match "
                              f"the specified platform: wanted {show(wanted)}, actual: {show(actual)}")
