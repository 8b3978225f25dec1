"""The one exception for what the user did wrong or the machine refused."""


class OverlaykitError(Exception):
    """Printed by the CLI as `overlaykit: <message>` with exit code 1; anything else is a bug."""
